//! How callers fared waiting for a database connection, for `/metrics`. A call that finds a
//! turn and an idle connection at once counts nothing, so the common path costs nothing extra;
//! one that had to wait (for a turn, or for a connection to be freed or opened) adds its wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Waits {
    count: AtomicU64,
    micros: AtomicU64,
    timeouts: AtomicU64,
}

impl Waits {
    /// One wait of `took`; `gave_up` when it ended without a connection.
    pub(super) fn record(&self, took: Duration, gave_up: bool) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if gave_up {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The pool as it stands, and its waits since start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolReport {
    /// `database.max_connections`.
    pub max: u32,
    /// Connections open now, in use or idle.
    pub open: u32,
    pub idle: u32,
    /// Calls that found no free turn or idle connection and waited.
    pub waits: u64,
    /// Their time waiting, in all.
    pub wait_seconds: f64,
    /// Waits that ended without a connection (the caller got 503).
    pub timeouts: u64,
}

impl PoolReport {
    pub(super) fn new(state: diesel::r2d2::State, max: u32, waits: &Waits) -> Self {
        Self {
            max,
            open: state.connections,
            idle: state.idle_connections,
            waits: waits.count.load(Ordering::Relaxed),
            wait_seconds: waits.micros.load(Ordering::Relaxed) as f64 / 1e6,
            timeouts: waits.timeouts.load(Ordering::Relaxed),
        }
    }

    pub fn in_use(&self) -> u32 {
        self.open.saturating_sub(self.idle)
    }
}
