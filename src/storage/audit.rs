//! The stored audit log (`audit_events`): one row an event, written by [`record`] inside the
//! caller's transaction (so an event is stored exactly when its change is), read newest first
//! by [`list`] with keyset pagination. Rows are never changed; the maintenance purge deletes
//! them after `audit.retention` (index `audit_events_time`). Plain strings only: the event
//! types and actors are `crate::audit`'s.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::audit_events::{self, dsl};
use super::{AnyConnection, StorageError};

/// The longest target or actor name kept; longer ones (a name typed at the login form, a path
/// segment of the admin API) are cut at a character boundary.
pub const MAX_TEXT: usize = 256;

/// The most events one [`list`] call returns.
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub time: i64,
    pub actor_kind: String,
    pub actor: String,
    pub actor_name: Option<String>,
    pub client_address: Option<String>,
    pub event_type: String,
    pub target: Option<String>,
    pub outcome: String,
    /// A JSON object.
    pub details: String,
}

/// An event to store; `id` is the database's.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewEvent {
    pub time: i64,
    pub actor_kind: String,
    pub actor: String,
    pub actor_name: Option<String>,
    pub client_address: Option<String>,
    pub event_type: String,
    pub target: Option<String>,
    pub outcome: String,
    pub details: String,
}

/// `text` as it can be stored: no NUL (PostgreSQL text refuses it) and at most `max` bytes.
fn storable(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace('\0', "\u{fffd}")
}

/// Stores one event: a single INSERT, on the caller's connection and in its transaction.
pub fn record(conn: &mut AnyConnection, event: &NewEvent) -> Result<(), StorageError> {
    let clean = |t: &Option<String>| t.as_deref().map(|t| storable(t, MAX_TEXT));
    let row = NewEvent {
        actor: storable(&event.actor, MAX_TEXT),
        actor_name: clean(&event.actor_name),
        client_address: clean(&event.client_address),
        target: clean(&event.target),
        details: storable(&event.details, usize::MAX),
        ..event.clone()
    };
    diesel::insert_into(dsl::audit_events)
        .values(&row)
        .execute(conn)?;
    Ok(())
}

/// Which events [`list`] returns; every field narrows the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The actor's id (user id, client id, `cli`, `scheduler`) or a user's name.
    pub actor: Option<String>,
    pub target: Option<String>,
    pub event_type: Option<String>,
    /// Events at or after this time.
    pub since: Option<i64>,
    /// Events at or before this time.
    pub until: Option<i64>,
    /// Events older than this id: the `next` of the previous page.
    pub before: Option<i64>,
    /// At most this many (1..=[`MAX_LIMIT`]).
    pub limit: i64,
}

/// The events `filter` selects, newest first (by id), at most `filter.limit` of them. Each
/// filter reads its own index (`audit_events_actor`, `_actor_name`, `_target`, `_type`, all
/// ending in the id, and `_time`).
pub fn list(conn: &mut AnyConnection, filter: &Filter) -> Result<Vec<EventRow>, StorageError> {
    let mut query = dsl::audit_events.into_boxed();
    if let Some(actor) = &filter.actor {
        query = query.filter(
            dsl::actor
                .nullable()
                .eq(actor.clone())
                .or(dsl::actor_name.eq(actor.clone())),
        );
    }
    if let Some(target) = &filter.target {
        query = query.filter(dsl::target.eq(target.clone()));
    }
    if let Some(kind) = &filter.event_type {
        query = query.filter(dsl::event_type.eq(kind.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(dsl::time.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(dsl::time.le(until));
    }
    if let Some(before) = filter.before {
        query = query.filter(dsl::id.lt(before));
    }
    Ok(query
        .order(dsl::id.desc())
        .limit(filter.limit.clamp(1, MAX_LIMIT))
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::storable;

    #[test]
    fn stored_text_has_no_nul_and_is_cut_at_a_character_boundary() {
        assert_eq!(storable("a\0b", 10), "a\u{fffd}b");
        assert_eq!(storable("ééé", 3), "é");
        assert_eq!(storable("abc", 10), "abc");
    }
}
