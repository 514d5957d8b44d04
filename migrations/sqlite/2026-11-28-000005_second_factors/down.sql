ALTER TABLE sessions DROP COLUMN client_address;
ALTER TABLE sessions DROP COLUMN user_agent;
ALTER TABLE auth_requests DROP COLUMN pending_at;
ALTER TABLE auth_requests DROP COLUMN pending_amr;
ALTER TABLE auth_requests DROP COLUMN pending_user_id;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
