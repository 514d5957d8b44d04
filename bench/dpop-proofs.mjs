// Writes DPoP proofs (RFC 9449) for POSTs to one URL, one per line, for bench/wrk-lines.lua:
// one P-256 key (ES256), a fresh jti and the current time in each, and the server's nonce,
// fetched first the way a client learns it (a proof without one → `use_dpop_nonce` and a
// `DPoP-Nonce` header). Only node:crypto — no packages.
//
// Usage: node bench/dpop-proofs.mjs URL COUNT OUT_FILE   (env CLIENT_ID, CLIENT_SECRET, WRK_BODY)
import * as crypto from 'node:crypto';
import { createWriteStream } from 'node:fs';

const [url, countArg, out] = process.argv.slice(2);
const count = Number(countArg);
const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = publicKey.export({ format: 'jwk' });
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } });

function proof(nonce) {
  const claims = { jti: crypto.randomUUID(), htm: 'POST', htu: url, iat: Math.floor(Date.now() / 1000) };
  if (nonce) claims.nonce = nonce;
  const input = `${header}.${b64(claims)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

const auth = 'Basic ' + Buffer.from(`${process.env.CLIENT_ID}:${process.env.CLIENT_SECRET}`).toString('base64');
const body = process.env.WRK_BODY || 'grant_type=client_credentials';
const post = (dpop) => fetch(url, {
  method: 'POST', body, headers: { authorization: auth, dpop, 'content-type': 'application/x-www-form-urlencoded' },
});
const first = await post(proof());
const nonce = first.headers.get('dpop-nonce');
if (!nonce) throw new Error(`no DPoP-Nonce from ${url}: ${first.status} ${await first.text()}`);
const check = await post(proof(nonce));
const answer = await check.json();
if (check.status !== 200 || answer.token_type !== 'DPoP') {
  throw new Error(`a proof with the nonce was not accepted: ${check.status} ${JSON.stringify(answer)}`);
}

const file = createWriteStream(out);
for (let i = 0; i < count; i++) {
  if (!file.write(proof(nonce) + '\n')) await new Promise((r) => file.once('drain', r));
}
file.end();
await new Promise((r) => file.on('finish', r));
