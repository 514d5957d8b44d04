DROP TRIGGER users_search_delete;
DROP TRIGGER users_search_update;
DROP TRIGGER users_search_insert;
DROP TABLE users_search;
DROP INDEX sessions_created;
DROP INDEX users_email;
DROP TABLE password_links;
