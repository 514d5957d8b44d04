//! Brute-force protection for sign-in (DESIGN.md "Brute force"). Every password check first
//! takes a slot on two keys: its own — the account (`user:NAME`), or for a browser that signed
//! in to that account before, its device (`device:HASH`) — and the client address
//! (`ip:BUCKET`). A key holds `login.max_failures` slots per window, failed or still in flight,
//! so N concurrent attempts evaluate at most that many passwords; a full or locked key answers
//! 429 whatever the password. When failures fill a key it is locked for one window, doubling
//! with each further lock up to `login.max_lockout`.
//!
//! Outcomes: a success forgets its own key and gives the address slot back; a failure keeps
//! both slots (and may lock); a check that never ran (the pool was full) gives both back; a
//! check abandoned by its client keeps them (it was an attempt).

use crate::config::LoginSettings;
use crate::storage::login_failures::{self, Limits, Reserved, Slot};
use crate::storage::{AnyConnection, StorageError};

pub use crate::storage::login_failures::{account_key, address_key, device_key};

pub fn limits(rules: &LoginSettings) -> Limits {
    Limits {
        max_failures: i32::try_from(rules.max_failures).unwrap_or(i32::MAX),
        window: rules.window.as_secs() as i64,
        max_lockout: rules.max_lockout.as_secs() as i64,
    }
}

/// Whether `name` could be a username at all (see `admin::users::check_username`); a name that
/// cannot is never looked up nor stored as a key (a NUL byte is not even storable in
/// PostgreSQL text), and is limited by the client address alone.
pub fn could_be_username(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control)
}

/// The key a check for the known `user` holds besides the address: the browser's device key
/// when it signed in as them before (SECURITY.md attack 24), else the account's.
pub fn own_key_of(
    conn: &mut AnyConnection,
    user: &crate::storage::users::UserRow,
    device_hash: Option<&str>,
    now: i64,
) -> Result<String, StorageError> {
    Ok(match device_hash {
        Some(h) if crate::storage::devices::is_trusted(conn, h, &user.id, now)? => device_key(h),
        _ => account_key(&user.username),
    })
}

/// The slots one check holds: its own (account or device; none for a name that cannot be a
/// user) and the client address's.
#[derive(Debug)]
pub struct Reservation {
    own: Option<Slot>,
    address: Slot,
}

/// The slots, or `Err(seconds)` to wait (429 with `Retry-After`).
pub fn reserve(
    conn: &mut AnyConnection,
    own_key: Option<String>,
    address_key: String,
    now: i64,
    limits: Limits,
) -> Result<Result<Reservation, i64>, StorageError> {
    let mut keys = vec![address_key.clone()];
    keys.extend(own_key.clone());
    match login_failures::reserve(conn, &keys, now, limits)? {
        Reserved::Refused(wait) => Ok(Err(wait)),
        Reserved::All(slots) => {
            let find = |key: &str| slots.iter().find(|s| s.key == key).cloned();
            let address = find(&address_key).ok_or_else(|| missing(&address_key))?;
            let own = match own_key {
                Some(key) => Some(find(&key).ok_or_else(|| missing(&key))?),
                None => None,
            };
            Ok(Ok(Reservation { own, address }))
        }
    }
}

fn missing(key: &str) -> StorageError {
    StorageError::Corrupt(format!("no slot was reserved on {key:?}"))
}

/// The right password: the check's own key starts afresh, and the address slot is given back
/// (others behind the same address keep theirs).
pub fn succeeded(conn: &mut AnyConnection, r: &Reservation) -> Result<(), StorageError> {
    if let Some(own) = &r.own {
        login_failures::clear(conn, std::slice::from_ref(&own.key))?;
    }
    login_failures::release(conn, &r.address)
}

/// A wrong password (or unknown user, disabled account, over-long password): the slots stay
/// as failures, and a key they fill is locked. Returns the keys this failure locked.
pub fn failed(
    conn: &mut AnyConnection,
    r: &Reservation,
    now: i64,
    limits: Limits,
) -> Result<Vec<String>, StorageError> {
    let mut locked = Vec::new();
    for slot in r.own.iter().chain([&r.address]) {
        if login_failures::failed(conn, slot, now, limits)? {
            locked.push(slot.key.clone());
        }
    }
    Ok(locked)
}

