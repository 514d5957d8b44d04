-- Passkeys (WebAuthn, DESIGN.md "Second factors"): the credentials users enrolled, and the
-- ceremonies in progress between their two requests.

-- One row a credential. credential is webauthn-rs's `Passkey` as JSON: the public key, the
-- signature counter and flags, public data only. sign_count repeats the counter as a column so
-- that a use can move it forward atomically (a concurrent or replayed use with the same or a
-- lower counter changes no row). backup_eligible: the authenticator may sync the key to other
-- devices (amr `swk`), else it stays on one device (amr `hwk`).
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A registration or authentication ceremony between its options and its answer, keyed by the
-- SHA-256 of the random id the browser carries; single use, five minutes. Unauthenticated
-- requests create them, so they are capped per client address (the newest stay) and purged.
CREATE TABLE webauthn_ceremonies (
    id_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    state TEXT NOT NULL,
    client_address TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_address ON webauthn_ceremonies (client_address, expires_at);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
