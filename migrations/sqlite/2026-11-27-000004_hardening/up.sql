-- Hardening: bounded throttling with reservations, trusted devices, client addresses on parked
-- requests, refresh retries, and an indexed expiry on every table the maintenance task purges.

-- Password checks per key ("user:NAME", "ip:ADDR", "device:HASH"): `failures` counts the failed
-- checks and those still in flight within the window (a check reserves its slot before it
-- hashes), `pending` those of them still in flight; `lockouts` how often the key was locked (each lock doubles, up to
-- login.max_lockout); the row may be purged after `expires_at`.
DROP TABLE login_failures;
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    lockouts INTEGER NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_failures_expiry ON login_failures (expires_at);

-- Browsers that signed in to an account (the `sigil_device` cookie, stored hashed): the
-- per-account lockout does not apply to them.
CREATE TABLE trusted_devices (
    device_hash TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (device_hash, user_id)
);
CREATE INDEX trusted_devices_expiry ON trusted_devices (expires_at);
CREATE INDEX trusted_devices_user ON trusted_devices (user_id);

-- Parked authorization requests are capped per client address, and remember the session that
-- signed in for them (only that sign-in satisfies `prompt=login` and `max_age`).
ALTER TABLE auth_requests ADD COLUMN client_address TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN signed_in_sid TEXT;
CREATE INDEX auth_requests_address ON auth_requests (client_address);
CREATE INDEX auth_requests_expiry ON auth_requests (expires_at);

CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
-- Deleting a grant cascades to its codes.
CREATE INDEX authorization_codes_grant ON authorization_codes (grant_id);

-- The tokens a refresh produced, sealed under the master key, so that a retry within
-- tokens.refresh_grace gets the same answer (NULL when the grace is 0).
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed BLOB;
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

-- After `expires_at` no token of the grant can be valid any more (its code, access tokens and
-- refresh tokens have all expired, or it was revoked that long ago): the grant can go.
ALTER TABLE grants ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
UPDATE grants SET expires_at = created_at + 1200;
UPDATE grants SET expires_at = (SELECT MAX(r.expires_at) FROM refresh_tokens r WHERE r.grant_id = grants.id)
    WHERE EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = grants.id AND r.expires_at > grants.expires_at);
UPDATE grants SET expires_at = revoked_at + 1200 WHERE revoked_at IS NOT NULL;
CREATE INDEX grants_expiry ON grants (expires_at);
