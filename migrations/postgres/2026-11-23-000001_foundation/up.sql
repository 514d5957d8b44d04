-- Times are Unix seconds (BIGINT) on both backends; secrets are only ever stored sealed or hashed.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name TEXT,
    claims TEXT NOT NULL DEFAULT '{}',
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    tokens_valid_after BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    secret_sealed BYTEA,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    state TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retiring_at BIGINT,
    retire_after BIGINT,
    retired_at BIGINT
);
CREATE INDEX signing_keys_alg_state ON signing_keys (alg, state);

-- One row per named lock; writing the row first in a transaction serialises writers on both
-- backends (a row lock on PostgreSQL, the database write lock on SQLite).
CREATE TABLE locks (
    name TEXT PRIMARY KEY NOT NULL,
    touched_at BIGINT NOT NULL
);
INSERT INTO locks (name, touched_at) VALUES ('signing_keys', 0);
