//! The key lifecycle in the database: first keys, rotation and retirement. Each change is one
//! transaction that first takes the `signing_keys` lock row, so nodes and CLI runs that change
//! keys at the same moment take turns and see each other's result; a rotation or retirement
//! stores its audit event in that same transaction.

use super::keys::{self, GeneratedKey, KeyState, SigningAlg};
use super::master_key::MasterKey;
use crate::audit::{By, EventType};
use crate::clock::Clock;
use crate::config::Settings;
use crate::storage::signing_keys::{self, KeyRow};
use crate::storage::{self, AnyConnection, Database, StorageError};

const LOCK: &str = "signing_keys";

/// The timing rules of DESIGN.md "Keys and rotation".
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// A `next` key must have been published this long before it may sign (2 × JWKS max-age).
    pub min_publication: i64,
    /// A retiring key stays published this long: the longest token lifetime plus the clock
    /// skew, plus one `keys.refresh_interval`, because a node that has not yet reloaded its keys
    /// keeps signing with the old key that long after the rotation.
    pub retirement_delay: i64,
}

impl Lifecycle {
    pub fn from_settings(s: &Settings) -> Self {
        let refresh_lag = s.keys.refresh_interval.0.as_secs_f64().ceil() as i64;
        Self {
            min_publication: 2 * s.keys.jwks_max_age.as_secs() as i64,
            retirement_delay: s.retirement_delay().as_secs() as i64 + refresh_lag,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the next {alg} key {kid} has been published for {published}s, less than the {required}s \
         (2 × keys.jwks_max_age) that clients may cache the JWKS; rotate again later, or pass \
         --force if the active key is compromised"
    )]
    TooEarly {
        alg: SigningAlg,
        kid: String,
        published: i64,
        required: i64,
    },
    #[error(
        "there is no next {0} key to activate; restart Sigil or run `sigil migrate` to prepare one"
    )]
    NoNextKey(SigningAlg),
    #[error("no key {0}")]
    UnknownKey(String),
    #[error("key {0} is active: rotate it out first (`sigil keys rotate --alg ALG`)")]
    RetireActive(String),
    #[error("key {0} is already retired")]
    AlreadyRetired(String),
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// What one rotation did for one algorithm.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    pub alg: SigningAlg,
    pub activated: String,
    pub retiring: Option<String>,
    pub next: String,
}

fn generate(alg: SigningAlg) -> Result<GeneratedKey, KeyError> {
    keys::generate(alg).map_err(|e| KeyError::Generate(e.to_string()))
}

fn row(
    key: &GeneratedKey,
    state: KeyState,
    master: &MasterKey,
    now: i64,
) -> Result<KeyRow, KeyError> {
    let sealed = master
        .seal(&key.private_der, key.kid.as_bytes())
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(KeyRow {
        kid: key.kid.clone(),
        alg: key.alg.as_str().into(),
        state: state.as_str().into(),
        public_jwk: serde_json::Value::Object(key.public_jwk.clone()).to_string(),
        private_sealed: sealed,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retiring_at: None,
        retire_after: None,
        retired_at: None,
    })
}

fn count(
    conn: &mut AnyConnection,
    alg: SigningAlg,
    state: KeyState,
) -> Result<usize, StorageError> {
    Ok(signing_keys::with_state(conn, alg.as_str(), state.as_str())?.len())
}

/// At start: makes sure each algorithm has an active and a next key. Returns the new kids.
/// Keys are generated outside the transaction (RSA takes a while: about 0.35 s of CPU each, one
/// thread per key so a first start on several cores waits for the slowest only); the
/// transaction re-checks under the lock, so two nodes starting together still end with one
/// active key each.
pub fn ensure_keys(db: &Database, master: &MasterKey, now: i64) -> Result<Vec<String>, KeyError> {
    let missing = db.with_conn(|conn| -> Result<_, StorageError> {
        let mut missing = Vec::new();
        for alg in SigningAlg::ALL {
            for state in [KeyState::Active, KeyState::Next] {
                if count(conn, alg, state)? == 0 {
                    missing.push((alg, state));
                }
            }
        }
        Ok(missing)
    })?;
    if missing.is_empty() {
        return Ok(vec![]);
    }
    let generated = std::thread::scope(|scope| {
        let workers: Vec<_> = (missing.iter())
            .map(|(alg, state)| scope.spawn(move || Ok((*state, generate(*alg)?))))
            .collect();
        (workers.into_iter())
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(KeyError::Generate("key generation panicked".into())))
            })
            .collect::<Result<Vec<_>, KeyError>>()
    })?;
    let generated: Vec<_> = generated.iter().map(|(state, key)| (*state, key)).collect();
    store_keys(db, master, &generated, now)
}

