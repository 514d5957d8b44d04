DROP TABLE locks;
DROP INDEX signing_keys_alg_state;
DROP TABLE signing_keys;
DROP TABLE clients;
DROP TABLE users;
