//! Signing keys for the keys page, the admin API and `sigil keys list`: each algorithm's keys
//! with their state and dates, and when the key schedule will rotate it next (DESIGN.md "Keys
//! and rotation"). Rotating and retiring are `crypto::rotation`'s, which write their own audit
//! events in their transaction.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::crypto::keys::{KeyState, SigningAlg};
use crate::crypto::schedule::Schedule;
use crate::storage::signing_keys::KeyRow;

/// A key as the CLI and the admin API show it (dates in RFC 3339).
pub fn describe(row: &KeyRow) -> Value {
    let date = |t: Option<i64>| t.map(rfc3339);
    json!({
        "kid": row.kid,
        "alg": row.alg,
        "state": row.state,
        "created_at": rfc3339(row.created_at),
        "activated_at": date(row.activated_at),
        "retiring_at": date(row.retiring_at),
        "retire_after": date(row.retire_after),
        "retired_at": date(row.retired_at),
    })
}

/// One algorithm's rotation timing (RFC 3339 dates).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlgorithmSchedule {
    pub alg: String,
    /// The active key's kid.
    pub active: Option<String>,
    /// The next key's kid.
    pub next: Option<String>,
    /// When the schedule rotates (the active key has then served `keys.rotation_period`).
    pub rotation_due_at: Option<String>,
    /// From when the next key may sign without `force` (published 2 × `keys.jwks_max_age`).
    pub next_may_sign_at: Option<String>,
    /// Whether a rotation now would be refused without `force`.
    pub rotation_needs_force: bool,
}

/// The keys (retired ones included, newest first) and each algorithm's schedule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeysOverview {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Value>,
    pub algorithms: Vec<AlgorithmSchedule>,
}

pub fn overview(rows: &[KeyRow], schedule: &Schedule, now: i64) -> KeysOverview {
    let algorithms = SigningAlg::ALL
        .iter()
        .map(|alg| {
            let oldest = |state: KeyState| {
                rows.iter()
                    .filter(|r| r.alg == alg.as_str() && r.state == state.as_str())
                    .min_by_key(|r| r.created_at)
            };
            let (active, next) = (oldest(KeyState::Active), oldest(KeyState::Next));
            let may_sign = next.map(|n| n.created_at + schedule.lifecycle.min_publication);
            AlgorithmSchedule {
                alg: alg.as_str().to_string(),
                active: active.map(|k| k.kid.clone()),
                next: next.map(|k| k.kid.clone()),
                rotation_due_at: active
                    .map(|k| rfc3339(k.activated_at.unwrap_or(k.created_at) + schedule.period)),
                next_may_sign_at: may_sign.map(rfc3339),
                rotation_needs_force: may_sign.is_none_or(|t| t > now),
            }
        })
        .collect();
    let mut sorted: Vec<&KeyRow> = rows.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.kid.cmp(&b.kid)));
    KeysOverview {
        keys: sorted.into_iter().map(describe).collect(),
        algorithms,
    }
}

/// Loads the keys again on this node after a rotation or retirement, so that it serves the new
/// JWKS at once; the other nodes follow within `keys.refresh_interval`.
pub async fn reload(state: &crate::state::AppState) {
    let (db, master) = (state.db.clone(), state.master.clone());
    match actix_web::web::block(move || crate::startup::load_snapshot(&db, &master)).await {
        Ok(Ok(snapshot)) => state.keyring.replace(snapshot),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not reload keys after an admin change"),
        Err(_) => tracing::warn!("could not reload keys after an admin change"),
    }
}
