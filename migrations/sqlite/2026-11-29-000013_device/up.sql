-- The device authorization grant (RFC 8628): one row per device authorization request. The
-- device code is kept only as its SHA-256, the user code only as an HMAC under a key derived
-- from the master key (it is short: a plain hash could be reversed by trying every code). A row
-- is `pending` until the user approves (`approved`, with the grant made at that moment) or denies
-- (`denied`) on the /device page; the token endpoint spends an approved row once (`consumed_at`).
-- Rows live `device.lifetime` (10 minutes) and are purged after `expires_at`.
CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY NOT NULL,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    client_address TEXT NOT NULL,
    status TEXT NOT NULL,
    grant_id TEXT,
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX device_codes_expiry ON device_codes (expires_at);
-- The cap per client (and the cascade when a client is removed).
CREATE INDEX device_codes_client ON device_codes (client_id, expires_at);
-- The cap per client address for public clients (anyone can start a flow for them).
CREATE INDEX device_codes_address ON device_codes (client_address, created_at);
-- New requests are counted and inserted under this lock, so the caps hold under concurrency.
INSERT INTO locks (name, touched_at) VALUES ('device_codes', 0);
