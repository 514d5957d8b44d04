//! Whole-database reads and writes for `sigil export` / `sigil import` (src/admin/transfer.rs)
//! and `sigil backup`: the rows exactly as stored (hashes stay hashes, sealed values stay sealed
//! under the master key), read in one consistent snapshot and written in one transaction.
//!
//! Every table of the schema is either carried ([`EXPORTED`]) or deliberately left behind
//! ([`NOT_EXPORTED`], with the reason); a test compares both lists with the tables a migrated
//! database holds, so a table added later has to be placed in one of them.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::clients::ClientRow;
use super::factors::TotpRow;
use super::groups::GroupRow;
use super::passkeys::PasskeyRow;
use super::registrations::RegisteredRow;
use super::resources::ResourceRow;
use super::schema::{
    clients, consents, group_members, groups, passkeys, recovery_codes, registered_clients,
    resources, revoked_tokens, signing_keys, totp_factors, users,
};
use super::signing_keys::KeyRow;
use super::users::UserRow;
use super::{AnyConnection, StorageError};

/// The tables an export carries.
pub const EXPORTED: &[&str] = &[
    "users",
    "totp_factors",
    "recovery_codes",
    "passkeys",
    "groups",
    "group_members",
    "clients",
    "registered_clients",
    "resources",
    "consents",
    "revoked_tokens",
    "signing_keys",
];

/// The tables an export leaves behind, and why.
pub const NOT_EXPORTED: &[(&str, &str)] = &[
    (
        "sessions",
        "browser sign-ins: users sign in again on the new database",
    ),
    (
        "trusted_devices",
        "a browser's device cookie; the next sign-in sets it again",
    ),
    (
        "auth_requests",
        "authorization requests in flight, minutes long",
    ),
    (
        "pushed_requests",
        "pushed authorization requests, a minute long",
    ),
    ("authorization_codes", "single-use codes, 60 s long"),
    (
        "device_codes",
        "device authorizations in flight, minutes long",
    ),
    (
        "webauthn_ceremonies",
        "passkey ceremonies in flight, minutes long",
    ),
    (
        "grants",
        "ongoing sign-ins at clients; carried over, one refresh token could be spent once on \
         each database, out of sight of the replay detection: clients sign the user in again",
    ),
    ("refresh_tokens", "belong to grants (above)"),
    ("login_failures", "throttling counters, minutes long"),
    (
        "password_links",
        "single-use links, an administrator issues a new one",
    ),
    (
        "initial_access_tokens",
        "short-lived registration tokens, issued again",
    ),
    (
        "client_assertions",
        "replay memory of client assertions, kept until their exp",
    ),
    ("dpop_jtis", "replay memory of DPoP proofs, seconds long"),
    (
        "audit_events",
        "history of the old database; it stays there (sigil audit list)",
    ),
    (
        "locks",
        "rows that serialize changes; made by the migrations",
    ),
    (
        "revisions",
        "change counters nodes poll; made by the migrations",
    ),
    (
        "users_search",
        "SQLite's search index of users, rebuilt as users are written",
    ),
    (
        "__diesel_schema_migrations",
        "the schema version, applied by sigil migrate",
    ),
];

/// A recovery code as stored (its SHA-256, never the code).
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = recovery_codes)]
pub struct RecoveryCodeRow {
    pub user_id: String,
    pub code_hash: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = group_members)]
pub struct MemberRow {
    pub group_id: String,
    pub user_id: String,
    pub added_at: i64,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = revoked_tokens)]
pub struct RevokedRow {
    pub jti: String,
    pub expires_at: i64,
}

/// Everything an export carries, as rows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub users: Vec<UserRow>,
    pub totp: Vec<TotpRow>,
    pub recovery_codes: Vec<RecoveryCodeRow>,
    pub passkeys: Vec<PasskeyRow>,
    pub groups: Vec<GroupRow>,
    pub members: Vec<MemberRow>,
    pub clients: Vec<ClientRow>,
    pub registrations: Vec<RegisteredRow>,
    pub resources: Vec<ResourceRow>,
    pub consents: Vec<ConsentRow>,
    pub revoked_tokens: Vec<RevokedRow>,
    /// `None`: the keys stay out (export without `--with-keys`; import keeps the target's).
    pub signing_keys: Option<Vec<KeyRow>>,
}

