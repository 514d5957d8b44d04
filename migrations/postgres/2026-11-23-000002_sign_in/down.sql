DROP TABLE login_failures;
DROP TABLE refresh_tokens;
DROP TABLE authorization_codes;
DROP TABLE grants;
DROP TABLE consents;
DROP TABLE auth_requests;
DROP TABLE sessions;
