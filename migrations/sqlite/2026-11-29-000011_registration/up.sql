-- Dynamic client registration (RFC 7591, RFC 7592).
-- Initial access tokens from `sigil client initial-token`: good for one registration before
-- they expire; only the SHA-256 of the token is stored, and a token is deleted when used.
CREATE TABLE initial_access_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX initial_access_tokens_expiry ON initial_access_tokens (expires_at);
-- The clients registered at /register, with the SHA-256 of their registration access token
-- (RFC 7592); a client an administrator registered has no row, so no token manages it.
CREATE TABLE registered_clients (
    client_id TEXT PRIMARY KEY NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    access_token_hash TEXT NOT NULL,
    client_address TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Registrations take this lock, so that the cap on registered clients holds under concurrency.
INSERT INTO locks (name, touched_at) VALUES ('registrations', 0);
