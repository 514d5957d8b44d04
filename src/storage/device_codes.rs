//! Device authorizations (RFC 8628), keyed by the SHA-256 of the device code and found on the
//! `/device` page by the keyed hash of the user code. A row is `pending` until the user approves
//! it (with the grant made then) or denies it; the token endpoint spends an approved row once.
//! Expired rows are purged (`storage::maintenance`).

use diesel::prelude::*;

use super::grants::GrantRow;
use super::schema::device_codes::dsl;
use super::schema::grants;
use super::{AnyConnection, StorageError};

pub const PENDING: &str = "pending";
pub const APPROVED: &str = "approved";
pub const DENIED: &str = "denied";

/// New rows are counted and inserted under this lock (a row of `locks`).
const LOCK: &str = "device_codes";

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::device_codes)]
pub struct DeviceRow {
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    /// Who asked (`web::client_address`), for the cap per address of public clients.
    pub client_address: String,
    /// [`PENDING`], [`APPROVED`] or [`DENIED`].
    pub status: String,
    /// The grant the user's approval made.
    pub grant_id: Option<String>,
    /// Seconds the device must wait between polls (RFC 8628 §3.2 `interval`, grown by
    /// `slow_down`).
    pub poll_interval: i64,
    pub last_polled_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    /// When the token endpoint spent it (it is kept until it expires, to recognise a replay).
    pub consumed_at: Option<i64>,
}

/// How many live rows may exist.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub per_client: i64,
    pub total: i64,
    /// For a public client: the pending rows one client address may have for it; the oldest
    /// beyond it give way.
    pub per_address: Option<i64>,
}

/// How an insert ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Stored, with the user code hash of `candidates[i]`.
    With(usize),
    /// A cap is reached: nothing was stored.
    Full,
}

/// Stores `row` with the first of `candidates` (user code hashes) that no row holds yet
/// (`row.user_code_hash` is replaced), unless the client or everyone together already has as
/// many live rows as `caps` allows. The count and the insert hold the lock row, so concurrent
/// inserts on any number of nodes cannot pass a cap together.
pub fn insert(
    conn: &mut AnyConnection,
    row: &DeviceRow,
    candidates: &[String],
    caps: Caps,
) -> Result<Inserted, StorageError> {
    let now = row.created_at;
    super::transaction(conn, |conn| {
        super::lock(conn, LOCK, now)?;
        let total: i64 = dsl::device_codes
            .filter(dsl::expires_at.gt(now))
            .count()
            .get_result(conn)?;
        if total >= caps.total {
            return Ok(Inserted::Full);
        }
        let of_client: i64 = dsl::device_codes
            .filter(dsl::client_id.eq(&row.client_id))
            .filter(dsl::expires_at.gt(now))
            .count()
            .get_result(conn)?;
        if of_client >= caps.per_client {
            return Ok(Inserted::Full);
        }
        let mut chosen = None;
        for (i, hash) in candidates.iter().enumerate() {
            let taken: i64 = dsl::device_codes
                .filter(dsl::user_code_hash.eq(hash))
                .count()
                .get_result(conn)?;
            if taken == 0 {
                chosen = Some(i);
                break;
            }
        }
        let Some(i) = chosen else {
            return Err(StorageError::Conflict(
                "every candidate user code is taken".into(),
            ));
        };
        let mut row = row.clone();
        row.user_code_hash = candidates[i].clone();
        diesel::insert_into(dsl::device_codes)
            .values(&row)
            .execute(conn)?;
        if let Some(cap) = caps.per_address {
            let beyond_cap: Vec<String> = dsl::device_codes
                .filter(dsl::client_address.eq(&row.client_address))
                .filter(dsl::client_id.eq(&row.client_id))
                .filter(dsl::status.eq(PENDING))
                .filter(dsl::device_code_hash.ne(&row.device_code_hash))
                .order((dsl::created_at.desc(), dsl::device_code_hash.desc()))
                .select(dsl::device_code_hash)
                .offset(cap.max(1) - 1)
                .load(conn)?;
            if !beyond_cap.is_empty() {
                diesel::delete(dsl::device_codes.filter(dsl::device_code_hash.eq_any(&beyond_cap)))
                    .execute(conn)?;
            }
        }
        Ok(Inserted::With(i))
    })
}

