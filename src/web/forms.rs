//! Checks every browser form POST passes: same origin, and a CSRF token equal to the browser's
//! CSRF cookie (which also binds the parked request to this browser).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use super::cookies;
use super::flow::{self, Parked};
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::error_page;
use crate::oauth::client_metadata::Client;
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::StorageError;

/// The form must come from one of Sigil's own pages. `Sec-Fetch-Site`, when the browser sends
/// it, must say so; `Origin`, when it names an origin, must be the issuer's. (Sigil's pages
/// send `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` even for
/// same-origin forms, so `null` tells nothing; the CSRF token still has to match.)
pub fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let header = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match header("origin") {
        None | Some("null") => true,
        Some(origin) => origin == state.settings.issuer.origin().ascii_serialization(),
    }
}

pub fn forbidden() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "access_denied",
        "This form was not sent from this sign-in page. Go back to the application and try again.",
    )
}

/// Why a POST from one of Sigil's pages was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Not from Sigil's page, or not with this browser's CSRF token: 403.
    Forbidden,
    /// The parked request is unknown, expired, or another browser's: 400.
    Expired,
    Storage(StorageError),
}

/// A form POST: parsed, then origin, CSRF token and parked request, in that order; every
/// failure is 403 or 400 and changes nothing.
pub async fn check(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(Params, Parked), HttpResponse> {
    let params =
        Params::parse(body, state.settings.http.max_param_bytes).map_err(|_| forbidden())?;
    let request = params.get("request").unwrap_or("");
    match origin_token_and_request(req, state, params.get("csrf_token"), request).await {
        Ok(parked) => Ok((params, parked)),
        Err(Refusal::Forbidden) => Err(forbidden()),
        Err(Refusal::Expired) => Err(error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "This sign-in request has expired. Go back to the application and try again.",
        )),
        Err(Refusal::Storage(e)) => Err(page(&e.into())),
    }
}

/// The checks of [`check`] on values already read from a body (a form, or the JSON of the
/// login page's passkey button): the request comes from Sigil's own page, its `csrf_token`
/// equals the browser's CSRF cookie, and the parked request `request` is this browser's.
pub async fn origin_token_and_request(
    req: &HttpRequest,
    state: &AppState,
    token: Option<&str>,
    request: &str,
) -> Result<Parked, Refusal> {
    if !same_origin(req, state) {
        return Err(Refusal::Forbidden);
    }
    let cookie = cookies::read(req, &state.settings, cookies::CSRF);
    let (Some(cookie), Some(token)) = (cookie, token) else {
        return Err(Refusal::Forbidden);
    };
    if !bool::from(cookie.as_bytes().ct_eq(token.as_bytes())) {
        return Err(Refusal::Forbidden);
    }
    match flow::find_parked(state, request, Some(&cookie)).await {
        Ok(Some(parked)) => Ok(parked),
        Ok(None) => Err(Refusal::Expired),
        Err(e) => Err(Refusal::Storage(e)),
    }
}

/// What a login or consent page shows: the parked request named in the query (started by this
/// browser), its client, and the browser's CSRF value for the form.
pub struct PageRequest {
    pub parked: Parked,
    pub client: Client,
    pub csrf: String,
}

pub async fn page_request(
    req: &HttpRequest,
    state: &AppState,
) -> Result<PageRequest, HttpResponse> {
    let params = Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    )
    .map_err(|_| forbidden())?;
    let csrf = cookies::read(req, &state.settings, cookies::CSRF).ok_or_else(forbidden)?;
    let parked =
        match flow::find_parked(state, params.get("request").unwrap_or(""), Some(&csrf)).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(forbidden()),
            Err(e) => return Err(page(&e.into())),
        };
    let client = known_client(state, Some(&parked.request.client_id))
        .await
        .map_err(|e| page(&e))?;
    Ok(PageRequest {
        parked,
        client,
        csrf,
    })
}
