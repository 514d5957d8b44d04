//! RP-initiated logout (OIDC RP-Initiated Logout 1.0) at the end-session endpoint, GET and
//! POST. A verified `id_token_hint` for the browser's own session (its `sub`, and its `sid` when
//! it has one, are the session's) ends that session at once, then redirects to a registered
//! `post_logout_redirect_uri` (exact match, `state` appended) or shows the signed-out page. A
//! hint alone never ends anything: only the session of the cookie the request carries can end,
//! so an old ID token in anyone's hands logs no one out. Anything less — no hint, a hint that
//! does not verify or names another user or session, an unregistered redirect URI — never
//! redirects: the person is asked on a confirmation page, whose form is CSRF-protected.
//!
//! CSRF design: the confirmation form carries `HMAC-SHA256(key = the session cookie's secret
//! value, "sigil logout confirmation v1")`. Only the browser holding the session can have it
//! (the cookie is HttpOnly, the value is stored nowhere, only its hash), so another session's
//! token never matches, and Sigil keeps no state for it. The POST must also be same-origin
//! (`forms::same_origin`).
//!
//! Ending a session ends the row, clears the cookie, revokes the session's grants that do not
//! hold `offline_access` (OIDC Core §11: offline access outlives the session), and starts
//! back-channel logout for every client that took part (`backchannel`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;
use subtle::ConstantTimeEq;
use url::Url;

use super::flow::grant_horizon;
use super::{backchannel, cookies, forms, session};
use crate::crypto::b64url;
use crate::crypto::keyring::KeySnapshot;
use crate::endpoints::pages::{error_page, render};
use crate::endpoints::paths;
use crate::oauth::client_metadata::Client;
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::{grants, sessions, AnyConnection, StorageError};
use crate::tokens::id_token;

/// What the confirmation form's CSRF token is computed under.
const CSRF_LABEL: &[u8] = b"sigil logout confirmation v1";

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage<'a> {
    username: &'a str,
    client_name: Option<&'a str>,
    action: &'a str,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "logged_out.html")]
struct SignedOutPage;

pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    end_session(
        &req,
        &state,
        Params::parse(
            req.query_string().as_bytes(),
            state.settings.http.max_param_bytes,
        ),
    )
    .await
}

/// §2: the RP may also send its request by POST. The confirmation form posts here too; it is
/// told apart by its `logout` button or its `csrf_token`, which no RP request carries.
pub async fn post(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    match Params::parse(&body, state.settings.http.max_param_bytes) {
        Ok(p) if p.get("logout").is_some() || p.get("csrf_token").is_some() => {
            confirmed(&req, &state, &p).await
        }
        other => end_session(&req, &state, other).await,
    }
}

/// A verified `id_token_hint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sub: String,
    pub sid: Option<String>,
    /// The client the hint was issued to: `client_id` when the request names one, else `azp`,
    /// else the only `aud`.
    pub client_id: Option<String>,
}

/// §2 `id_token_hint`: an ID token Sigil issued. The signature is checked with the published
/// key its `kid` names and that key's own algorithm (so `alg: none`, HS256 keyed with a public
/// key and foreign keys never pass, RFC 8725 §3.1); `iss` must be this issuer, and a given
/// `client_id` must be in `aud`. An expired hint is still a hint (§2: the OP SHOULD accept ID
/// tokens of a current or recent session "even when the exp time has passed"). Access and
/// logout tokens are not ID tokens.
pub fn verify_hint(
    keys: &KeySnapshot,
    token: &str,
    issuer: &str,
    client_id: Option<&str>,
) -> Option<Hint> {
    let (header, claims) = id_token::verify_own(keys, token)?;
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return None,
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(issuer) {
        return None;
    }
    let aud: Vec<&str> = match claims.get("aud")? {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let client_id = match client_id {
        Some(id) if aud.contains(&id) => Some(id),
        Some(_) => return None,
        None => text("azp")
            .filter(|azp| aud.contains(azp))
            .or(if aud.len() == 1 { Some(aud[0]) } else { None }),
    };
    Some(Hint {
        sub: text("sub")?.to_string(),
        sid: text("sid").map(str::to_string),
        client_id: client_id.map(str::to_string),
    })
}

/// What the end-session request leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// End the session, then send the browser to this URL.
    Redirect(Url),
    /// End the session and say so.
    SignOut,
    /// Ask the person first (nothing is ended, nothing redirects).
    Confirm,
}

/// §2–§3: only a verified hint for the browser's own session (`signed_in`: its user and
/// `sid`) ends it without asking, and only a URI registered for the hint's client, compared
/// exactly, is redirected to.
pub fn decide(
    hint: Option<&Hint>,
    client: Option<&Client>,
    redirect_uri: Option<&str>,
    state: Option<&str>,
    signed_in: Option<(&str, &str)>,
) -> Decision {
    let Some(hint) = hint else {
        return Decision::Confirm;
    };
    if let Some((user, sid)) = signed_in {
        // §2: the hint must be for this End-User's session, not another one.
        if user != hint.sub || hint.sid.as_deref().is_some_and(|s| s != sid) {
            return Decision::Confirm;
        }
    }
    let Some(uri) = redirect_uri else {
        return Decision::SignOut;
    };
    let registered = client.is_some_and(|c| {
        Some(c.client_id.as_str()) == hint.client_id.as_deref()
            && c.metadata
                .post_logout_redirect_uris
                .iter()
                .any(|u| u == uri)
    });
    match Url::parse(uri) {
        Ok(mut url) if registered => {
            // §3: `state` goes back as a query parameter; the registered query is kept.
            if let Some(s) = state {
                url.query_pairs_mut().append_pair("state", s);
            }
            Decision::Redirect(url)
        }
        _ => Decision::Confirm,
    }
}

