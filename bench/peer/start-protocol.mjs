// node-oidc-provider (panva/oidc-provider 9) as the peer for bench/protocol.sh: the fixed
// configuration of ../shared/bench/node-oidc-provider/start.mjs plus what the protocol
// benchmarks need — DPoP with server nonces required (as Sigil always requires them at /token),
// pushed authorization requests, and the device flow. protocol.sh copies this file next to the
// oidc-provider that peer-bench.sh installs and runs it from there.
//
// Env: PORT (default 3000), CLIENT_SECRET (the confidential client "bench").
import * as http from 'node:http';
import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const PORT = Number(process.env.PORT || 3000);
const ISSUER = `http://127.0.0.1:${PORT}`;
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'bench-secret-0123456789abcdef0123456789abcdef';

async function privateJwk(alg, kid) {
  const opts = alg === 'RS256' ? { extractable: true, modulusLength: 2048 } : { extractable: true };
  const { privateKey } = await generateKeyPair(alg, opts);
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}
const keys = await Promise.all([privateJwk('RS256', 'rs256-1'), privateJwk('ES256', 'es256-1')]);

const configuration = {
  clients: [{
    client_id: 'bench',
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'client_credentials',
      'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:9999/cb'],
    scope: 'openid api:read',
  }],
  jwks: { keys },
  cookies: { keys: ['bench-cookie-key-0123456789abcdef0123456789'] },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  scopes: ['openid', 'api:read'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    pushedAuthorizationRequests: { enabled: true },
    deviceFlow: { enabled: true },
  },
  clientBasedCORS: () => false,
  ttl: { ClientCredentials: 600, DeviceCode: 600, PushedAuthorizationRequest: 60 },
};

const provider = new Provider(ISSUER, configuration);
const server = http.createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(PORT, '127.0.0.1', () => console.log(`READY issuer=${ISSUER} node=${process.version}`));
const shutdown = () => { server.closeAllConnections(); server.close(); process.exit(0); };
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
