DROP INDEX sessions_created;
DROP INDEX users_email;
DROP TABLE password_links;
