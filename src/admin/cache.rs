//! A per-node cache of recently loaded registrations (clients, resource servers), so that hot
//! paths need no database read. A new entry is found at once (a miss reads the database); a
//! changed or removed one is seen within `ttl` (`clients.cache_ttl`). Unknown ids are never
//! cached, so nobody can fill the cache with them.

use std::collections::HashMap;
use std::sync::RwLock;

pub struct TtlCache<V> {
    ttl: i64,
    entries: RwLock<HashMap<String, (V, i64)>>,
}

impl<V: Clone> TtlCache<V> {
    const MAX_ENTRIES: usize = 10_000;

    /// A cache keeping entries `ttl_secs` (0: nothing is kept).
    pub fn new(ttl_secs: i64) -> Self {
        Self {
            ttl: ttl_secs,
            entries: RwLock::default(),
        }
    }

    pub fn get(&self, key: &str, now: i64) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| now - at < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: &str, value: &V, now: i64) {
        if self.ttl <= 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.retain(|_, (_, at)| now - *at < self.ttl);
            if entries.len() >= Self::MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key.to_string(), (value.clone(), now));
    }

    /// Drops `key`: this node reads the changed or removed registration at its next use.
    pub fn forget(&self, key: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.remove(key);
    }
}
