DROP INDEX grants_sid;
ALTER TABLE grants DROP COLUMN resource;
DROP TABLE revisions;
DROP TABLE client_assertions;
DROP TABLE revoked_tokens;
DROP TABLE resources;
