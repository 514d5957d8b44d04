DELETE FROM locks WHERE name = 'registrations';
DROP TABLE registered_clients;
DROP TABLE initial_access_tokens;
