//! Master key rotation: every private signing key, client secret and TOTP secret re-encrypted
//! under a new master key in one transaction. Each value is opened before it is sealed again, so a value
//! that opens under neither key stops the whole run and nothing changes.

use super::master_key::MasterKey;
use crate::storage::{
    self, clients, factors, grants, signing_keys, AnyConnection, Database, StorageError,
};

/// What a rewrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rewrapped {
    /// Private signing keys re-encrypted (every state, retired ones included).
    pub signing_keys: usize,
    /// Client secrets re-encrypted.
    pub client_secrets: usize,
    /// Users' TOTP secrets re-encrypted (confirmed factors and enrolments waiting alike).
    pub totp_secrets: usize,
    /// Values already sealed under the new key (a second run, or a key a node created after
    /// the first run with the new key): left as they are.
    pub already_under_new_key: usize,
    /// Token answers kept for `tokens.refresh_grace`, dropped rather than re-sealed: they only
    /// serve a client's retry within the grace (at most minutes), and the nodes are stopped.
    pub refresh_answers_dropped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    #[error("the new master key is the one in use; nothing to do")]
    SameKey,
    #[error("{0} opens under neither the current nor the new master key; nothing was changed")]
    Unopenable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<diesel::result::Error> for RewrapError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// Either the value re-sealed under `new`, or `None` when it is already sealed under `new`.
/// `aad` is what the value is bound to (a `kid`, a `client_id`, `totp:` and a user id).
fn reseal(
    current: &MasterKey,
    new: &MasterKey,
    sealed: &[u8],
    aad: &[u8],
    what: impl FnOnce() -> String,
) -> Result<Option<Vec<u8>>, RewrapError> {
    match current.open(sealed, aad) {
        Ok(plain) => new
            .seal(&plain, aad)
            .map(Some)
            .map_err(|e| RewrapError::Storage(StorageError::Corrupt(e.to_string()))),
        Err(_) if new.open(sealed, aad).is_ok() => Ok(None),
        Err(_) => Err(RewrapError::Unopenable(what())),
    }
}

fn rewrap_signing_keys(
    conn: &mut AnyConnection,
    current: &MasterKey,
    new: &MasterKey,
    done: &mut Rewrapped,
) -> Result<(), RewrapError> {
    for key in signing_keys::all(conn)? {
        let what = || format!("signing key {}", key.kid);
        match reseal(current, new, &key.private_sealed, key.kid.as_bytes(), what)? {
            Some(sealed) => {
                signing_keys::reseal(conn, &key.kid, &sealed)?;
                done.signing_keys += 1;
            }
            None => done.already_under_new_key += 1,
        }
    }
    Ok(())
}

fn rewrap_client_secrets(
    conn: &mut AnyConnection,
    current: &MasterKey,
    new: &MasterKey,
    done: &mut Rewrapped,
) -> Result<(), RewrapError> {
    for client in clients::all(conn)? {
        let Some(sealed) = &client.secret_sealed else {
            continue;
        };
        let what = || format!("the secret of client {:?}", client.client_id);
        match reseal(current, new, sealed, client.client_id.as_bytes(), what)? {
            Some(sealed) => {
                clients::reseal(conn, &client.client_id, &sealed)?;
                done.client_secrets += 1;
            }
            None => done.already_under_new_key += 1,
        }
    }
    Ok(())
}

fn rewrap_totp_secrets(
    conn: &mut AnyConnection,
    current: &MasterKey,
    new: &MasterKey,
    done: &mut Rewrapped,
) -> Result<(), RewrapError> {
    for row in factors::all_totp(conn)? {
        let what = || format!("the TOTP secret of user {:?}", row.user_id);
        let aad = crate::factors::totp_aad(&row.user_id);
        match reseal(current, new, &row.secret_sealed, &aad, what)? {
            Some(sealed) => {
                factors::reseal_totp(conn, &row.user_id, &sealed)?;
                done.totp_secrets += 1;
            }
            None => done.already_under_new_key += 1,
        }
    }
    Ok(())
}

/// Re-encrypts everything sealed under `current` with `new`, in one transaction under the key
/// lock (so no rotation seals a key under the old master key meanwhile).
pub fn rewrap(
    db: &Database,
    current: &MasterKey,
    new: &MasterKey,
    now: i64,
) -> Result<Rewrapped, RewrapError> {
    if current.to_base64() == new.to_base64() {
        return Err(RewrapError::SameKey);
    }
    db.with_conn(|conn| {
        crate::storage::transaction::<_, RewrapError, _>(conn, |conn| {
            storage::lock(conn, "signing_keys", now)?;
            let mut done = Rewrapped::default();
            rewrap_signing_keys(conn, current, new, &mut done)?;
            rewrap_client_secrets(conn, current, new, &mut done)?;
            rewrap_totp_secrets(conn, current, new, &mut done)?;
            done.refresh_answers_dropped = grants::forget_kept_answers(conn)?;
            Ok(done)
        })
    })
}
