//! The first-party session: what a page of Sigil's own (`/account`, `/admin/`) knows of the
//! browser after its first-party client signed in through `/authorize` like any app.
//!
//! Design: no table. The session is a cookie (HttpOnly, SameSite=Lax, `__Host-`/Secure under
//! HTTPS, like `web::cookies`) holding the IdP session's `sid`, the user, `auth_time` and `acr`
//! from the grant and an expiry, MACed with HMAC-SHA256 under a key derived from the master key
//! and the site's label (so every node sharing the master key accepts it, a cookie of one site
//! is nothing to another, and nothing is stored in clear anywhere). It is bound to the IdP
//! session `sid`: every request looks that session up (live, not idle, its user enabled and
//! signed in after `tokens_valid_after`), so the first-party session ends with it — logout,
//! "end session", a new password, a disabled user.
//!
//! CSRF: every form carries `HMAC(key, "csrf" ‖ cookie value)`; only the browser holding the
//! HttpOnly cookie can have it, a new sign-in (new cookie) makes a new one.
//!
//! Signing in: the page without a session answers 303 to `/authorize` with `state` and a PKCE
//! S256 challenge; `state`, the verifier and where to go back to wait in a short-lived cookie
//! (10 minutes) for the site's callback.

use actix_web::cookie::Cookie;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use url::Url;

use crate::crypto::{b64url, hmac_sha256, random, sha256};
use crate::endpoints::paths;
use crate::state::AppState;
use crate::storage::StorageError;
use crate::web::cookies;
use crate::web::session::{self, Session};

use super::Site;

/// How long a sign-in to a first-party page may take.
const LOGIN_TTL: i64 = 600;

/// What the cookie carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sid: String,
    pub sub: String,
    pub auth_time: i64,
    pub acr: String,
    pub exp: i64,
}

/// A live first-party session.
#[derive(Debug, Clone)]
pub struct Account {
    /// The cookie's value (the CSRF token is derived from it).
    pub cookie: String,
    /// The IdP session it is bound to, with its user.
    pub session: Session,
    /// When the user last authenticated for the site (the grant's `auth_time`).
    pub auth_time: i64,
    pub acr: String,
}

impl Account {
    /// Whether the last authentication is recent enough for a change on `site`.
    pub fn is_fresh(&self, site: &Site, now: i64) -> bool {
        now - self.auth_time <= site.fresh
    }
}

fn seal_with(key: &[u8], claims: &Claims) -> String {
    let payload = b64url(&serde_json::to_vec(claims).expect("claims serialize"));
    let mac = hmac_sha256(key, &[b"session\0", payload.as_bytes()]);
    format!("{payload}.{}", b64url(&mac))
}

/// The claims of a genuine cookie value (its MAC checked in constant time), else `None`.
fn open_with(key: &[u8], value: &str) -> Option<Claims> {
    let (payload, mac) = value.split_once('.')?;
    let expected = b64url(&hmac_sha256(key, &[b"session\0", payload.as_bytes()]));
    if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// Claims for a session bound to `session`, authenticated at `auth_time`.
pub fn claims_for(state: &AppState, session: &Session, auth_time: i64, acr: &str) -> Claims {
    Claims {
        sid: session.sid.clone(),
        sub: session.user.id.clone(),
        auth_time,
        acr: acr.to_string(),
        exp: state.clock.now() + state.settings.sessions.lifetime.as_secs() as i64,
    }
}

/// Where the browser goes once signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    /// The site's page.
    Page,
    /// The site's page, saying that the change must be made again.
    Reauth,
}

impl Back {
    fn as_str(self) -> &'static str {
        match self {
            Back::Page => "page",
            Back::Reauth => "reauth",
        }
    }

    fn parse(value: &str) -> Option<Back> {
        [Back::Page, Back::Reauth]
            .into_iter()
            .find(|b| b.as_str() == value)
    }
}

/// What the site's callback needs from the sign-in this browser started.
pub struct Pending {
    pub state: String,
    pub verifier: String,
    pub back: Back,
}

impl Site {
    fn key(&self, state: &AppState) -> [u8; 32] {
        state.master.derive(self.key_label)
    }

    /// The cookie value for `claims`: `base64url(JSON) "." base64url(MAC)`.
    pub fn seal(&self, state: &AppState, claims: &Claims) -> String {
        seal_with(&self.key(state), claims)
    }

    /// The forms' CSRF token for the first-party session whose cookie is `cookie`.
    pub fn csrf_token(&self, state: &AppState, cookie: &str) -> String {
        b64url(&hmac_sha256(
            &self.key(state),
            &[b"csrf\0", cookie.as_bytes()],
        ))
    }

