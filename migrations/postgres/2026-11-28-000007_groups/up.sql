-- Groups (DESIGN.md "Groups"): named sets of users. The scope `groups` releases the names of a
-- user's groups in the claim `groups`; Kubernetes, Grafana and most tools map them to roles.

-- name: 1–64 characters of A–Z a–z 0–9 - _ . : /, not starting with - (checked in
-- src/oauth/groups.rs before anything is stored); unique. A rename changes only the name, so
-- memberships follow the group.
CREATE TABLE groups (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- One row a membership. Removing a group or a user removes its memberships (SQLite: every
-- connection turns foreign keys on). The primary key serves a group's members; the index on
-- user_id serves the token endpoint's one read of a user's groups.
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);
