//! Change counters nodes poll to know when a cache of theirs has gone stale. `tokens` moves
//! whenever a token may have stopped being valid; every storage function that revokes, ends or
//! removes something a token depends on moves it in the same transaction or statement batch.

use diesel::prelude::*;

use super::schema::revisions::dsl;
use super::{AnyConnection, StorageError};

pub const TOKENS: &str = "tokens";

/// Moves the counter `name` forward.
pub fn bump(conn: &mut AnyConnection, name: &str) -> Result<(), StorageError> {
    diesel::update(dsl::revisions.filter(dsl::name.eq(name)))
        .set(dsl::value.eq(dsl::value + 1))
        .execute(conn)?;
    Ok(())
}

/// The counter's current value.
pub fn current(conn: &mut AnyConnection, name: &str) -> Result<i64, StorageError> {
    Ok(dsl::revisions
        .filter(dsl::name.eq(name))
        .select(dsl::value)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}
