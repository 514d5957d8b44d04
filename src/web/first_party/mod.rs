//! Sigil's own pages, `/account` and `/admin/`: each is a first-party client of Sigil (public,
//! PKCE S256, `skip_consent`) that signs in through the ordinary `/authorize` → login → code
//! path and redeems its code in-process through the token endpoint's own redemption
//! (`endpoints::token::redeem_code`), never over HTTP to itself. A [`Site`] names what differs
//! between them: the client, its cookies and paths, how recent an authentication a change
//! needs, and the least authentication strength (`minimum_acr`) its client is registered with.
//! `session` holds the session design.
//!
//! Every change is a POST that passes [`Site::guard`]: same origin, the session's CSRF token,
//! and an authentication within the site's `fresh` window (else 303 to `/authorize` with
//! `max_age`, and nothing is applied: the user makes the change again).

pub mod session;

pub use session::{claims_for, Account, Back, Claims, Pending};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::client_address::{self, ClientAddress};
use super::forms;
use super::strength::Acr;
use crate::admin::clients as admin_clients;
use crate::audit::{Actor, Event, EventType};
use crate::config::Settings;
use crate::crypto::master_key::MasterKey;
use crate::endpoints::pages::error_page;
use crate::endpoints::token;
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::users::UserRow;
use crate::storage::{clients, AnyConnection, StorageError};

/// One first-party page of Sigil's.
pub struct Site {
    /// Its client, registered at start (`ensure_client`).
    pub client_id: &'static str,
    pub client_name: &'static str,
    /// The level its client's tokens need (the client's `minimum_acr`).
    pub minimum_acr: Option<Acr>,
    /// The session cookie and the pending sign-in's cookie.
    pub cookie: &'static str,
    pub login_cookie: &'static str,
    /// The page a sign-in comes back to, and the redirect URI's path.
    pub home: &'static str,
    pub callback: &'static str,
    /// Every change needs an authentication this recent (seconds).
    pub fresh: i64,
    /// What the master key is expanded under for the session's MACs.
    pub key_label: &'static [u8],
    /// The site in words, inside a sentence ("your account page").
    pub name: &'static str,
    /// The audit events of a sign-in to the site and of a change refused as not fresh.
    pub signed_in: EventType,
    pub reauthentication_required: EventType,
}

impl Site {
    /// Registers the site's client (at start and at `sigil migrate`) unless it is registered
    /// as the page needs it: redirect URI `<issuer><callback>` only, public with PKCE, scope
    /// `openid`, no consent, the site's `minimum_acr`. A registration that differs (the issuer
    /// moved) is replaced. Returns whether it registered.
    pub fn ensure_client(
        &self,
        conn: &mut AnyConnection,
        master: &MasterKey,
        settings: &Settings,
        now: i64,
    ) -> Result<bool, StorageError> {
        let redirect = settings.endpoint_url(self.callback);
        let mut metadata = json!({
            "client_name": self.client_name,
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid",
            "skip_consent": true,
        });
        if let Some(acr) = self.minimum_acr {
            metadata["minimum_acr"] = acr.as_str().into();
        }
        if let Some(row) = clients::get(conn, self.client_id)? {
            let m = admin_clients::metadata_of(&row)?;
            let as_needed = m.redirect_uris == [redirect.clone()]
                && m.skip_consent
                && !m.token_endpoint_auth_method.is_confidential()
                && m.scope == "openid"
                && m.minimum_acr == self.minimum_acr;
            if as_needed {
                return Ok(false);
            }
            clients::remove(conn, self.client_id)?;
        }
        match admin_clients::register(
            conn,
            master,
            metadata.to_string().as_bytes(),
            Some(self.client_id.into()),
            now,
        ) {
            Ok(_) => Ok(true),
            // Another node registered it at the same moment.
            Err(admin_clients::ClientError::Storage(StorageError::Conflict(_))) => Ok(false),
            Err(admin_clients::ClientError::Storage(e)) => Err(e),
            Err(admin_clients::ClientError::Metadata(e)) => Err(StorageError::Corrupt(format!(
                "the client {}'s metadata: {e}",
                self.client_id
            ))),
        }
    }

    /// 303 to `path` (a page of the site), with the notice code `done` if any.
    pub fn to_page(&self, state: &AppState, path: &str, done: Option<&str>) -> HttpResponse {
        let mut url = url::Url::parse(&state.settings.endpoint_url(path)).expect("issuer");
        if let Some(done) = done {
            url.query_pairs_mut().append_pair("done", done);
        }
        HttpResponse::SeeOther()
            .insert_header(("Location", url.as_str()))
            .insert_header(("Cache-Control", "no-store"))
            .finish()
    }