/// Stores keys generated beforehand, each in its state, for every algorithm that has no key in
/// that state yet (re-checked under the rotation lock, in one transaction); the others are
/// dropped. Returns the kids stored. [`ensure_keys`] uses it after generating what is missing;
/// an embedding program (the tests) may hand in keys it made earlier.
pub fn store_keys(
    db: &Database,
    master: &MasterKey,
    keys: &[(KeyState, &GeneratedKey)],
    now: i64,
) -> Result<Vec<String>, KeyError> {
    Ok(db.with_conn(|conn| -> Result<_, StorageError> {
        crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
            storage::lock(conn, LOCK, now)?;
            let mut created = Vec::new();
            for (state, key) in keys {
                if count(conn, key.alg, *state)? == 0 {
                    let row = row(key, *state, master, now)
                        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                    signing_keys::insert(conn, &row)?;
                    created.push(key.kid.clone());
                }
            }
            Ok(created)
        })
    })?)
}

/// `next` → `active`, `active` → `retiring`, and a new `next`, for each algorithm given, all in
/// one transaction. Refuses a `next` key published for less than `min_publication` unless
/// `force`.
pub fn rotate(
    db: &Database,
    master: &MasterKey,
    lifecycle: Lifecycle,
    algs: &[SigningAlg],
    force: bool,
    now: i64,
    by: &By,
) -> Result<Vec<Rotation>, KeyError> {
    let fresh = algs
        .iter()
        .map(|alg| generate(*alg))
        .collect::<Result<Vec<_>, _>>()?;
    db.with_conn(|conn| {
        crate::storage::transaction::<_, KeyError, _>(conn, |conn| {
            storage::lock(conn, LOCK, now)?;
            let mut done = Vec::new();
            for new_next in &fresh {
                let alg = new_next.alg;
                let next = oldest(conn, alg, KeyState::Next)?.ok_or(KeyError::NoNextKey(alg))?;
                let published = now - next.created_at;
                if published < lifecycle.min_publication && !force {
                    return Err(KeyError::TooEarly {
                        alg,
                        kid: next.kid,
                        published,
                        required: lifecycle.min_publication,
                    });
                }
                let rotation = promote(conn, master, lifecycle, next, new_next, now)?;
                rotated(by, &rotation, force).record(conn, now)?;
                done.push(rotation);
            }
            Ok(done)
        })
    })
}

/// The audit event of one algorithm's rotation: the target is the key that now signs.
fn rotated(by: &By, r: &Rotation, forced: bool) -> crate::audit::Event {
    by.event(EventType::KeysRotated)
        .target(r.activated.as_str())
        .details(serde_json::json!({
            "alg": r.alg,
            "activated": r.activated,
            "retiring": r.retiring,
            "next": r.next,
            "forced": forced,
        }))
}

/// The scheduled rotation: rotates each algorithm given whose active key has been active for
/// `period` and whose next key has been published for `min_publication`. Both are decided again
/// under the lock, at the time read after taking it, so nodes that found the same key due at
/// the same moment rotate it once; a next key published too recently is waited for, never
/// forced. Keys are generated before the transaction (RSA takes a while).
pub fn rotate_due(
    db: &Database,
    master: &MasterKey,
    lifecycle: Lifecycle,
    period: i64,
    algs: &[SigningAlg],
    clock: &Clock,
) -> Result<Vec<Rotation>, KeyError> {
    let fresh = algs
        .iter()
        .map(|alg| generate(*alg))
        .collect::<Result<Vec<_>, _>>()?;
    db.with_conn(|conn| {
        crate::storage::transaction::<_, KeyError, _>(conn, |conn| {
            storage::lock(conn, LOCK, clock.now())?;
            let now = clock.now();
            let mut done = Vec::new();
            for new_next in &fresh {
                let alg = new_next.alg;
                let Some(active) = oldest(conn, alg, KeyState::Active)? else {
                    continue;
                };
                if now - active.activated_at.unwrap_or(active.created_at) < period {
                    continue; // rotated meanwhile, by another node or the CLI
                }
                let Some(next) = oldest(conn, alg, KeyState::Next)? else {
                    continue;
                };
                if now - next.created_at < lifecycle.min_publication {
                    continue;
                }
                let rotation = promote(conn, master, lifecycle, next, new_next, now)?;
                rotated(&By::scheduler(), &rotation, false).record(conn, now)?;
                done.push(rotation);
            }
            Ok(done)
        })
    })
}

