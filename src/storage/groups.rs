//! Groups and their members. Names are checked before they get here (src/oauth/groups.rs);
//! lists come back sorted in Rust, byte order, so that both backends (whose text collations
//! differ) give the same order.

use diesel::prelude::*;

use super::schema::{group_members, groups, users};
use super::{conflict_on_unique, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::groups)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A group as listed: the row and how many members it has.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group: GroupRow,
    pub members: i64,
}

/// A member as a group lists them.
#[derive(Debug, Clone, Queryable)]
pub struct MemberRow {
    pub username: String,
    pub added_at: i64,
}

fn duplicate(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("a group named {name:?} already exists")
}

pub fn insert(conn: &mut AnyConnection, row: &GroupRow) -> Result<(), StorageError> {
    diesel::insert_into(groups::table)
        .values(row)
        .execute(conn)
        .map_err(|e| conflict_on_unique(e, duplicate(&row.name)))?;
    Ok(())
}

pub fn by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<GroupRow>, StorageError> {
    if !super::storable(name) {
        return Ok(None);
    }
    Ok(groups::table
        .filter(groups::name.eq(name))
        .first(conn)
        .optional()?)
}

/// Deletes the group; its memberships go with it (ON DELETE CASCADE).
pub fn remove(conn: &mut AnyConnection, name: &str) -> Result<(), StorageError> {
    let n = diesel::delete(groups::table.filter(groups::name.eq(name))).execute(conn)?;
    found(n, name)
}

/// Gives the group a new name; the members stay.
pub fn rename(conn: &mut AnyConnection, name: &str, new_name: &str) -> Result<(), StorageError> {
    let n = diesel::update(groups::table.filter(groups::name.eq(name)))
        .set(groups::name.eq(new_name))
        .execute(conn)
        .map_err(|e| conflict_on_unique(e, duplicate(new_name)))?;
    found(n, name)
}

/// Every group with its member count, by name.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<GroupListing>, StorageError> {
    let rows: Vec<GroupRow> = groups::table.load(conn)?;
    let counts: Vec<(String, i64)> = group_members::table
        .group_by(group_members::group_id)
        .select((group_members::group_id, diesel::dsl::count_star()))
        .load(conn)?;
    let counts: std::collections::HashMap<String, i64> = counts.into_iter().collect();
    let mut out: Vec<GroupListing> = rows
        .into_iter()
        .map(|group| GroupListing {
            members: counts.get(&group.id).copied().unwrap_or(0),
            group,
        })
        .collect();
    out.sort_unstable_by(|a, b| a.group.name.cmp(&b.group.name));
    Ok(out)
}

/// The members of a group, by username.
pub fn members(conn: &mut AnyConnection, group_id: &str) -> Result<Vec<MemberRow>, StorageError> {
    let mut rows: Vec<MemberRow> = group_members::table
        .inner_join(users::table)
        .filter(group_members::group_id.eq(group_id))
        .select((users::username, group_members::added_at))
        .load(conn)?;
    rows.sort_unstable_by(|a, b| a.username.cmp(&b.username));
    Ok(rows)
}

/// The names of the user's groups, sorted: one indexed query (the token endpoint's read).
pub fn names_of_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<String>, StorageError> {
    let mut names: Vec<String> = group_members::table
        .inner_join(groups::table)
        .filter(group_members::user_id.eq(user_id))
        .select(groups::name)
        .load(conn)?;
    names.sort_unstable();
    Ok(names)
}

/// Makes the user a member; false when they already were (nothing changes).
pub fn add_member(
    conn: &mut AnyConnection,
    group_id: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, StorageError> {
    use diesel::result::{DatabaseErrorKind, Error};
    let inserted = diesel::insert_into(group_members::table)
        .values((
            group_members::group_id.eq(group_id),
            group_members::user_id.eq(user_id),
            group_members::added_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        // The group or the user was removed meanwhile.
        Err(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Err(
            StorageError::NotFound("the group or the user no longer exists".into()),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Ends a membership; false when there was none.
pub fn remove_member(
    conn: &mut AnyConnection,
    group_id: &str,
    user_id: &str,
) -> Result<bool, StorageError> {
    let n = diesel::delete(
        group_members::table
            .filter(group_members::group_id.eq(group_id))
            .filter(group_members::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}

fn found(n: usize, name: &str) -> Result<(), StorageError> {
    if n == 0 {
        Err(StorageError::NotFound(format!("no group {name:?}")))
    } else {
        Ok(())
    }
}
