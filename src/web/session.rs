//! IdP sessions: a server-side row found by the hash of the cookie's random id. A fresh id at
//! every sign-in (no fixation); idle and absolute lifetimes; "log out everywhere" ends every
//! session that started before it.

use actix_web::HttpRequest;

use super::cookies;
use crate::crypto::{b64url, random, sha256};
use crate::state::AppState;
use crate::storage::sessions::{self, SessionRow};
use crate::storage::users::{self, UserRow};
use crate::storage::{AnyConnection, StorageError};

/// How the user signed in (OIDC Core §2: `amr`, `acr`).
pub const AMR_PASSWORD: &str = "pwd";
pub const ACR_PASSWORD: &str = "urn:sigil:acr:password";

/// A live session with its (enabled) user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub sid: String,
    pub user: UserRow,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
}

pub fn hash_id(id: &str) -> String {
    b64url(&sha256(id.as_bytes()))
}

/// The browser's current session, if its cookie names a live one.
pub async fn current(req: &HttpRequest, state: &AppState) -> Result<Option<Session>, StorageError> {
    let Some(id) = cookies::read(req, &state.settings, cookies::SESSION) else {
        return Ok(None);
    };
    let id_hash = hash_id(&id);
    let now = state.clock.now();
    let idle = state.settings.sessions.idle_timeout.as_secs() as i64;
    state
        .db
        .run(move |conn| load(conn, &id_hash, now, idle))
        .await
}

fn load(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: i64,
    idle: i64,
) -> Result<Option<Session>, StorageError> {
    let Some(row) = sessions::live(conn, id_hash, now)? else {
        return Ok(None);
    };
    if row.last_seen_at + idle <= now {
        sessions::end(conn, id_hash, now)?;
        return Ok(None);
    }
    let Some(user) = users::by_id(conn, &row.user_id)? else {
        return Ok(None);
    };
    if user.disabled || row.auth_time <= user.tokens_valid_after {
        return Ok(None);
    }
    // One write a minute at most, not one per request.
    if now - row.last_seen_at >= 60 {
        sessions::touch(conn, id_hash, now)?;
    }
    Ok(Some(Session {
        id_hash: row.id_hash,
        sid: row.sid,
        auth_time: row.auth_time,
        amr: row.amr.split(' ').map(str::to_string).collect(),
        acr: row.acr,
        user,
    }))
}

/// Starts a session for `user` (ending `previous`, if any); returns the cookie value.
pub fn start(
    conn: &mut AnyConnection,
    user: UserRow,
    previous: Option<&str>,
    now: i64,
    lifetime: i64,
) -> Result<(String, Session), StorageError> {
    if let Some(old) = previous {
        sessions::end(conn, &hash_id(old), now)?;
    }
    let id = random::secret_256();
    let row = SessionRow {
        id_hash: hash_id(&id),
        sid: random::id_128(),
        user_id: user.id.clone(),
        auth_time: now,
        amr: AMR_PASSWORD.into(),
        acr: ACR_PASSWORD.into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        ended_at: None,
    };
    sessions::insert(conn, &row)?;
    Ok((
        id,
        Session {
            id_hash: row.id_hash,
            sid: row.sid,
            user,
            auth_time: now,
            amr: vec![AMR_PASSWORD.into()],
            acr: ACR_PASSWORD.into(),
        },
    ))
}
