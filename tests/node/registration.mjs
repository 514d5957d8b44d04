// openid-client registers a client dynamically (RFC 7591) with an initial access token, then
// signs alice in with it: the test plays the browser, the library builds the authorization
// request, redeems the code with the credentials Sigil issued and validates the ID token.
import * as client from 'openid-client';
import { ask, main, issuer, insecure, freshRequest, redeem, redirect_uri } from './lib.mjs';

main(async () => {
  const { initial_access_token } = await ask('token');
  const config = await client.dynamicClientRegistration(
    issuer,
    {
      redirect_uris: [redirect_uri],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'client_secret_post',
      scope: 'openid email offline_access',
      client_name: 'openid-client, registered',
    },
    undefined,
    { initialAccessToken: initial_access_token, ...insecure },
  );
  const registered = config.clientMetadata();
  const request = await freshRequest('openid email');
  const url = client.buildAuthorizationUrl(config, request.params);
  const { callback } = await ask('authorize', { client_id: registered.client_id, url: url.href });
  const tokens = await redeem(config, callback, request);
  return {
    client_id: registered.client_id,
    registration_client_uri: registered.registration_client_uri,
    has_registration_access_token: typeof registered.registration_access_token === 'string',
    has_client_secret: typeof registered.client_secret === 'string',
    claims: tokens.claims(),
    scope: tokens.scope,
    token_type: tokens.token_type,
  };
});
