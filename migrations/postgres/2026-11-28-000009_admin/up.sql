-- The admin operations (console, admin API, CLI): one-time password-set links, and the indexes
-- that keep the users and sessions pages fast at 100,000 users.

-- A link that lets a user created without a password choose one (`/password/set?token=…`).
-- Only the SHA-256 of the token is stored; one link a user (a new one replaces the old), used
-- once (deleted when used), refused after expires_at and purged by maintenance.
CREATE TABLE password_links (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_links_expiry ON password_links (expires_at);

-- The users page: exact email look-ups; username order and prefixes use the UNIQUE index.
CREATE INDEX users_email ON users (email);
-- The sessions page: newest first, keyset on (created_at, sid).
CREATE INDEX sessions_created ON sessions (created_at, sid);