    /// Whether `given` is the CSRF token of `account`.
    pub fn csrf_matches(&self, state: &AppState, account: &Account, given: Option<&str>) -> bool {
        let expected = self.csrf_token(state, &account.cookie);
        given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
    }

    /// The browser's session on this site, if its cookie is genuine, unexpired, and its IdP session
    /// still lives.
    pub async fn current(
        &self,
        req: &HttpRequest,
        state: &AppState,
    ) -> Result<Option<Account>, StorageError> {
        let Some(cookie) = cookies::read(req, &state.settings, self.cookie) else {
            return Ok(None);
        };
        let Some(claims) = open_with(&self.key(state), &cookie) else {
            return Ok(None);
        };
        if claims.exp <= state.clock.now() {
            return Ok(None);
        }
        let Some(session) = session::by_sid(state, &claims.sub, &claims.sid).await? else {
            return Ok(None);
        };
        Ok(Some(Account {
            cookie,
            session,
            auth_time: claims.auth_time,
            acr: claims.acr,
        }))
    }

    /// The site's session cookie for `claims`.
    pub fn cookie(&self, state: &AppState, claims: &Claims) -> Cookie<'static> {
        cookies::build(&state.settings, self.cookie, self.seal(state, claims))
    }

    /// The pending sign-in of this browser, if any (the cookie is short-lived and HttpOnly).
    pub fn pending(&self, req: &HttpRequest, state: &AppState) -> Option<Pending> {
        let value = cookies::read(req, &state.settings, self.login_cookie)?;
        let mut parts = value.split('.');
        let (s, v, b) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Pending {
            state: s.to_string(),
            verifier: v.to_string(),
            back: Back::parse(b)?,
        })
    }

    pub fn forget_pending(&self, state: &AppState) -> Cookie<'static> {
        cookies::removal(&state.settings, self.login_cookie)
    }

    /// The redirect URI Sigil registered for the site's client.
    pub fn redirect_uri(&self, state: &AppState) -> String {
        state.settings.endpoint_url(self.callback)
    }

    /// 303 to `/authorize` for the site's client (PKCE S256, `state`), remembering both in the
    /// pending cookie; `max_age` for a re-authentication (OIDC Core §3.1.2.1).
    pub fn sign_in(&self, state: &AppState, back: Back, max_age: Option<i64>) -> HttpResponse {
        let (st, verifier) = (random::secret_256(), random::secret_256());
        let challenge = b64url(&sha256(verifier.as_bytes()));
        let mut url =
            Url::parse(&state.settings.endpoint_url(paths::AUTHORIZE)).expect("issuer URL");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri(state))
            .append_pair("scope", "openid")
            .append_pair("state", &st)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(max_age) = max_age {
            url.query_pairs_mut()
                .append_pair("max_age", &max_age.to_string());
        }
        let value = format!("{st}.{verifier}.{}", back.as_str());
        HttpResponse::SeeOther()
            .insert_header(("Location", url.as_str()))
            .insert_header(("Cache-Control", "no-store"))
            .cookie(cookies::lasting(
                &state.settings,
                self.login_cookie,
                value,
                LOGIN_TTL,
            ))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::master_key::MasterKey;

    fn claims() -> Claims {
        Claims {
            sid: "s".into(),
            sub: "u".into(),
            auth_time: 1,
            acr: "pwd".into(),
            exp: 2,
        }
    }

    #[test]
    fn only_a_cookie_sealed_under_this_master_key_opens() {
        let key = MasterKey::generate().derive(b"sigil account session v1");
        let value = seal_with(&key, &claims());
        let opened = open_with(&key, &value).expect("opens");
        assert_eq!((opened.sid.as_str(), opened.auth_time), ("s", 1));
        // Another master key, a changed payload, a cut MAC: nothing.
        let other = MasterKey::generate().derive(b"sigil account session v1");
        assert!(open_with(&other, &value).is_none());
        let (payload, mac) = value.split_once('.').unwrap();
        let mut forged = claims();
        forged.auth_time = i64::MAX;
        let forged = b64url(&serde_json::to_vec(&forged).unwrap());
        assert!(open_with(&key, &format!("{forged}.{mac}")).is_none());
        assert!(open_with(&key, &format!("{payload}.{}", &mac[1..])).is_none());
        assert!(open_with(&key, payload).is_none());
        // The label separates uses: the session key is not the master key's other keys.
        let master = MasterKey::generate();
        assert_ne!(
            master.derive(b"sigil account session v1"),
            master.derive(b"another use")
        );
    }
}
