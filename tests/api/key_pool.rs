//! Signing keys for the apps the tests start, made once and lent out.
//!
//! A fresh database needs an active and a next key per algorithm, four of them RSA at about
//! 0.35 s of CPU each: generating them at every app start was the larger part of the whole
//! suite's CPU time. So [`spawn_app_with`](crate::helpers::spawn_app_with) borrows a set of
//! keys here and stores it (sealed under that app's own master key, through the same
//! `rotation::store_keys` the server's first start uses) before the app starts, and gives the set
//! back when its `TestApp` is dropped. Two apps alive at the same time (in one test, or in two
//! tests running side by side) therefore never hold the same key, and a set is not lent again
//! to the thread that gave it back (each test runs on a thread of its own), so a test that
//! drops an app and starts another does not meet the old keys either: a set is only used again
//! by an app of a later test, which never sees the earlier app's tokens. Keys made by a rotation,
//! and those of the real binary's first start (`sigil migrate`, `sigil serve`), are generated
//! as in production.

use std::sync::{Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use sigil::crypto::keys::{self, GeneratedKey, KeyState, SigningAlg};
use sigil::crypto::master_key::MasterKey;
use sigil::crypto::rotation;
use sigil::storage::Database;

/// An active and a next key for every algorithm, and the thread of the test that had it last.
pub struct KeySet {
    keys: Vec<(KeyState, GeneratedKey)>,
    returned_by: Option<ThreadId>,
}

static FREE: Mutex<Vec<KeySet>> = Mutex::new(Vec::new());

fn free() -> MutexGuard<'static, Vec<KeySet>> {
    // A test that panicked elsewhere leaves the list as it was: still usable.
    FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KeySet {
    fn generate() -> Self {
        let mut set = Vec::new();
        for alg in SigningAlg::ALL {
            for state in [KeyState::Active, KeyState::Next] {
                set.push((state, keys::generate(alg).expect("generate a signing key")));
            }
        }
        Self {
            keys: set,
            returned_by: None,
        }
    }
}

/// One app's borrowed keys; returned to the pool on drop.
pub struct KeyLease(Option<KeySet>);

impl KeyLease {
    pub fn take() -> Self {
        let me = Some(thread::current().id());
        let lent = {
            let mut free = free();
            let other = free.iter().position(|set| set.returned_by != me);
            other.map(|i| free.swap_remove(i))
        };
        Self(Some(lent.unwrap_or_else(KeySet::generate)))
    }

    /// Stores the keys in `db` (migrated) sealed under `master`, as a first start would.
    pub fn store(&self, db: &Database, master: &MasterKey) {
        let set = self
            .0
            .as_ref()
            .expect("a lease holds its keys until dropped");
        let keys: Vec<_> = set.keys.iter().map(|(state, key)| (*state, key)).collect();
        let now = sigil::clock::Clock::system().now();
        let stored = rotation::store_keys(db, master, &keys, now).expect("store signing keys");
        assert_eq!(stored.len(), keys.len(), "a fresh database has no keys yet");
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        if let Some(mut set) = self.0.take() {
            set.returned_by = Some(thread::current().id());
            free().push(set);
        }
    }
}
