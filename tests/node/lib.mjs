// The conversation between a client-library script and its Rust test: the script writes one JSON
// object per line to stdout (`step` names it) and, where it asks, reads the test's answer as one
// JSON line from stdin. The test does what a browser or an administrator would do in between.
import * as readline from 'node:readline';
import * as client from 'openid-client';

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Sends `step` with `data` and waits for the test's answer. */
export async function ask(step, data = {}) {
  say(step, data);
  const { value, done } = await lines.next();
  if (done) throw new Error(`the test closed stdin instead of answering ${step}`);
  return JSON.parse(value);
}

/** Sends `step` with `data` without waiting. */
export function say(step, data = {}) {
  process.stdout.write(JSON.stringify({ step, ...data }) + '\n');
}

/** Runs `body`; an exception becomes an `error` step (with the OAuth error when there is one). */
export async function main(body) {
  try {
    const result = await body();
    say('done', result ?? {});
    process.exit(0);
  } catch (e) {
    say('error', {
      message: String(e?.stack ?? e),
      error: e?.error ?? e?.cause?.error,
      error_description: e?.error_description ?? e?.cause?.error_description,
      status: e?.status ?? e?.cause?.status,
    });
    process.exit(1);
  }
}

/** Sigil's issuer, from the test. */
export const issuer = new URL(process.env.SIGIL_ISSUER);

/** The test server speaks plain HTTP on loopback. */
export const insecure = { execute: [client.allowInsecureRequests] };

/** The redirect URI every test client registers. */
export const redirect_uri = process.env.SIGIL_REDIRECT_URI;

/** PKCE, state and nonce for one authorization request. */
export async function freshRequest(scope) {
  const verifier = client.randomPKCECodeVerifier();
  return {
    verifier,
    params: {
      redirect_uri,
      scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: client.randomState(),
      nonce: client.randomNonce(),
    },
  };
}

/** The code grant for `callback` (the URL the browser was sent back to). */
export function redeem(config, callback, request, options) {
  return client.authorizationCodeGrant(
    config,
    new URL(callback),
    {
      pkceCodeVerifier: request.verifier,
      expectedState: request.params.state,
      expectedNonce: request.params.nonce,
    },
    undefined,
    options,
  );
}
