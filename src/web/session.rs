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

use super::strength::{self, Acr};

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

impl Session {
    /// How strongly this session's user signed in.
    pub fn strength(&self) -> Acr {
        Acr::stored(&self.acr)
    }
}

/// Where a sign-in came from, kept with its session for the account page.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: String,
    pub client_address: String,
}

impl Origin {
    /// The longest `User-Agent` kept.
    const MAX_USER_AGENT: usize = 256;

    pub fn of(req: &HttpRequest, client_address: String) -> Self {
        let agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut end = agent.len().min(Self::MAX_USER_AGENT);
        while !agent.is_char_boundary(end) {
            end -= 1;
        }
        Origin {
            user_agent: agent[..end].to_string(),
            client_address,
        }
    }
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
    admit(conn, row, now, idle)
}

/// The live session `sid` of `user_id`, if it still is one (the same checks as the cookie's):
/// what Sigil's own account page is bound to.
pub async fn by_sid(
    state: &AppState,
    user_id: &str,
    sid: &str,
) -> Result<Option<Session>, StorageError> {
    let (user_id, sid) = (user_id.to_string(), sid.to_string());
    let now = state.clock.now();
    let idle = state.settings.sessions.idle_timeout.as_secs() as i64;
    state
        .db
        .run(move |conn| {
            let row = sessions::live_of_user(conn, &user_id, now)?
                .into_iter()
                .find(|row| row.sid == sid);
            match row {
                Some(row) => admit(conn, row, now, idle),
                None => Ok(None),
            }
        })
        .await
}

/// A live row is a session while it has been used within the idle timeout and its user may
/// still sign in (enabled, and it began after their `tokens_valid_after`).
fn admit(
    conn: &mut AnyConnection,
    row: SessionRow,
    now: i64,
    idle: i64,
) -> Result<Option<Session>, StorageError> {
    let id_hash = row.id_hash.as_str();
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
        amr: strength::split(&row.amr),
        acr: row.acr,
        user,
    }))
}

/// Starts a session for `user`, who signed in with the methods `amr` (`strength::amr`), ending
/// `previous` if any; returns the cookie value.
pub fn start(
    conn: &mut AnyConnection,
    user: UserRow,
    previous: Option<&str>,
    now: i64,
    lifetime: i64,
    amr: Vec<String>,
    origin: &Origin,
) -> Result<(String, Session), StorageError> {
    let acr = Acr::of(&amr).as_str().to_string();
    if let Some(old) = previous {
        sessions::end(conn, &hash_id(old), now)?;
    }
    let id = random::secret_256();
    let row = SessionRow {
        id_hash: hash_id(&id),
        sid: random::id_128(),
        user_id: user.id.clone(),
        auth_time: now,
        amr: amr.join(" "),
        acr: acr.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        ended_at: None,
        user_agent: origin.user_agent.clone(),
        client_address: origin.client_address.clone(),
    };
    sessions::insert(conn, &row)?;
    Ok((
        id,
        Session {
            id_hash: row.id_hash,
            sid: row.sid,
            user,
            auth_time: now,
            amr,
            acr,
        },
    ))
}

/// Step-up: the session's user gave the factors `amr` now; the session remembers the stronger
/// level and the new authentication time.
pub fn strengthen(
    conn: &mut AnyConnection,
    session: &mut Session,
    amr: Vec<String>,
    now: i64,
) -> Result<(), StorageError> {
    let acr = Acr::of(&amr).as_str().to_string();
    sessions::strengthen(conn, &session.id_hash, &amr.join(" "), &acr, now)?;
    session.amr = amr;
    session.acr = acr;
    session.auth_time = now;
    Ok(())
}
