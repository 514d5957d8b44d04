// openid-client runs the device authorization grant (RFC 8628): it asks for a device
// authorization, tells the test the user code and where to enter it, and polls the token
// endpoint (through `authorization_pending`) while the test signs alice in on /device and
// allows; then it validates the ID token it gets.
import * as client from 'openid-client';
import { ask, say, main, issuer, insecure } from './lib.mjs';

main(async () => {
  const { client_id, client_secret } = await ask('register');
  const config = await client.discovery(
    issuer,
    client_id,
    undefined,
    client.ClientSecretBasic(client_secret),
    insecure,
  );
  const device = await client.initiateDeviceAuthorization(config, {
    scope: 'openid email offline_access',
  });
  // The person reads the code off the screen and types it elsewhere; the device polls meanwhile.
  say('device', {
    user_code: device.user_code,
    verification_uri: device.verification_uri,
    verification_uri_complete: device.verification_uri_complete,
    expires_in: device.expires_in,
    interval: device.interval,
  });
  const tokens = await client.pollDeviceAuthorizationGrant(config, device);
  return {
    claims: tokens.claims(),
    scope: tokens.scope,
    token_type: tokens.token_type,
    refresh_token: typeof tokens.refresh_token === 'string',
  };
});