/// The check never ran (the password pool was full): both slots are given back.
pub fn withdrawn(conn: &mut AnyConnection, r: &Reservation) -> Result<(), StorageError> {
    for slot in r.own.iter().chain([&r.address]) {
        login_failures::release(conn, slot)?;
    }
    Ok(())
}

/// Every answer of the login form but a sign-in (a wrong password, 429 locked, 503 busy, a
/// stale form) goes out after `login.refusal_delay`: a client that waits for its answers — as a
/// flood of concurrent guesses does — is slowed to one refused attempt per connection and
/// delay, so refusing costs the server almost nothing and request handling keeps its CPU. The
/// more answers wait, the longer each waits (see [`Tarpit::wait`]), so however many connections
/// a flood opens, the form answers on the order of [`Tarpit::SHARE`] refusals per delay. At most
/// [`Tarpit::MAX_HELD`] answers wait at once (each holds a connection and its request); beyond
/// that they go out at once.
#[derive(Debug, Default)]
pub struct Tarpit {
    held: std::sync::atomic::AtomicUsize,
}

impl Tarpit {
    pub const MAX_HELD: usize = 2048;
    /// Answers that wait just the delay; each further `SHARE` waiting adds a delay more.
    pub const SHARE: usize = 128;
    /// The longest wait, unless the delay itself is longer.
    pub const LONGEST: std::time::Duration = std::time::Duration::from_secs(10);

    /// How long an answer waits when `held` others wait already: `delay` while fewer than
    /// [`Self::SHARE`] do, then one `delay` more for every further `SHARE`, up to
    /// [`Self::LONGEST`] (or `delay` when that is longer).
    pub fn wait(delay: std::time::Duration, held: usize) -> std::time::Duration {
        let stretch = u32::try_from(held / Self::SHARE)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        delay.saturating_mul(stretch).min(Self::LONGEST.max(delay))
    }

    /// Waits (see [`Self::wait`]) unless too many refusals wait already.
    pub async fn hold(&self, delay: std::time::Duration) {
        use std::sync::atomic::Ordering;
        if delay.is_zero() {
            return;
        }
        struct Held<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let before = self.held.fetch_add(1, Ordering::AcqRel);
        let _held = Held(&self.held);
        if before < Self::MAX_HELD {
            actix_web::rt::time::sleep(jittered(Self::wait(delay, before))).await;
        }
    }
}

/// `wait` plus up to a quarter more, at random: a flood whose connections all started at once
/// would otherwise come back in step, a burst of requests every delay that the answers to
/// everyone else queue behind.
fn jittered(wait: std::time::Duration) -> std::time::Duration {
    use rand::Rng;
    wait + wait.mul_f64(rand::rng().random_range(0.0..0.25))
}

#[cfg(test)]
mod tests {
    use super::Tarpit;
    use std::time::Duration;

    #[test]
    fn the_tarpit_stretches_its_wait_as_refusals_pile_up() {
        let second = Duration::from_secs(1);
        // Up to a share waiting: the delay itself.
        assert_eq!(Tarpit::wait(second, 0), second);
        assert_eq!(Tarpit::wait(second, Tarpit::SHARE - 1), second);
        // Each further share: a delay more, so the answers per second stay about a share.
        assert_eq!(Tarpit::wait(second, Tarpit::SHARE), 2 * second);
        assert_eq!(Tarpit::wait(second, 5 * Tarpit::SHARE + 1), 6 * second);
        // Never past the longest wait, unless the delay is longer by itself.
        assert_eq!(
            Tarpit::wait(second, Tarpit::MAX_HELD * 100),
            Tarpit::LONGEST
        );
        let long = Duration::from_secs(10);
        assert_eq!(Tarpit::wait(long, Tarpit::MAX_HELD), long);
        assert_eq!(Tarpit::wait(second, usize::MAX), Tarpit::LONGEST);
    }

    #[test]
    fn the_jitter_only_lengthens_a_wait_by_up_to_a_quarter() {
        let second = Duration::from_secs(1);
        let waits: Vec<_> = (0..200).map(|_| super::jittered(second)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= second && *w <= second.mul_f64(1.25)));
        assert!(waits.iter().any(|w| *w != waits[0]), "not all in step");
    }
}