/// Reads every carried table in one snapshot (PostgreSQL: a repeatable-read transaction;
/// SQLite: one read transaction, which WAL keeps consistent while others write). Deny-list
/// entries whose token has expired by `now` are left out.
pub fn read(conn: &mut AnyConnection, with_keys: bool, now: i64) -> Result<Snapshot, StorageError> {
    conn.transaction::<_, StorageError, _>(|c| {
        if let AnyConnection::Postgresql(_) = c {
            c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        Ok(Snapshot {
            users: users::table.order(users::username.asc()).load(c)?,
            totp: totp_factors::table
                .order(totp_factors::user_id.asc())
                .load(c)?,
            recovery_codes: recovery_codes::table
                .order((
                    recovery_codes::user_id.asc(),
                    recovery_codes::code_hash.asc(),
                ))
                .load(c)?,
            passkeys: passkeys::table
                .order(passkeys::credential_id.asc())
                .load(c)?,
            groups: groups::table.order(groups::name.asc()).load(c)?,
            members: group_members::table
                .order((group_members::group_id.asc(), group_members::user_id.asc()))
                .load(c)?,
            clients: clients::table.order(clients::client_id.asc()).load(c)?,
            registrations: registered_clients::table
                .order(registered_clients::client_id.asc())
                .load(c)?,
            resources: resources::table.order(resources::resource.asc()).load(c)?,
            consents: consents::table
                .order((consents::user_id.asc(), consents::client_id.asc()))
                .load(c)?,
            revoked_tokens: revoked_tokens::table
                .filter(revoked_tokens::expires_at.gt(now))
                .order(revoked_tokens::jti.asc())
                .load(c)?,
            signing_keys: if with_keys {
                Some(super::signing_keys::all(c)?)
            } else {
                None
            },
        })
    })
}

/// What a database holds that an import into it would meet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holdings {
    pub users: i64,
    /// Clients other than the `first_party` ones Sigil registers for itself.
    pub clients: i64,
    pub resources: i64,
}

impl Holdings {
    pub fn is_empty(&self) -> bool {
        self.users == 0 && self.clients == 0 && self.resources == 0
    }
}

pub fn holdings(conn: &mut AnyConnection, first_party: &[&str]) -> Result<Holdings, StorageError> {
    Ok(Holdings {
        users: users::table.count().get_result(conn)?,
        clients: clients::table
            .filter(clients::client_id.ne_all(first_party.to_vec()))
            .count()
            .get_result(conn)?,
        resources: resources::table.count().get_result(conn)?,
    })
}