async fn end_session(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: Result<Params, crate::oauth::OAuthError>,
) -> HttpResponse {
    let Ok(params) = params else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "This sign-out request is malformed (a parameter is repeated).",
        );
    };
    let hint = params.get("id_token_hint").and_then(|token| {
        let keys = state.keyring.current();
        verify_hint(
            &keys,
            token,
            state.settings.issuer_str(),
            params.get("client_id"),
        )
    });
    let client_id = match &hint {
        Some(h) => h.client_id.as_deref(),
        None => params.get("client_id"),
    };
    let client = match client_id {
        Some(id) => match state.client(id).await {
            Ok(c) => c,
            Err(e) => return unavailable(e),
        },
        None => None,
    };
    let current = match session::current(req, state).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let decision = decide(
        hint.as_ref(),
        client.as_ref(),
        params.get("post_logout_redirect_uri"),
        params.get("state"),
        current
            .as_ref()
            .map(|s| (s.user.id.as_str(), s.sid.as_str())),
    );
    if hint.is_none() || decision == Decision::Confirm {
        return match current {
            Some(session) => confirmation_page(req, state, &session, client.as_ref()),
            // Nobody is signed in here: there is nothing to confirm.
            None => signed_out(state),
        };
    }
    // `decide` checked that the hint names this very session; without a cookie nothing ends.
    if let Some(s) = &current {
        if let Err(e) = end(state, &s.id_hash, &s.sid, &s.user.id).await {
            return unavailable(e);
        }
    }
    match decision {
        Decision::Redirect(url) => HttpResponse::SeeOther()
            .insert_header(("Location", url.as_str()))
            .insert_header(("Cache-Control", "no-store"))
            .cookie(cookies::removal(&state.settings, cookies::SESSION))
            .finish(),
        _ => signed_out(state),
    }
}

/// Ends one session and notifies the clients that took part in it.
pub async fn end(
    state: &web::Data<AppState>,
    id_hash: &str,
    sid: &str,
    user_id: &str,
) -> Result<(), StorageError> {
    let (id_hash, owned_sid, now) = (id_hash.to_string(), sid.to_string(), state.clock.now());
    let horizon = grant_horizon(&state.settings);
    let clients = state
        .db
        .run(move |c| end_in_db(c, &id_hash, &owned_sid, now, horizon))
        .await?;
    // The session's revoked grants end their access tokens: seen here at once.
    state.verdicts.invalidate();
    backchannel::notify(state, user_id, sid, clients);
    Ok(())
}

/// Ends every live session of `user_id` — for "log out everywhere", a new password or a
/// disabled account — and notifies the clients that took part in each. Returns how many ended.
pub async fn end_every_session(
    state: &web::Data<AppState>,
    user_id: &str,
) -> Result<usize, StorageError> {
    end_sessions_but(state, user_id, None).await
}

/// Ends every live session of `user_id` but the one whose `sid` is `keep` (the account page's
/// "end all other sessions"), like [`end_every_session`]. Returns how many ended.
pub async fn end_sessions_but(
    state: &web::Data<AppState>,
    user_id: &str,
    keep: Option<&str>,
) -> Result<usize, StorageError> {
    let (owned, now) = (user_id.to_string(), state.clock.now());
    let keep = keep.map(str::to_string);
    let horizon = grant_horizon(&state.settings);
    let ended = state
        .db
        .run(move |c| -> Result<_, StorageError> {
            let mut ended = Vec::new();
            let rows = sessions::live_of_user(c, &owned, now)?;
            for row in rows.into_iter().filter(|r| Some(&r.sid) != keep.as_ref()) {
                let clients = end_in_db(c, &row.id_hash, &row.sid, now, horizon)?;
                ended.push((row.sid, clients));
            }
            Ok(ended)
        })
        .await?;
    state.verdicts.invalidate();
    for (sid, clients) in &ended {
        backchannel::notify(state, user_id, sid, clients.clone());
    }
    Ok(ended.len())
}

/// In one transaction: the session ends, and its grants without `offline_access` are revoked
/// (OIDC Core §11). Returns every client that took part in the session. `horizon`:
/// `web::flow::grant_horizon`, how long a revoked grant's access tokens may live.
pub fn end_in_db(
    conn: &mut AnyConnection,
    id_hash: &str,
    sid: &str,
    now: i64,
    horizon: i64,
) -> Result<Vec<String>, StorageError> {
    crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
        sessions::end(conn, id_hash, now)?;
        let mut clients: Vec<String> = Vec::new();
        for grant in grants::by_sid(conn, sid)? {
            let offline = grant.scope.split(' ').any(|s| s == "offline_access");
            if grant.revoked_at.is_none() && !offline {
                grants::revoke_grant(conn, &grant.id, now, horizon)?;
            }
            if !clients.contains(&grant.client_id) {
                clients.push(grant.client_id);
            }
        }
        Ok(clients)
    })
}

