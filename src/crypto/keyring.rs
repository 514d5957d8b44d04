//! The signing keys a node holds in memory: parsed once when loaded (never per token), shared
//! by every worker, and replaced whole when the database says the keys changed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use josekit::jws::{JwsSigner, JwsVerifier};
use serde_json::{Map, Value};

use super::keys::{self, KeyState, SigningAlg};
use super::master_key::MasterKey;
use crate::published::Published;
use crate::storage::signing_keys::KeyRow;
use crate::storage::StorageError;

/// A key that signs now.
pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub signer: Box<dyn JwsSigner>,
    /// When it began to sign (Unix seconds): the rotation schedule counts from here.
    pub activated_at: i64,
}

/// A published key, for checking signatures Sigil made.
pub struct PublicKey {
    pub alg: SigningAlg,
    pub state: KeyState,
    pub verifier: Box<dyn JwsVerifier>,
}

/// Everything derived from one reading of the key table.
pub struct KeySnapshot {
    active: HashMap<SigningAlg, ActiveKey>,
    public: HashMap<String, PublicKey>,
    /// `(kid, state)` of every published key, sorted by kid: compared on each refresh.
    pub fingerprint: Vec<(String, String)>,
    /// The earliest `retire_after` among retiring keys.
    pub next_retirement: Option<i64>,
    pub jwks: Published,
}

impl KeySnapshot {
    /// Builds signers for active keys and verifiers for every published key.
    pub fn build(rows: &[KeyRow], master: &MasterKey) -> Result<Self, StorageError> {
        let corrupt =
            |kid: &str, what: String| StorageError::Corrupt(format!("signing key {kid}: {what}"));
        let mut active = HashMap::new();
        let mut public = HashMap::new();
        let mut jwks_keys = Vec::new();
        let mut fingerprint = Vec::new();
        let mut next_retirement: Option<i64> = None;
        for row in rows {
            let alg: SigningAlg = row.alg.parse().map_err(|e| corrupt(&row.kid, e))?;
            let state: KeyState = row.state.parse().map_err(|e| corrupt(&row.kid, e))?;
            if !state.is_published() {
                continue;
            }
            let jwk: Map<String, Value> = serde_json::from_str(&row.public_jwk)
                .map_err(|e| corrupt(&row.kid, e.to_string()))?;
            let verifier =
                keys::verifier(alg, &jwk).map_err(|e| corrupt(&row.kid, e.to_string()))?;
            if state == KeyState::Active {
                let der = master
                    .open(&row.private_sealed, row.kid.as_bytes())
                    .map_err(|e| corrupt(&row.kid, e.to_string()))?;
                let signer = keys::signer(alg, &der, &row.kid)
                    .map_err(|e| corrupt(&row.kid, e.to_string()))?;
                if active
                    .insert(
                        alg,
                        ActiveKey {
                            kid: row.kid.clone(),
                            alg,
                            signer,
                            activated_at: row.activated_at.unwrap_or(row.created_at),
                        },
                    )
                    .is_some()
                {
                    return Err(corrupt(&row.kid, format!("a second active {alg} key")));
                }
            }
            if state == KeyState::Retiring {
                if let Some(t) = row.retire_after {
                    next_retirement = Some(next_retirement.map_or(t, |n| n.min(t)));
                }
            }
            public.insert(
                row.kid.clone(),
                PublicKey {
                    alg,
                    state,
                    verifier,
                },
            );
            fingerprint.push((row.kid.clone(), row.state.clone()));
            jwks_keys.push(Value::Object(jwk));
        }
        fingerprint.sort();
        let body = serde_json::to_vec(&serde_json::json!({ "keys": jwks_keys }))
            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(Self {
            active,
            public,
            fingerprint,
            next_retirement,
            jwks: Published::new(body),
        })
    }

    pub fn active(&self, alg: SigningAlg) -> Option<&ActiveKey> {
        self.active.get(&alg)
    }

    /// The keys that sign now, one per algorithm.
    pub fn active_keys(&self) -> impl Iterator<Item = &ActiveKey> {
        self.active.values()
    }

    /// Every published key by kid.
    pub fn published(&self) -> impl Iterator<Item = (&str, &PublicKey)> {
        self.public.iter().map(|(kid, key)| (kid.as_str(), key))
    }

    pub fn public_key(&self, kid: &str) -> Option<&PublicKey> {
        self.public.get(kid)
    }
}

/// The node's current snapshot; readers clone an `Arc`, a refresh swaps it.
pub struct Keyring {
    current: RwLock<Arc<KeySnapshot>>,
}

impl Keyring {
    pub fn new(snapshot: KeySnapshot) -> Self {
        Self {
            current: RwLock::new(Arc::new(snapshot)),
        }
    }

    pub fn current(&self) -> Arc<KeySnapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, snapshot: KeySnapshot) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }
}