/// Every row of `snapshot` that the database already holds under the same unique name, one
/// line each (usernames, user ids, group names and ids, client ids, resources, passkeys).
pub fn conflicts(conn: &mut AnyConnection, s: &Snapshot) -> Result<Vec<String>, StorageError> {
    let mut found = Vec::new();
    for u in &s.users {
        if super::users::by_username(conn, &u.username)?.is_some() {
            found.push(format!("user {:?} exists", u.username));
        } else if super::users::by_id(conn, &u.id)?.is_some() {
            found.push(format!("user id {} (of {:?}) exists", u.id, u.username));
        }
    }
    for g in &s.groups {
        if super::groups::by_name(conn, &g.name)?.is_some() {
            found.push(format!("group {:?} exists", g.name));
        } else if exists(conn, "groups", "id", &g.id)? {
            found.push(format!("group id {} (of {:?}) exists", g.id, g.name));
        }
    }
    for c in &s.clients {
        if super::clients::get(conn, &c.client_id)?.is_some() {
            found.push(format!("client {:?} exists", c.client_id));
        }
    }
    for r in &s.resources {
        if super::resources::get(conn, &r.resource)?.is_some() {
            found.push(format!("resource {:?} exists", r.resource));
        }
    }
    for p in &s.passkeys {
        if super::passkeys::by_credential_id(conn, &p.credential_id)?.is_some() {
            found.push(format!("passkey {} exists", p.credential_id));
        }
    }
    Ok(found)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether `table` has a row whose `column` is `value` (names from this file only).
fn exists(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    value: &str,
) -> Result<bool, StorageError> {
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = $1");
    let c: Count = super::numbered_sql(conn, &sql)
        .bind::<Text, _>(value)
        .get_result(conn)?;
    Ok(c.n > 0)
}

/// Adds every row of `s` (the caller runs this in its transaction, after [`conflicts`] found
/// none). With signing keys, the database's own keys are deleted first: the imported ones
/// replace them (nodes reload within `keys.refresh_interval`, as after a rotation).
pub fn write(conn: &mut AnyConnection, s: &Snapshot) -> Result<(), StorageError> {
    for u in &s.users {
        super::users::insert(conn, u)?;
    }
    macro_rules! insert_each {
        ($table:expr, $rows:expr) => {
            for row in $rows {
                diesel::insert_into($table).values(row).execute(conn)?;
            }
        };
    }
    insert_each!(totp_factors::table, &s.totp);
    insert_each!(recovery_codes::table, &s.recovery_codes);
    insert_each!(passkeys::table, &s.passkeys);
    insert_each!(groups::table, &s.groups);
    insert_each!(group_members::table, &s.members);
    insert_each!(clients::table, &s.clients);
    insert_each!(registered_clients::table, &s.registrations);
    insert_each!(resources::table, &s.resources);
    insert_each!(consents::table, &s.consents);
    for r in &s.revoked_tokens {
        if !super::revoked_tokens::is_revoked(conn, &r.jti)? {
            diesel::insert_into(revoked_tokens::table)
                .values(r)
                .execute(conn)?;
        }
    }
    if let Some(keys) = &s.signing_keys {
        diesel::delete(signing_keys::table).execute(conn)?;
        insert_each!(signing_keys::table, keys);
    }
    // Caches of token answers are dropped on every node (new deny-list entries, new keys).
    super::revisions::bump(conn, super::revisions::TOKENS)
}

/// The number of rows in each carried table, for reports and checks.
pub fn row_counts(conn: &mut AnyConnection) -> Result<Vec<(&'static str, i64)>, StorageError> {
    EXPORTED
        .iter()
        .map(|table| {
            let c: Count =
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")).get_result(conn)?;
            Ok((*table, c.n))
        })
        .collect()
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The database's tables that neither [`EXPORTED`] nor [`NOT_EXPORTED`] names (SQLite's own
/// tables and the shadow tables of its search index aside): empty unless a migration added a
/// table without deciding whether an export carries it.
pub fn unplaced_tables(conn: &mut AnyConnection) -> Result<Vec<String>, StorageError> {
    let sql = match conn {
        AnyConnection::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
             ESCAPE '\\' AND name NOT LIKE 'users\\_search\\_%' ESCAPE '\\'"
        }
        AnyConnection::Postgresql(_) => {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let names: Vec<TableName> = diesel::sql_query(sql).load(conn)?;
    let mut unplaced: Vec<String> = names
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !EXPORTED.contains(&n.as_str()) && !NOT_EXPORTED.iter().any(|(t, _)| t == n))
        .collect();
    unplaced.sort();
    Ok(unplaced)
}

/// A consistent copy of a live SQLite database at `target` (`VACUUM INTO`: one read
/// transaction, so writers go on meanwhile). PostgreSQL has pg_dump for this.
pub fn backup_sqlite(conn: &mut AnyConnection, target: &str) -> Result<(), StorageError> {
    match conn {
        AnyConnection::Sqlite(_) => {
            diesel::sql_query("VACUUM INTO ?")
                .bind::<Text, _>(target)
                .execute(conn)?;
            Ok(())
        }
        AnyConnection::Postgresql(_) => Err(StorageError::Conflict(
            "sigil backup copies SQLite databases; back up PostgreSQL with pg_dump \
             (pg_dump --format=custom --file=sigil.dump DATABASE_URL), and keep the master key"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Database, DatabaseUrl};

    /// A table added by a later migration must be placed in `EXPORTED` or `NOT_EXPORTED`
    /// (tests/api/transfer.rs checks PostgreSQL's tables the same way).
    #[test]
    fn every_table_is_either_exported_or_left_behind_for_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let db = Database::connect(
            &url,
            1,
            0,
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        db.migrate().unwrap();
        let unplaced = db.with_conn(unplaced_tables).unwrap();
        assert_eq!(
            unplaced,
            Vec::<String>::new(),
            "tables neither exported nor listed in NOT_EXPORTED"
        );
        for (table, why) in NOT_EXPORTED {
            assert!(!EXPORTED.contains(table), "{table} is in both lists");
            assert!(!why.is_empty());
        }
        let counts = db.with_conn(row_counts).unwrap();
        assert_eq!(counts.len(), EXPORTED.len(), "every exported table exists");
    }
}
