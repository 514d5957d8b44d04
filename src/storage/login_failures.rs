//! Failed sign-in counters per account and per client address, for brute-force protection.

use diesel::prelude::*;

use super::schema::login_failures::dsl;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::login_failures)]
pub struct FailureRow {
    pub key: String,
    pub failures: i32,
    pub window_start: i64,
    pub locked_until: i64,
    pub lockouts: i32,
    pub expires_at: i64,
}

pub fn get(conn: &mut AnyConnection, key: &str) -> Result<Option<FailureRow>, StorageError> {
    Ok(dsl::login_failures
        .filter(dsl::key.eq(key))
        .first(conn)
        .optional()?)
}

pub fn put(conn: &mut AnyConnection, row: &FailureRow) -> Result<(), StorageError> {
    conn.transaction::<_, StorageError, _>(|conn| {
        diesel::delete(dsl::login_failures.filter(dsl::key.eq(&row.key))).execute(conn)?;
        diesel::insert_into(dsl::login_failures)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn clear(conn: &mut AnyConnection, key: &str) -> Result<(), StorageError> {
    diesel::delete(dsl::login_failures.filter(dsl::key.eq(key))).execute(conn)?;
    Ok(())
}