/// The live, undecided row whose user code hashes to `user_code_hash`.
pub fn pending(
    conn: &mut AnyConnection,
    user_code_hash: &str,
    now: i64,
) -> Result<Option<DeviceRow>, StorageError> {
    Ok(dsl::device_codes
        .filter(dsl::user_code_hash.eq(user_code_hash))
        .filter(dsl::status.eq(PENDING))
        .filter(dsl::expires_at.gt(now))
        .first(conn)
        .optional()?)
}

/// The row of a device code.
pub fn by_device_code(
    conn: &mut AnyConnection,
    device_code_hash: &str,
) -> Result<Option<DeviceRow>, StorageError> {
    Ok(dsl::device_codes
        .filter(dsl::device_code_hash.eq(device_code_hash))
        .first(conn)
        .optional()?)
}

/// The user approved: the row, still pending and live, becomes `approved` with `grant`, stored
/// in the same transaction. False (and nothing stored) when it was decided meanwhile or expired.
pub fn approve(
    conn: &mut AnyConnection,
    user_code_hash: &str,
    grant: &GrantRow,
    now: i64,
) -> Result<bool, StorageError> {
    enum Abort {
        Undecided,
        Storage(StorageError),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Self::Storage(e.into())
        }
    }
    let done = super::transaction::<_, Abort, _>(conn, |conn| {
        let decided = diesel::update(
            dsl::device_codes
                .filter(dsl::user_code_hash.eq(user_code_hash))
                .filter(dsl::status.eq(PENDING))
                .filter(dsl::expires_at.gt(now)),
        )
        .set((dsl::status.eq(APPROVED), dsl::grant_id.eq(&grant.id)))
        .execute(conn)?;
        if decided != 1 {
            return Err(Abort::Undecided);
        }
        diesel::insert_into(grants::table)
            .values(grant)
            .execute(conn)?;
        Ok(())
    });
    match done {
        Ok(()) => Ok(true),
        Err(Abort::Undecided) => Ok(false),
        Err(Abort::Storage(e)) => Err(e),
    }
}

/// The user denied: the row, still pending and live, becomes `denied`. False when it was
/// decided meanwhile or expired.
pub fn deny(
    conn: &mut AnyConnection,
    user_code_hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let n = diesel::update(
        dsl::device_codes
            .filter(dsl::user_code_hash.eq(user_code_hash))
            .filter(dsl::status.eq(PENDING))
            .filter(dsl::expires_at.gt(now)),
    )
    .set(dsl::status.eq(DENIED))
    .execute(conn)?;
    Ok(n == 1)
}

/// RFC 8628 §3.5: a poll of `device_code_hash` at `now`. True when the interval since the last
/// poll has passed (the poll is recorded); otherwise the poll is too fast: the interval grows by
/// `step` seconds for this and every later poll, and it counts as the last poll. One atomic
/// statement each, so of concurrent polls at most one passes.
pub fn poll(
    conn: &mut AnyConnection,
    device_code_hash: &str,
    now: i64,
    step: i64,
) -> Result<bool, StorageError> {
    let passed = diesel::update(
        dsl::device_codes
            .filter(dsl::device_code_hash.eq(device_code_hash))
            .filter(
                dsl::last_polled_at
                    .is_null()
                    .or((dsl::last_polled_at + dsl::poll_interval.nullable()).le(now)),
            ),
    )
    .set(dsl::last_polled_at.eq(now))
    .execute(conn)?;
    if passed == 1 {
        return Ok(true);
    }
    diesel::update(dsl::device_codes.filter(dsl::device_code_hash.eq(device_code_hash)))
        .set((
            dsl::poll_interval.eq(dsl::poll_interval + step),
            dsl::last_polled_at.eq(now),
        ))
        .execute(conn)?;
    Ok(false)
}

/// Spends an approved, live, unspent device code: the first write of its redemption, in
/// `grants::redeem`'s transaction (`UPDATE … WHERE consumed_at IS NULL`: of concurrent callers
/// exactly one gets 1). Everything else about the redemption is an authorization code's.
pub fn spend(
    conn: &mut AnyConnection,
    device_code_hash: &str,
    now: i64,
) -> Result<usize, diesel::result::Error> {
    diesel::update(
        dsl::device_codes
            .filter(dsl::device_code_hash.eq(device_code_hash))
            .filter(dsl::status.eq(APPROVED))
            .filter(dsl::consumed_at.is_null())
            .filter(dsl::expires_at.gt(now)),
    )
    .set(dsl::consumed_at.eq(now))
    .execute(conn)
}
