DROP INDEX grants_expiry;
ALTER TABLE grants DROP COLUMN expires_at;
DROP INDEX sessions_last_seen;
DROP INDEX sessions_expiry;
DROP INDEX refresh_tokens_expiry;
ALTER TABLE refresh_tokens DROP COLUMN successor_sealed;
DROP INDEX authorization_codes_grant;
DROP INDEX authorization_codes_expiry;
DROP INDEX auth_requests_expiry;
DROP INDEX auth_requests_address;
ALTER TABLE auth_requests DROP COLUMN signed_in_sid;
ALTER TABLE auth_requests DROP COLUMN client_address;
DROP TABLE trusted_devices;
DROP TABLE login_failures;
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
