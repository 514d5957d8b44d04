-- Pushed authorization requests (RFC 9126): the parameters a client sent to /par, waiting for
-- the browser to come to /authorize with their request_uri. The id is the random part of the
-- request_uri; only its SHA-256 is stored. They live 60 seconds and are used once.
CREATE TABLE pushed_requests (
    id_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    client_address TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expiry ON pushed_requests (expires_at);
-- The cap per client address for public clients (anyone can push for them).
CREATE INDEX pushed_requests_address ON pushed_requests (client_address, created_at);