fn oldest(
    conn: &mut AnyConnection,
    alg: SigningAlg,
    state: KeyState,
) -> Result<Option<KeyRow>, StorageError> {
    Ok(
        signing_keys::with_state(conn, alg.as_str(), state.as_str())?
            .into_iter()
            .next(),
    )
}

/// One algorithm's rotation, inside the caller's locked transaction: the active key starts
/// retiring, `next` becomes active, and `new_next` is published in its place.
fn promote(
    conn: &mut AnyConnection,
    master: &MasterKey,
    lifecycle: Lifecycle,
    next: KeyRow,
    new_next: &GeneratedKey,
    now: i64,
) -> Result<Rotation, KeyError> {
    let alg = new_next.alg;
    let mut retiring = None;
    for old in signing_keys::with_state(conn, alg.as_str(), KeyState::Active.as_str())? {
        signing_keys::start_retiring(conn, &old.kid, now, now + lifecycle.retirement_delay)?;
        retiring = Some(old.kid);
    }
    signing_keys::activate(conn, &next.kid, now)?;
    signing_keys::insert(conn, &row(new_next, KeyState::Next, master, now)?)?;
    Ok(Rotation {
        alg,
        activated: next.kid,
        retiring,
        next: new_next.kid.clone(),
    })
}

/// Takes a `next` or `retiring` key out of the JWKS at once. A retired `next` key is replaced
/// by a fresh one in the same transaction, so the algorithm always has a key to rotate to.
pub fn retire(
    db: &Database,
    master: &MasterKey,
    kid: &str,
    now: i64,
    by: &By,
) -> Result<KeyRow, KeyError> {
    let existing = db
        .with_conn(|conn| -> Result<_, StorageError> { signing_keys::get(conn, kid) })?
        .ok_or_else(|| KeyError::UnknownKey(kid.into()))?;
    let alg: SigningAlg = existing
        .alg
        .parse()
        .map_err(|e: String| KeyError::Storage(StorageError::Corrupt(e)))?;
    let replacement = if existing.state == "next" {
        Some(generate(alg)?)
    } else {
        None
    };
    db.with_conn(|conn| {
        crate::storage::transaction::<_, KeyError, _>(conn, |conn| {
            storage::lock(conn, LOCK, now)?;
            let current =
                signing_keys::get(conn, kid)?.ok_or_else(|| KeyError::UnknownKey(kid.into()))?;
            match current.state.as_str() {
                "active" => return Err(KeyError::RetireActive(kid.into())),
                "retired" => return Err(KeyError::AlreadyRetired(kid.into())),
                _ => {}
            }
            signing_keys::retire(conn, kid, now)?;
            let mut details = serde_json::json!({ "alg": current.alg, "was": current.state });
            if let (Some(key), "next") = (&replacement, current.state.as_str()) {
                signing_keys::insert(conn, &row(key, KeyState::Next, master, now)?)?;
                details["next"] = key.kid.clone().into();
            }
            by.event(EventType::KeysRetired)
                .target(kid)
                .details(details)
                .record(conn, now)?;
            signing_keys::get(conn, kid)?.ok_or_else(|| KeyError::UnknownKey(kid.into()))
        })
    })
}

/// Retires the `retiring` keys whose tokens have all expired.
pub fn retire_expired(db: &Database, now: i64) -> Result<usize, StorageError> {
    db.with_conn(|conn| -> Result<_, StorageError> {
        crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
            storage::lock(conn, LOCK, now)?;
            signing_keys::retire_expired(conn, now)
        })
    })
}
