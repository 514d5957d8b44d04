-- Resource servers, revocation, client assertions and logout.

-- Resource servers (RFC 8707): APIs a client may ask tokens for; `resource` is the token's `aud`.
CREATE TABLE resources (
    resource TEXT PRIMARY KEY NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Revoked access tokens (RFC 7009), by jti, kept only until the token would have expired.
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

-- Client assertion ids already accepted (RFC 7523 §3: a jti is used once), by the SHA-256 of
-- the jti, kept until the assertion expires.
CREATE TABLE client_assertions (
    client_id TEXT NOT NULL,
    jti_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);

-- Counters that move whenever something stored changes in a way nodes cache: `tokens` moves
-- when any token may have stopped being valid (a revocation, a revoked grant, a user logged
-- out everywhere, disabled or removed, a client removed). Each node polls it and drops its
-- cached introspection answers when it moves.
CREATE TABLE revisions (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO revisions (name, value) VALUES ('tokens', 0);

-- The resource server a grant's access tokens are for (RFC 8707), if one was asked for.
ALTER TABLE grants ADD COLUMN resource TEXT;

-- Back-channel logout finds the clients that took part in a session through their grants.
CREATE INDEX grants_sid ON grants (sid);
