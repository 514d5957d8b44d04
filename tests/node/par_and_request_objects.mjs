// openid-client pushes an authorization request (RFC 9126), signs one (RFC 9101), and pushes a
// signed one; each time the test signs alice in with the URL the library built, and the library
// redeems the code and validates the ID token.
import * as client from 'openid-client';
import * as jose from 'jose';
import { ask, main, issuer, insecure, freshRequest, redeem } from './lib.mjs';

main(async () => {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const kid = 'openid-client-es256';
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const { client_id, client_secret } = await ask('register', { jwks: { keys: [jwk] } });
  const config = await client.discovery(
    issuer,
    client_id,
    undefined,
    client.ClientSecretBasic(client_secret),
    insecure,
  );
  const signingKey = { key: privateKey, kid };
  const results = {};
  for (const mode of ['par', 'request', 'par+request']) {
    const request = await freshRequest('openid email');
    let url;
    if (mode === 'par') {
      url = await client.buildAuthorizationUrlWithPAR(config, request.params);
    } else if (mode === 'request') {
      url = await client.buildAuthorizationUrlWithJAR(config, request.params, signingKey);
    } else {
      const signed = await client.buildAuthorizationUrlWithJAR(config, request.params, signingKey);
      url = await client.buildAuthorizationUrlWithPAR(config, signed.searchParams);
    }
    const { callback } = await ask('authorize', { mode, url: url.href });
    const tokens = await redeem(config, callback, request);
    results[mode] = { claims: tokens.claims(), scope: tokens.scope, token_type: tokens.token_type };
  }
  return results;
});
