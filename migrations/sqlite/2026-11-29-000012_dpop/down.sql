ALTER TABLE refresh_tokens DROP COLUMN dpop_jkt;
DROP TABLE dpop_jtis;
