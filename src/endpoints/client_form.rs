//! What the endpoints that clients call directly (token, introspection, revocation) share: a
//! bounded `application/x-www-form-urlencoded` body, and client authentication (RFC 6749
//! §2.3), JWT assertions included (RFC 7523 §2.2).

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest};

use crate::crypto::{b64url, sha256};
use crate::oauth::client_assertion::{self, Assertion, Expected, Rejected};
use crate::oauth::client_auth::{self, Presented};
use crate::oauth::client_key_cache::{Keys, KeysError};
use crate::oauth::client_keys;
use crate::oauth::client_metadata::{AuthMethod, Client};
use crate::oauth::form::Params;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::client_assertions;

/// The form parameters; wrong content types, unreadable and oversized bodies (413) and
/// repeated parameters are refused.
pub async fn read(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<Params, OAuthError> {
    // RFC 6749 §3.2, RFC 7662 §2.1: parameters arrive as application/x-www-form-urlencoded.
    if !req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let limit = state.settings.http.max_body_bytes;
    let body = match body.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(OAuthError::invalid_request("the body could not be read")),
        Err(_) => {
            return Err(OAuthError::invalid_request(format!(
                "the body is larger than {limit} bytes"
            ))
            .with_status(413))
        }
    };
    Params::parse(&body, state.settings.http.max_param_bytes)
}

/// The authenticated client; every failure is the same `invalid_client`.
pub async fn authenticate(
    req: &HttpRequest,
    params: &Params,
    state: &AppState,
) -> Result<Client, OAuthError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| OAuthError::invalid_client()))
        .transpose()?;
    let presented = client_auth::extract(authorization, params)?;
    let client = state.client(presented.client_id()).await?;
    match presented {
        Presented::Jwt { assertion, .. } => {
            let client = client.ok_or_else(OAuthError::invalid_client)?;
            by_assertion(state, client, &assertion).await
        }
        other => client_auth::authenticate(&other, client),
    }
}

/// RFC 7523 §3: the assertion verifies with the client's key, its claims hold, and its `jti`
/// was never accepted before (item 7).
async fn by_assertion(
    state: &AppState,
    client: Client,
    assertion: &Assertion,
) -> Result<Client, OAuthError> {
    let refused = |why| client_auth::refused(Some(&client.client_id), why);
    let now = state.clock.now();
    let keys = assertion_keys(state, &client, assertion, now).await?;
    let issuer = state.settings.issuer_str();
    let token_endpoint = state.settings.endpoint_url(super::paths::TOKEN);
    // RFC 9126 §2: at the PAR endpoint its own URL is an audience too.
    let par_endpoint = state.settings.endpoint_url(super::paths::PAR);
    // RFC 8628 §3.1: so is the device authorization endpoint's.
    let device_endpoint = state
        .settings
        .endpoint_url(super::paths::DEVICE_AUTHORIZATION);
    let expected = Expected {
        client_id: &client.client_id,
        audiences: &[issuer, &token_endpoint, &par_endpoint, &device_endpoint],
        now,
        clock_skew: state.settings.tokens.clock_skew.as_secs() as i64,
    };
    let verified = client_assertion::verify(assertion, &keys, &expected).map_err(refused)?;
    // Only now, with signature and claims good, is the jti spent. It is remembered while the
    // assertion could still be accepted: until exp plus the skew.
    let (id, jti_hash) = (
        client.client_id.clone(),
        b64url(&sha256(verified.jti.as_bytes())),
    );
    let until = verified.exp.saturating_add(expected.clock_skew);
    let first = state
        .db
        .run(move |conn| client_assertions::first_use(conn, &id, &jti_hash, until))
        .await?;
    if !first {
        return Err(refused(Rejected("jti replayed")));
    }
    Ok(client)
}

/// The keys of the client's registered method: its secret (`client_secret_jwt`) or its public
/// keys (`private_key_jwt`). A client of any other method cannot use an assertion.
async fn assertion_keys(
    state: &AppState,
    client: &Client,
    assertion: &Assertion,
    now: i64,
) -> Result<Keys, OAuthError> {
    let refused = |why| client_auth::refused(Some(&client.client_id), why);
    match client.metadata.token_endpoint_auth_method {
        AuthMethod::ClientSecretJwt => client
            .secret
            .as_ref()
            .and_then(client_keys::from_secret)
            .map(|key| vec![key].into())
            .ok_or_else(|| refused(Rejected("the client has no secret"))),
        AuthMethod::PrivateKeyJwt => {
            let kid = assertion.kid().map_err(refused)?;
            let found = state
                .client_keys
                .keys(&state.outbound, client, kid, now)
                .await;
            found.map_err(|e| {
                match e {
                    KeysError::NotYet => tracing::debug!(client_id = %client.client_id, error = %e, "client keys"),
                    // The client's own keys or host: its fault, not Sigil's (INFO at most).
                    _ => tracing::info!(client_id = %client.client_id, error = %e, "client keys unavailable"),
                }
                OAuthError::invalid_client()
            })
        }
        _ => Err(refused(Rejected(
            "the client is not registered for an assertion method",
        ))),
    }
}
