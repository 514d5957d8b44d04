-- DPoP (RFC 9449). The ids of accepted proofs, shared by every node of a PostgreSQL
-- deployment so that a proof is accepted once whichever node it reaches (a single SQLite node
-- keeps them in memory). Only SHA-256 of the key's thumbprint and the jti is stored; a row
-- lives as long as its proof could be accepted (two minutes at most) and is then purged.
CREATE TABLE dpop_jtis (
    jti_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_jtis_expiry ON dpop_jtis (expires_at);
-- The key a public client's refresh token is bound to (RFC 9449 §5): its RFC 7638 thumbprint.
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
