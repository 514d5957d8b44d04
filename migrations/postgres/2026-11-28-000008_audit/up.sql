-- The stored audit log (DESIGN.md "Admin console and audit"): who did what to what, when, from
-- where, and how it went. One row an event, never changed; purged after audit.retention.
--
-- actor_kind: user | client | cli | scheduler | anonymous. actor: the user's id, the client's
-- id, or the kind itself; actor_name: the username, for display and for filtering by name.
-- event_type: a dotted name (src/audit.rs lists them). outcome: success | failure. details: a
-- JSON object, never a secret.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_name TEXT,
    client_address TEXT,
    event_type TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
-- The purge (time <= cutoff) and the since/until filters.
CREATE INDEX audit_events_time ON audit_events (time);
-- Each filter, newest first by id (keyset pagination: id < before).
CREATE INDEX audit_events_actor ON audit_events (actor, id);
CREATE INDEX audit_events_actor_name ON audit_events (actor_name, id);
CREATE INDEX audit_events_target ON audit_events (target, id);
CREATE INDEX audit_events_type ON audit_events (event_type, id);