    /// The site's callback: the authorization response for its client. `state` must be the
    /// one this browser's pending sign-in holds; the code is redeemed in-process with its PKCE
    /// verifier; the session is bound to the grant's IdP session. Back at the home page, with
    /// the notice `reauth` when a change was refused for want of a fresh sign-in.
    pub async fn callback(&self, req: &HttpRequest, state: &AppState) -> HttpResponse {
        let Ok(params) = Params::parse(
            req.query_string().as_bytes(),
            state.settings.http.max_param_bytes,
        ) else {
            return refused("This sign-in answer is malformed.");
        };
        let again = format!("Open {} again.", self.name);
        let Some(pending) = self.pending(req, state) else {
            return refused(&format!(
                "This sign-in to {} has expired. {again}",
                self.name
            ));
        };
        // RFC 6749 §10.12: the answer must be to the request this browser made.
        let same = params
            .get("state")
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
        if !same {
            return refused(&format!(
                "This sign-in answer is not for this browser. {again}"
            ));
        }
        // RFC 9207: from this issuer.
        if params
            .get("iss")
            .is_some_and(|iss| iss != state.settings.issuer_str())
        {
            return refused("This sign-in answer is not from this server.");
        }
        let unfinished = format!("Signing in to {} did not complete. {again}", self.name);
        if let Some(error) = params.get("error") {
            tracing::info!(
                error,
                client_id = self.client_id,
                "a first-party sign-in ended with an error"
            );
            return refused(&unfinished);
        }
        let Some(code) = params.get("code") else {
            return refused("This sign-in answer has no code.");
        };
        let client = match state.client(self.client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return broken(format!("the client {} is not registered", self.client_id)),
            Err(e) => return failed(e),
        };
        let redeemed = token::redeem_code(
            state,
            &client,
            code.to_string(),
            self.redirect_uri(state),
            Some(pending.verifier.clone()),
            None,
        )
        .await;
        let grant = match redeemed {
            Ok(r) => r.grant,
            Err(e) => {
                tracing::info!(error = %e.code.as_str(), client_id = self.client_id, "a first-party code was refused");
                return refused(&unfinished);
            }
        };
        let idp = match super::session::by_sid(state, &grant.user_id, &grant.sid).await {
            Ok(Some(idp)) => idp,
            Ok(None) => return self.sign_in(state, pending.back, None),
            Err(e) => return failed(e),
        };
        let claims = claims_for(state, &idp, grant.auth_time, &grant.acr);
        audit(state, event(req, state, &idp.user, self.signed_in)).await;
        let reauth = (pending.back == Back::Reauth).then_some("reauth");
        let mut response = self.to_page(state, self.home, reauth);
        for cookie in [self.cookie(state, &claims), self.forget_pending(state)] {
            if let Err(e) = response.add_cookie(&cookie) {
                return broken(e);
            }
        }
        response
    }

    /// Every change's checks, in order: the form parses, same origin, a live session (else
    /// sign in again), its CSRF token, and a fresh authentication (else `max_age` = `fresh`).
    /// Any failure is the answer, and nothing was changed.
    pub async fn guard(
        &self,
        req: &HttpRequest,
        state: &AppState,
        body: &[u8],
    ) -> Result<(Params, Account), HttpResponse> {
        let params = Params::parse(body, state.settings.http.max_param_bytes)
            .map_err(|_| self.forbidden())?;
        if !forms::same_origin(req, state) {
            return Err(self.forbidden());
        }
        let account = match self.current(req, state).await {
            Ok(Some(account)) => account,
            Ok(None) => return Err(self.sign_in(state, Back::Reauth, None)),
            Err(e) => return Err(failed(e)),
        };
        if !self.csrf_matches(state, &account, params.get("csrf_token")) {
            return Err(self.forbidden());
        }
        self.fresh_or_reprompt(req, state, &account).await?;
        Ok((params, account))
    }

    /// `Ok` when `account` authenticated within the site's window; else the re-prompt (an
    /// audit event, and 303 to sign in again with `max_age`).
    pub async fn fresh_or_reprompt(
        &self,
        req: &HttpRequest,
        state: &AppState,
        account: &Account,
    ) -> Result<(), HttpResponse> {
        if account.is_fresh(self, state.clock.now()) {
            return Ok(());
        }
        let kind = self.reauthentication_required;
        audit(state, event(req, state, &account.session.user, kind)).await;
        Err(self.sign_in(state, Back::Reauth, Some(self.fresh)))
    }

    /// A form that did not come from the site's own page.
    pub fn forbidden(&self) -> HttpResponse {
        error_page(
            StatusCode::FORBIDDEN,
            "access_denied",
            &format!(
                "This form was not sent from {}. Nothing was changed.",
                self.name
            ),
        )
    }
}

/// The client address of `req` (after trusted proxies).
pub fn address(req: &HttpRequest, state: &AppState) -> ClientAddress {
    client_address::of(req, &state.settings.http.trusted_proxies)
}

/// The audit event of a change by the signed-in `user`, from `req`'s client address; the
/// target is the user's own name (the caller may name another).
pub fn event(req: &HttpRequest, state: &AppState, user: &UserRow, kind: EventType) -> Event {
    Event::new(kind, Actor::user(user))
        .target(user.username.as_str())
        .from(address(req, state))
}

/// Stores `event` on its own, after a change that has no transaction of its own to join (a
/// storage failure is logged: the change itself stands).
pub async fn audit(state: &AppState, event: Event) {
    let now = state.clock.now();
    let stored = state
        .db
        .run(move |c| -> Result<(), StorageError> { event.record(c, now) })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "a first-party page's audit event could not be stored");
    }
}

pub fn refused(message: &str) -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// A database that cannot be used for now gets the 503 page; any other failure is Sigil's.
pub fn failed(e: StorageError) -> HttpResponse {
    if e.is_unavailable() {
        return crate::endpoints::pages::unavailable_page();
    }
    broken(e)
}

pub fn broken(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "a first-party page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "This page could not be shown. Try again.",
    )
}
