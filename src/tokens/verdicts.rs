//! A per-node cache of introspection answers for live access tokens, so that a resource server
//! asking about the same token again costs neither a signature check nor a database read.
//!
//! Correctness: an answer is kept only while nothing that could end a token has changed. Every
//! storage function that revokes or ends something a token depends on moves the `tokens`
//! revision in the database (src/storage/revisions.rs); each node polls it every
//! `tokens.revocation_poll` and drops its answers when it moved, and the node that made a change
//! drops them at once (`invalidate`). So a revocation is seen immediately on the node that made
//! it, and within `tokens.revocation_poll` on other nodes and after a CLI change. An answer is
//! never served past the token's own expiry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;

use crate::storage::{revisions, Database};

/// Entries kept at most; when full the cache starts over (a burst of distinct tokens costs one
/// database read each, as without the cache).
const CAPACITY: usize = 50_000;

pub type TokenKey = [u8; 32];

struct Entry {
    generation: u64,
    exp: i64,
    body: Bytes,
}

pub struct Verdicts {
    /// Moves whenever cached answers may be stale; entries from an older generation are dead.
    generation: AtomicU64,
    /// The last `tokens` revision read from the database.
    revision: AtomicI64,
    entries: Mutex<HashMap<TokenKey, Entry>>,
}

impl Default for Verdicts {
    fn default() -> Self {
        Self::new()
    }
}

impl Verdicts {
    pub fn new() -> Self {
        Self {
            generation: AtomicU64::new(0),
            revision: AtomicI64::new(i64::MIN),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn key(token: &str) -> TokenKey {
        crate::crypto::sha256(token.as_bytes())
    }

    /// The generation to pass to `put`, read before the answer is computed: if anything
    /// changes meanwhile, the answer is stored under a dead generation and never served.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &TokenKey, now: i64) -> Option<Bytes> {
        let generation = self.generation();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|e| e.generation == generation && e.exp > now)
            .map(|e| e.body.clone())
    }

    pub fn put(&self, key: TokenKey, exp: i64, generation: u64, body: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if generation != self.generation() {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                generation,
                exp,
                body,
            },
        );
    }

    /// How many answers are held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every answer (this node just revoked or ended something).
    pub fn invalidate(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Records the database's `tokens` revision; drops every answer when it moved.
    pub fn observe(&self, revision: i64) {
        if self.revision.swap(revision, Ordering::AcqRel) != revision {
            self.invalidate();
        }
    }

    /// Reads the revision now (after a change made on this node, or at start).
    pub fn refresh(&self, db: &Database) -> Result<(), crate::storage::StorageError> {
        let revision = db.with_conn(|conn| revisions::current(conn, revisions::TOKENS))?;
        self.observe(revision);
        Ok(())
    }
}

/// The thread that polls the `tokens` revision; it stops when dropped.
pub struct RevisionWatcher {
    _stop: mpsc::Sender<()>,
}

impl RevisionWatcher {
    pub fn start(db: Database, verdicts: Arc<Verdicts>, every: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sigil-revisions".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = verdicts.refresh(&db) {
                        // Without the revision nothing cached can be trusted.
                        verdicts.invalidate();
                        // An outage is logged once by the pool, not at every poll.
                        if e.is_unavailable() {
                            tracing::debug!(error = %e, "could not read the tokens revision");
                        } else {
                            tracing::warn!(error = %e, "could not read the tokens revision");
                        }
                    }
                }
            })
            .expect("spawn the revision watcher thread");
        Self { _stop: stop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_die_with_their_generation_and_expiry() {
        let v = Verdicts::new();
        v.observe(1);
        let key = Verdicts::key("t");
        let g = v.generation();
        v.put(key, 100, g, Bytes::from_static(b"{}"));
        assert!(v.get(&key, 99).is_some());
        assert!(v.get(&key, 100).is_none(), "never past the token's expiry");
        v.observe(1);
        assert!(v.get(&key, 99).is_some(), "same revision keeps answers");
        v.observe(2);
        assert!(v.get(&key, 99).is_none(), "a moved revision drops answers");
        // An answer computed before an invalidation is not stored.
        let before = v.generation();
        v.invalidate();
        v.put(key, 100, before, Bytes::from_static(b"{}"));
        assert!(v.get(&key, 99).is_none());
    }
}
