-- Second factors and authentication strength: a TOTP factor per user (its secret sealed under
-- the master key), recovery codes (hashed), the second step of a sign-in waiting on a parked
-- request, and where each session signed in from (for the account page's session list).

-- One TOTP factor per user. confirmed_at is NULL while an enrolment on the account page waits
-- for its first code; last_step is the last time step accepted, so each code counts once.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed BLOB NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Single-use recovery codes, stored as SHA-256 hashes; a new set replaces the old one.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A parked request whose person gave the right password (or holds a session too weak for it)
-- and must now give a second factor: who, since when, and the factors given so far.
ALTER TABLE auth_requests ADD COLUMN pending_user_id TEXT;
ALTER TABLE auth_requests ADD COLUMN pending_amr TEXT;
ALTER TABLE auth_requests ADD COLUMN pending_at BIGINT;

-- Where a session signed in from: shown to its user on the account page.
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN client_address TEXT NOT NULL DEFAULT '';
