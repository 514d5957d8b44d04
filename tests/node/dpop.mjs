// openid-client with a DPoP key (RFC 9449): a public client redeems its code, reads UserInfo and
// refreshes, each time proving possession of the key; Sigil asks for a nonce first
// (use_dpop_nonce) and the library goes through that retry by itself.
import * as client from 'openid-client';
import { ask, main, issuer, insecure, freshRequest, redeem } from './lib.mjs';

main(async () => {
  const { client_id } = await ask('register');
  const config = await client.discovery(issuer, client_id, undefined, client.None(), insecure);
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
  const request = await freshRequest('openid email offline_access');
  const url = client.buildAuthorizationUrl(config, request.params);
  const { callback } = await ask('authorize', { url: url.href });
  const tokens = await redeem(config, callback, request, { DPoP });
  const sub = tokens.claims().sub;
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub, { DPoP });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  const userinfo_after_refresh = await client.fetchUserInfo(config, refreshed.access_token, sub, {
    DPoP,
  });
  return {
    sub,
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    refreshed: { token_type: refreshed.token_type, access_token: refreshed.access_token },
    userinfo,
    userinfo_after_refresh,
  };
});