/// The confirmation form's POST: same origin and the session-bound CSRF token, or 403 and
/// nothing changes.
async fn confirmed(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: &Params,
) -> HttpResponse {
    if !forms::same_origin(req, state) {
        return forbidden();
    }
    let Some(cookie) = cookies::read(req, &state.settings, cookies::SESSION) else {
        return forbidden();
    };
    let (Some(given), Some(expected)) = (params.get("csrf_token"), csrf_token(&cookie)) else {
        return forbidden();
    };
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return forbidden();
    }
    match session::current(req, state).await {
        Ok(Some(s)) => {
            if let Err(e) = end(state, &s.id_hash, &s.sid, &s.user.id).await {
                return unavailable(e);
            }
        }
        Ok(None) => {}
        Err(e) => return unavailable(e),
    }
    signed_out(state)
}

/// The confirmation form's CSRF token for the session whose cookie value is `session_cookie`.
fn csrf_token(session_cookie: &str) -> Option<String> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(session_cookie.as_bytes()).ok()?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).ok()?;
    signer.update(CSRF_LABEL).ok()?;
    signer.sign_to_vec().ok().map(|mac| b64url(&mac))
}

fn confirmation_page(
    req: &HttpRequest,
    state: &AppState,
    session: &session::Session,
    client: Option<&Client>,
) -> HttpResponse {
    let token = cookies::read(req, &state.settings, cookies::SESSION)
        .as_deref()
        .and_then(csrf_token);
    let Some(token) = token else {
        return failed("no CSRF token for a live session");
    };
    let page = ConfirmPage {
        username: &session.user.username,
        client_name: client.map(Client::display_name),
        action: paths::END_SESSION,
        csrf_token: &token,
    };
    render(StatusCode::OK, &page)
}

fn signed_out(state: &AppState) -> HttpResponse {
    let mut response = render(StatusCode::OK, &SignedOutPage);
    if let Err(e) = response.add_cookie(&cookies::removal(&state.settings, cookies::SESSION)) {
        tracing::error!(error = %e, "could not clear the session cookie");
    }
    response
}

fn forbidden() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "access_denied",
        "This sign-out form was not sent from Sigil's page. You are still signed in.",
    )
}

/// A database that cannot be used for now gets the 503 page; any other failure is Sigil's.
fn unavailable(e: StorageError) -> HttpResponse {
    if e.is_unavailable() {
        return crate::endpoints::pages::unavailable_page();
    }
    failed(e)
}

fn failed(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "sign-out failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "Signing out failed. Try again.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client_metadata::ClientMetadata;

    const BYE: &str = "https://rp.example/bye?from=sigil";

    fn client() -> Client {
        let metadata = ClientMetadata::from_json(
            format!(
                r#"{{"redirect_uris":["https://rp.example/cb"],"post_logout_redirect_uris":["{BYE}"]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        Client {
            client_id: "rp".into(),
            metadata,
            secret: None,
        }
    }

    fn hint(sub: &str) -> Hint {
        Hint {
            sub: sub.into(),
            sid: Some("s".into()),
            client_id: Some("rp".into()),
        }
    }

    #[test]
    fn only_a_verified_hint_and_a_registered_uri_redirect() {
        let (c, h) = (client(), hint("alice"));
        let expected = Url::parse("https://rp.example/bye?from=sigil&state=a+b").unwrap();
        assert_eq!(
            decide(
                Some(&h),
                Some(&c),
                Some(BYE),
                Some("a b"),
                Some(("alice", "s"))
            ),
            Decision::Redirect(expected)
        );
        assert_eq!(
            decide(Some(&h), Some(&c), None, None, None),
            Decision::SignOut
        );
        for uri in [
            "https://rp.example/bye?from=sigil&x=1",
            "https://rp.example/bye",
            "https://rp.example/bye?from=sigil/",
            "https://evil.example/bye?from=sigil",
        ] {
            assert_eq!(
                decide(Some(&h), Some(&c), Some(uri), None, None),
                Decision::Confirm,
                "{uri}"
            );
        }
        assert_eq!(
            decide(None, Some(&c), Some(BYE), None, Some(("alice", "s"))),
            Decision::Confirm
        );
        assert_eq!(
            decide(Some(&h), Some(&c), Some(BYE), None, Some(("bob", "s"))),
            Decision::Confirm,
            "the hint names another user than the one signed in"
        );
        assert_eq!(
            decide(
                Some(&h),
                Some(&c),
                Some(BYE),
                None,
                Some(("alice", "other"))
            ),
            Decision::Confirm,
            "the hint names another session of the same user"
        );
        assert_eq!(
            decide(Some(&h), None, Some(BYE), None, None),
            Decision::Confirm,
            "unknown client"
        );
    }
}
