//! Groups (DESIGN.md "Groups"): the operations the CLI, the admin API and the console share.
//! Each change is one function that records its audit event (actor: `By`) in the change's own
//! transaction.
//!
//! Idempotency: adding a member who already belongs is no error and changes nothing (the
//! answer says so: `Added::Already`), like HTTP PUT; removing a membership that does not exist
//! is an error (`NotFound`), like DELETE of a missing resource. Creating a group whose name is
//! taken is an error (`Conflict`).

use serde_json::{json, Value};

use crate::audit::{By, EventType};
use crate::oauth::groups::check_name;
use crate::storage::groups::{self, GroupListing, GroupRow, MemberRow};
use crate::storage::users::{self, UserRow};
use crate::storage::{atomically, AnyConnection, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A name that breaks the rule (src/oauth/groups.rs).
    #[error("{0}")]
    Invalid(String),
    /// `NotFound` (unknown group, user or membership), `Conflict` (a name taken), or the
    /// database failing.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What adding a member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Now,
    Already,
}

fn no_group(name: &str) -> StorageError {
    StorageError::NotFound(format!("no group {name:?}"))
}

/// The group named `name`; a name that breaks the rule cannot exist, and is not looked up.
pub fn existing(conn: &mut AnyConnection, name: &str) -> Result<GroupRow, StorageError> {
    if check_name(name).is_err() {
        return Err(no_group(name));
    }
    groups::by_name(conn, name)?.ok_or_else(|| no_group(name))
}

fn existing_user(conn: &mut AnyConnection, username: &str) -> Result<UserRow, StorageError> {
    users::by_username(conn, username)?
        .ok_or_else(|| StorageError::NotFound(format!("no user {username:?}")))
}

pub fn add(
    conn: &mut AnyConnection,
    name: &str,
    by: &By,
    now: i64,
) -> Result<GroupRow, GroupError> {
    check_name(name).map_err(GroupError::Invalid)?;
    let row = GroupRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        created_at: now,
    };
    atomically(conn, |conn| {
        groups::insert(conn, &row)?;
        by.event(EventType::GroupAdded)
            .target(name)
            .record(conn, now)
    })?;
    Ok(row)
}

/// Removes the group and every membership in it.
pub fn remove(conn: &mut AnyConnection, name: &str, by: &By, now: i64) -> Result<(), GroupError> {
    atomically(conn, |conn| {
        let group = existing(conn, name)?;
        groups::remove(conn, &group.name)?;
        by.event(EventType::GroupRemoved)
            .target(name)
            .record(conn, now)
    })?;
    Ok(())
}

/// Renames the group; its members stay. The new name must be free and follow the rule.
pub fn rename(
    conn: &mut AnyConnection,
    name: &str,
    new_name: &str,
    by: &By,
    now: i64,
) -> Result<GroupRow, GroupError> {
    check_name(new_name).map_err(GroupError::Invalid)?;
    let group = atomically(conn, |conn| {
        let group = existing(conn, name)?;
        if new_name != name {
            groups::rename(conn, name, new_name)?;
        }
        by.event(EventType::GroupRenamed)
            .target(new_name)
            .details(json!({ "from": name }))
            .record(conn, now)?;
        Ok::<_, StorageError>(group)
    })?;
    Ok(GroupRow {
        name: new_name.to_string(),
        ..group
    })
}

/// Every group with its member count, sorted by name.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<GroupListing>, StorageError> {
    groups::list(conn)
}

/// The group's members, sorted by username.
pub fn members(conn: &mut AnyConnection, name: &str) -> Result<Vec<MemberRow>, StorageError> {
    let group = existing(conn, name)?;
    groups::members(conn, &group.id)
}

/// Makes `username` a member of `group`: a no-op (`Added::Already`) when they are one.
pub fn add_member(
    conn: &mut AnyConnection,
    group: &str,
    username: &str,
    by: &By,
    now: i64,
) -> Result<Added, GroupError> {
    Ok(atomically(conn, |conn| {
        let g = existing(conn, group)?;
        let user = existing_user(conn, username)?;
        if !groups::add_member(conn, &g.id, &user.id, now)? {
            return Ok::<_, StorageError>(Added::Already);
        }
        by.event(EventType::GroupMemberAdded)
            .target(group)
            .details(json!({ "username": username }))
            .record(conn, now)?;
        Ok(Added::Now)
    })?)
}

/// Ends `username`'s membership of `group`; an error when there is none.
pub fn remove_member(
    conn: &mut AnyConnection,
    group: &str,
    username: &str,
    by: &By,
    now: i64,
) -> Result<(), GroupError> {
    atomically(conn, |conn| {
        let g = existing(conn, group)?;
        let user = existing_user(conn, username)?;
        if !groups::remove_member(conn, &g.id, &user.id)? {
            return Err(StorageError::NotFound(format!(
                "{username:?} is not a member of {group:?}"
            )));
        }
        by.event(EventType::GroupMemberRemoved)
            .target(group)
            .details(json!({ "username": username }))
            .record(conn, now)
    })?;
    Ok(())
}

/// The names of the user's groups, sorted (for `user show`).
pub fn of_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<String>, StorageError> {
    groups::names_of_user(conn, user_id)
}

/// A group as JSON: `{"name", "members", "created_at"}`.
pub fn describe(listing: &GroupListing) -> Value {
    json!({
        "name": listing.group.name,
        "members": listing.members,
        "created_at": listing.group.created_at,
    })
}

/// A member as JSON: `{"username", "added_at"}`.
pub fn describe_member(member: &MemberRow) -> Value {
    json!({"username": member.username, "added_at": member.added_at})
}
