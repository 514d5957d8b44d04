//! Each `private_key_jwt` client's verifying keys, parsed once and kept per client: keys
//! registered inline (`jwks`) until the registration changes; keys behind a `jwks_uri` for
//! [`FRESH_SECS`], fetched again sooner only for an unknown `kid` and at most once every
//! [`REFETCH_SECS`] (a client rotating its keys is followed quickly, and no one can make
//! Sigil hammer a `jwks_uri`). Fetches go through [`Outbound`] (SSRF rules, time and size
//! limits), one at a time per client.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::client_keys::{self, AssertionAlg, VerifyingKey};
use super::client_metadata::Client;
use crate::outbound::{Outbound, OutboundError};

/// How long fetched keys are used without asking the `jwks_uri` again.
pub const FRESH_SECS: i64 = 300;
/// The shortest time between two fetches for one client.
pub const REFETCH_SECS: i64 = 60;

pub type Keys = Arc<[VerifyingKey]>;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("the client registered neither jwks nor jwks_uri")]
    NoKeys,
    #[error("jwks_uri: {0}")]
    Fetch(#[from] OutboundError),
    #[error("jwks_uri was asked less than {REFETCH_SECS} s ago and gave no keys")]
    NotYet,
}

/// Where a client's keys come from; a cached set is used only for the same source.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Inline(Value),
    Uri(String),
}

struct Entry {
    source: Source,
    pinned: Option<AssertionAlg>,
    keys: Option<Keys>,
    fetched_at: i64,
    tried_at: Option<i64>,
    /// Held while this client's `jwks_uri` is fetched.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Entry {
    fn new(source: Source, pinned: Option<AssertionAlg>) -> Self {
        Self {
            source,
            pinned,
            keys: None,
            fetched_at: 0,
            tried_at: None,
            gate: Arc::default(),
        }
    }

    fn is_for(&self, source: &Source, pinned: Option<AssertionAlg>) -> bool {
        self.source == *source && self.pinned == pinned
    }

    /// Keys that may be used now: inline ones always, fetched ones while fresh.
    fn usable(&self, now: i64) -> Option<&Keys> {
        let fresh = match self.source {
            Source::Inline(_) => true,
            Source::Uri(_) => now - self.fetched_at < FRESH_SECS,
        };
        self.keys.as_ref().filter(|_| fresh)
    }

    /// Usable keys that know `kid` (any usable keys when there is no `kid`). A set without a
    /// single usable key answers nothing, so it is fetched again (at most once a minute).
    fn answers(&self, kid: Option<&str>, now: i64) -> Option<Keys> {
        let knows = |keys: &Keys| match kid {
            Some(kid) => keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
            None => !keys.is_empty(),
        };
        self.usable(now).filter(|keys| knows(keys)).cloned()
    }
}

/// Verifying keys per client id.
#[derive(Default)]
pub struct ClientKeyCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl ClientKeyCache {
    const MAX_ENTRIES: usize = 10_000;

    /// The keys to check an assertion of `client` that names `kid`.
    pub async fn keys(
        &self,
        outbound: &Outbound,
        client: &Client,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Keys, KeysError> {
        let pinned = client
            .metadata
            .token_endpoint_auth_signing_alg
            .as_deref()
            .and_then(AssertionAlg::parse);
        self.keys_pinned(outbound, client, &client.client_id, pinned, kid, now)
            .await
    }

    /// The keys to check a request object of `client` (RFC 9101) that names `kid`: those of
    /// its registered `request_object_signing_alg`, cached apart from its assertion keys so
    /// that the two uses never evict each other.
    pub async fn request_object_keys(
        &self,
        outbound: &Outbound,
        client: &Client,
        pinned: Option<AssertionAlg>,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Keys, KeysError> {
        let slot = format!("{}\u{0}request", client.client_id);
        self.keys_pinned(outbound, client, &slot, pinned, kid, now)
            .await
    }

    /// The client's keys that fit `pinned`, cached under `slot`.
    async fn keys_pinned(
        &self,
        outbound: &Outbound,
        client: &Client,
        slot: &str,
        pinned: Option<AssertionAlg>,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Keys, KeysError> {
        let m = &client.metadata;
        let source = match (&m.jwks, &m.jwks_uri) {
            (Some(jwks), _) => Source::Inline(jwks.clone()),
            (None, Some(uri)) => Source::Uri(uri.clone()),
            (None, None) => return Err(KeysError::NoKeys),
        };
        if let Some(keys) = self.cached(slot, &source, pinned, kid, now) {
            return Ok(keys);
        }
        match &source {
            Source::Inline(jwks) => {
                let keys: Keys = client_keys::from_jwks(jwks, pinned).into();
                self.store(slot, source.clone(), pinned, |e| {
                    e.keys = Some(keys.clone());
                });
                Ok(keys)
            }
            Source::Uri(uri) => self.fetch(outbound, slot, uri, pinned, kid, now).await,
        }
    }

    fn cached(
        &self,
        slot: &str,
        source: &Source,
        pinned: Option<AssertionAlg>,
        kid: Option<&str>,
        now: i64,
    ) -> Option<Keys> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(slot)
            .filter(|e| e.is_for(source, pinned))
            .and_then(|e| e.answers(kid, now))
    }

    /// Fetches the `jwks_uri` unless another request just did (or is doing) it.
    async fn fetch(
        &self,
        outbound: &Outbound,
        slot: &str,
        uri: &str,
        pinned: Option<AssertionAlg>,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Keys, KeysError> {
        let source = Source::Uri(uri.to_string());
        let gate = self.store(slot, source.clone(), pinned, |e| e.gate.clone());
        let _one_at_a_time = gate.lock().await;
        // Another request may have fetched while this one waited, or may have tried lately.
        let recent = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            let entry = entries.get(slot).filter(|e| e.is_for(&source, pinned));
            if let Some(keys) = entry.and_then(|e| e.answers(kid, now)) {
                return Ok(keys);
            }
            entry
                .filter(|e| e.tried_at.is_some_and(|t| now - t < REFETCH_SECS))
                .map(|e| e.usable(now).cloned())
        };
        if let Some(usable) = recent {
            return usable.ok_or(KeysError::NotYet);
        }
        self.store(slot, source.clone(), pinned, |e| e.tried_at = Some(now));
        match outbound.get_json(uri).await {
            Ok(document) => {
                let keys: Keys = client_keys::from_jwks(&document, pinned).into();
                self.store(slot, source, pinned, |e| {
                    e.keys = Some(keys.clone());
                    e.fetched_at = now;
                });
                Ok(keys)
            }
            Err(e) => {
                // Keys fetched earlier stay in use until they are stale.
                let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
                entries
                    .get(slot)
                    .and_then(|entry| entry.usable(now).cloned())
                    .ok_or(KeysError::Fetch(e))
            }
        }
    }

    /// Applies `update` to the client's entry, replacing an entry for another source.
    fn store<T>(
        &self,
        slot: &str,
        source: Source,
        pinned: Option<AssertionAlg>,
        update: impl FnOnce(&mut Entry) -> T,
    ) -> T {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= Self::MAX_ENTRIES && !entries.contains_key(slot) {
            entries.clear();
        }
        let entry = entries
            .entry(slot.to_string())
            .or_insert_with(|| Entry::new(source.clone(), pinned));
        if !entry.is_for(&source, pinned) {
            *entry = Entry::new(source, pinned);
        }
        update(entry)
    }
}
