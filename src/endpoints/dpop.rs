//! DPoP (RFC 9449) at Sigil's endpoints: the `DPoP` header read off the request and checked
//! (`oauth::dpop`), the proof's `jti` spent once, `DPoP-Nonce` on every answer to a request that
//! carried a proof, and the `WWW-Authenticate: DPoP` challenges of a protected resource (§7.1).
//!
//! Order: the stateless checks first (signature, claims, nonce); the `jti` is spent only after
//! the caller is known — the client authenticated at /token, the access token valid at
//! UserInfo — so a request that is refused for anything else writes nothing.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::oauth::client_metadata::Client;
use crate::oauth::dpop::{self, Expected, Proof, Refusal, Seen};
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::{dpop_jtis, DatabaseUrl};

/// Whether the request carries a `DPoP` header at all.
pub fn sent(req: &HttpRequest) -> bool {
    req.headers().contains_key(dpop::HEADER)
}

/// The request's proof, checked for the endpoint at `path` (and, at a resource, bound to
/// `access_token`); `None` without a `DPoP` header.
pub fn proof(
    req: &HttpRequest,
    state: &AppState,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<Proof>, OAuthError> {
    let mut values = req.headers().get_all(dpop::HEADER);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    // RFC 9449 §4.3 point 1: not more than one DPoP header.
    if values.next().is_some() {
        return Err(refused(Refusal::Invalid("send one DPoP header only")));
    }
    let text = first
        .to_str()
        .map_err(|_| refused(Refusal::Invalid("the DPoP header is not ASCII")))?;
    let url = state.settings.endpoint_url(path);
    let expected = Expected {
        method: req.method().as_str(),
        url: &url,
        access_token,
        now: state.clock.now(),
    };
    dpop::verify(text, &expected, &state.dpop)
        .map(Some)
        .map_err(refused)
}

/// The token endpoint's answer to a refused proof (RFC 9449 §5, §8): 400.
pub fn refused(refusal: Refusal) -> OAuthError {
    match refusal {
        Refusal::Invalid(why) => OAuthError::new(ErrorCode::InvalidDpopProof, why),
        Refusal::Nonce => OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the nonce sent in DPoP-Nonce",
        ),
    }
}

/// RFC 9449 §11.1: a proof is accepted once within its window. This node remembers the ids it
/// accepted (bounded: a full store refuses with 503 rather than forgetting); nodes sharing a
/// PostgreSQL database also agree through it.
pub async fn spend(state: &AppState, proof: &Proof) -> Result<(), OAuthError> {
    let replayed = || refused(Refusal::Invalid("the DPoP proof was already used"));
    let now = state.clock.now();
    match state.dpop.jtis.first_use(proof, now) {
        Seen::First => {}
        Seen::Replay => return Err(replayed()),
        Seen::Full => {
            tracing::warn!("the DPoP proof id store is full (dpop.max_jtis); refusing proofs");
            return Err(OAuthError::temporarily_unavailable());
        }
    }
    if !matches!(state.db.url(), DatabaseUrl::Postgres(_)) {
        return Ok(());
    }
    let (hash, expires_at) = (crate::crypto::b64url(&proof.jti_hash), proof.expires_at);
    let shared = state
        .db
        .run(move |conn| dpop_jtis::first_use(conn, &hash, expires_at))
        .await;
    match shared {
        Ok(true) => Ok(()),
        Ok(false) => {
            state.dpop.jtis.forget(proof);
            Err(replayed())
        }
        Err(e) => {
            state.dpop.jtis.forget(proof);
            Err(e.into())
        }
    }
}

/// At the token endpoint: the key the tokens are bound to. A client registered with
/// `dpop_bound_access_tokens` must send a proof (RFC 9449 §5.2); a proof sent is spent.
pub async fn token_binding(
    state: &AppState,
    client: &Client,
    proof: Option<Proof>,
) -> Result<Option<String>, OAuthError> {
    let Some(proof) = proof else {
        if client.metadata.dpop_bound_access_tokens {
            return Err(refused(Refusal::Invalid(
                "this client must send a DPoP proof with its token requests",
            )));
        }
        return Ok(None);
    };
    spend(state, &proof).await?;
    Ok(Some(proof.jkt))
}

fn nonce_header(state: &AppState) -> Option<(HeaderName, HeaderValue)> {
    let nonce = state.dpop.nonces.current(state.clock.now());
    Some((
        HeaderName::from_static(dpop::NONCE_HEADER),
        HeaderValue::from_str(&nonce).ok()?,
    ))
}

fn is_dpop_error(e: &OAuthError) -> bool {
    matches!(
        e.code,
        ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce
    )
}

/// The token endpoint's answer, with `DPoP-Nonce` (RFC 9449 §8) when the request carried a
/// proof or the answer is about one.
pub fn token_answer(
    state: &AppState,
    answer: Result<HttpResponse, OAuthError>,
    sent: bool,
) -> Result<HttpResponse, OAuthError> {
    let about_dpop = answer.as_ref().err().is_some_and(is_dpop_error);
    if !sent && !about_dpop {
        return answer;
    }
    let mut response = match answer {
        Ok(r) => r,
        Err(e) => e.error_response(),
    };
    if let Some((name, value)) = nonce_header(state) {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

/// How the access token came to a protected resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// `DPoP algs="…"`: the challenge that tells a client DPoP is accepted (RFC 9449 §7.1).
fn algs() -> String {
    format!("algs=\"{}\"", dpop::ALGS.join(" "))
}

/// A protected resource's error (RFC 9449 §7.1, RFC 6750 §3): a refused proof is 401 there.
/// A request in the DPoP scheme is answered with a `DPoP` challenge naming the error; a Bearer
/// one keeps its `Bearer` challenge and hears that DPoP is accepted too (§7.2).
pub fn resource_error(state: &AppState, e: OAuthError, scheme: Option<Scheme>) -> HttpResponse {
    let e = if is_dpop_error(&e) {
        e.with_status(401)
    } else {
        e
    };
    let mut response = e.error_response();
    if response.status() == StatusCode::UNAUTHORIZED {
        let headers = response.headers_mut();
        let challenge = match scheme {
            Some(Scheme::Dpop) => {
                headers.remove(header::WWW_AUTHENTICATE);
                format!("{} error=\"{}\", {}", dpop::SCHEME, e.code, algs())
            }
            _ => format!("{} {}", dpop::SCHEME, algs()),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
    }
    if scheme == Some(Scheme::Dpop) || is_dpop_error(&e) {
        if let Some((name, value)) = nonce_header(state) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A protected resource's successful answer to a DPoP request carries the next nonce too.
pub fn resource_ok(state: &AppState, mut response: HttpResponse, scheme: Scheme) -> HttpResponse {
    if scheme == Scheme::Dpop {
        if let Some((name, value)) = nonce_header(state) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
