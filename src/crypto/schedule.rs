//! Scheduled rotation. Every node asks, once per `keys.refresh_interval`, whether
//! an algorithm's active key has served `keys.rotation_period`; when it has, and the algorithm's
//! next key has been published for 2 × `keys.jwks_max_age`, the node rotates it. The question is
//! asked again under the key lock (`rotation::rotate_due`), so nodes that tick at the same
//! moment rotate once.

use std::sync::mpsc;
use std::time::Duration;

use super::keys::{KeyState, SigningAlg};
use super::master_key::MasterKey;
use super::rotation::{self, KeyError, Lifecycle, Rotation};
use crate::clock::Clock;
use crate::config::Settings;
use crate::storage::signing_keys::{self, KeyRow};
use crate::storage::Database;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub lifecycle: Lifecycle,
    /// How long a key signs before the schedule rotates it (`keys.rotation_period`).
    pub period: i64,
}

/// What the published keys say about one tick.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Algorithms to rotate now.
    pub due: Vec<SigningAlg>,
    /// Algorithms whose active key is due but whose next key is too young: `(alg, seconds
    /// until it may sign)`. They rotate at a later tick.
    pub waiting: Vec<(SigningAlg, i64)>,
    /// An algorithm lacks its active or next key (a restored database): prepare them first.
    pub incomplete: bool,
}

impl Schedule {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            lifecycle: Lifecycle::from_settings(s),
            period: s.keys.rotation_period.as_secs() as i64,
        }
    }

    /// Reads the published keys (`rows`) at `now`.
    pub fn plan(&self, rows: &[KeyRow], now: i64) -> Plan {
        let mut plan = Plan::default();
        for alg in SigningAlg::ALL {
            let oldest = |state: KeyState| {
                rows.iter()
                    .filter(|r| r.alg == alg.as_str() && r.state == state.as_str())
                    .min_by_key(|r| r.created_at)
            };
            let (Some(active), Some(next)) = (oldest(KeyState::Active), oldest(KeyState::Next))
            else {
                plan.incomplete = true;
                continue;
            };
            if now - active.activated_at.unwrap_or(active.created_at) < self.period {
                continue;
            }
            let wait = next.created_at + self.lifecycle.min_publication - now;
            if wait > 0 {
                plan.waiting.push((alg, wait));
            } else {
                plan.due.push(alg);
            }
        }
        plan
    }

    /// One tick: prepares missing keys, then rotates what is due. Returns the rotations this
    /// node made (none when another node was first).
    pub fn run(
        &self,
        db: &Database,
        master: &MasterKey,
        clock: &Clock,
    ) -> Result<Vec<Rotation>, KeyError> {
        let rows = db.with_conn(signing_keys::published)?;
        let plan = self.plan(&rows, clock.now());
        if plan.incomplete {
            let created = rotation::ensure_keys(db, master, clock.now())?;
            if !created.is_empty() {
                tracing::info!(keys = ?created, "created missing signing keys");
            }
        }
        for (alg, wait) in &plan.waiting {
            tracing::debug!(%alg, seconds = wait, "rotation due; waiting until the next key has been published for 2 × keys.jwks_max_age");
        }
        if plan.due.is_empty() {
            return Ok(vec![]);
        }
        rotation::rotate_due(db, master, self.lifecycle, self.period, &plan.due, clock)
    }

    /// `run`, logging each rotation and any failure (the next tick tries again).
    pub fn tick(&self, db: &Database, master: &MasterKey, clock: &Clock) {
        match self.run(db, master, clock) {
            Ok(done) => {
                for r in done {
                    tracing::info!(alg = %r.alg, activated = %r.activated, retiring = ?r.retiring, next = %r.next, "scheduled rotation of signing key");
                }
            }
            // An outage is logged once by the pool.
            Err(e) if !db.is_reachable() => {
                tracing::debug!(error = %e, "scheduled key rotation failed; trying again at the next refresh")
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduled key rotation failed; trying again at the next refresh")
            }
        }
    }
}

/// The thread that runs the schedule; it stops when this is dropped.
pub struct Scheduler {
    _stop: mpsc::Sender<()>,
}

impl Schedule {
    /// Runs `tick` every `every` on a thread of its own, apart from the key refresh, so that
    /// generating keys never delays a node's reload of the keys another node changed.
    pub fn spawn(
        self,
        db: Database,
        master: MasterKey,
        clock: Clock,
        every: Duration,
    ) -> std::io::Result<Scheduler> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sigil-rotation".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    self.tick(&db, &master, &clock);
                }
            })?;
        Ok(Scheduler { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_PUBLICATION: i64 = 600;
    const PERIOD: i64 = 86_400;

    fn schedule() -> Schedule {
        Schedule {
            lifecycle: Lifecycle {
                min_publication: MIN_PUBLICATION,
                retirement_delay: 3_700,
            },
            period: PERIOD,
        }
    }

    fn key(alg: SigningAlg, state: KeyState, created_at: i64) -> KeyRow {
        KeyRow {
            kid: format!("{alg}-{}-{created_at}", state.as_str()),
            alg: alg.as_str().into(),
            state: state.as_str().into(),
            public_jwk: "{}".into(),
            private_sealed: vec![],
            created_at,
            activated_at: (state == KeyState::Active).then_some(created_at),
            retiring_at: None,
            retire_after: None,
            retired_at: None,
        }
    }

    /// Every algorithm with an active key activated at `activated` and a next key published at
    /// `published`.
    fn keys(activated: i64, published: i64) -> Vec<KeyRow> {
        SigningAlg::ALL
            .iter()
            .flat_map(|alg| {
                [
                    key(*alg, KeyState::Active, activated),
                    key(*alg, KeyState::Next, published),
                ]
            })
            .collect()
    }

    #[test]
    fn nothing_is_due_before_the_rotation_period() {
        let plan = schedule().plan(&keys(0, 0), PERIOD - 1);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn every_algorithm_is_due_after_the_rotation_period() {
        let plan = schedule().plan(&keys(0, 0), PERIOD);
        assert_eq!(plan.due, SigningAlg::ALL.to_vec());
        assert!(plan.waiting.is_empty() && !plan.incomplete);
    }

    #[test]
    fn a_young_next_key_is_waited_for() {
        // The next key was replaced (`keys retire`) 100 s before the period ended.
        let plan = schedule().plan(&keys(0, PERIOD - 100), PERIOD);
        assert!(plan.due.is_empty());
        assert_eq!(plan.waiting.len(), 4);
        assert!(plan
            .waiting
            .iter()
            .all(|(_, wait)| *wait == MIN_PUBLICATION - 100));
        let later = schedule().plan(&keys(0, PERIOD - 100), PERIOD - 100 + MIN_PUBLICATION);
        assert_eq!(later.due.len(), 4);
    }

    #[test]
    fn a_missing_next_key_makes_the_plan_incomplete() {
        let mut rows = keys(0, 0);
        rows.retain(|r| !(r.alg == "ES256" && r.state == "next"));
        let plan = schedule().plan(&rows, PERIOD);
        assert!(plan.incomplete);
        assert!(!plan.due.contains(&SigningAlg::ES256));
        assert_eq!(plan.due.len(), 3);
    }
}
