//! The token endpoint (RFC 6749 §3.2): form in, JSON out, `Cache-Control: no-store`. The
//! handler reads the request and authenticates the client; each grant has its own file.

mod authorization_code;
pub use authorization_code::{redeem as redeem_code, Redemption};
mod client_credentials;
mod device_code;
mod grace;
mod issue;
mod refresh_token;
mod token_exchange;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{client_form, dpop, paths};
use crate::audit;
use crate::oauth::client_metadata::Client;
use crate::oauth::token_request::TokenRequest;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::grants::{self, RefreshRow};
use crate::storage::{atomically, StorageError};
use crate::web::client_address;
use crate::web::flow::grant_horizon;
use serde_json::json;

pub async fn token(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let sent = dpop::sent(&req);
    let answer = answer(&req, body, &state).await;
    dpop::token_answer(&state, answer, sent)
}

async fn answer(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, OAuthError> {
    let params = client_form::read(req, body, state).await?;
    let request = TokenRequest::parse(&params)?;
    // RFC 9449 §5: a DPoP proof, checked before the client is (nothing is written for it yet).
    let proof = dpop::proof(req, state, paths::TOKEN, None)?;
    let client = client_form::authenticate(req, &params, state).await?;
    // RFC 6749 §5.2: a client may use only the grants it registered.
    let grant = request.grant_type();
    if !client.allows_grant(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {} grant",
                grant.as_str()
            ),
        ));
    }
    // RFC 6749 §4.1.2, RFC 9700 §4.14.2: a replay revokes its grant; the cached introspection
    // answers are dropped where that revocation happens (`replayed`), never because a request
    // failed (SECURITY.md 29).
    // RFC 9449 §5.2, §11.1: a client that registered for DPoP sends a proof; its id is spent.
    let jkt = dpop::token_binding(state, &client, proof).await?;
    let address = client_address::of(req, &state.settings.http.trusted_proxies).to_string();
    match request {
        TokenRequest::ClientCredentials { scope, resource } => {
            client_credentials::grant(state, &client, scope, resource, jkt.as_deref()).await
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            let code = authorization_code::Presented {
                code,
                redirect_uri,
                verifier: code_verifier,
                resource,
                address: Some(address),
                dpop_jkt: jkt,
            };
            authorization_code::redeem_presented(state, &client, code)
                .await
                .map(|redeemed| respond(redeemed.body))
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resource,
        } => {
            let presented = refresh_token::Presented {
                token: refresh_token,
                scope,
                resource,
                dpop_jkt: jkt,
            };
            refresh_token::grant(state, &client, presented, &address).await
        }
        TokenRequest::TokenExchange {
            subject_token,
            actor_token,
            scope,
            resource,
        } => {
            let exchange = token_exchange::Exchange {
                subject_token,
                actor_token,
                scope,
                resource,
                dpop_jkt: jkt,
            };
            token_exchange::grant(state, &client, exchange).await
        }
        TokenRequest::DeviceCode { device_code } => {
            device_code::grant(state, &client, device_code, &address, jkt.as_deref()).await
        }
    }
}

/// A used code or refresh token presented again by its owner: the grant is revoked (RFC 6749
/// §4.1.2, RFC 9700 §4.14.2) and, only when that revoked something, this node's cached
/// introspection answers are dropped at once (other nodes see the moved revision). Returns the
/// error to answer with.
async fn replayed(
    state: &AppState,
    replay: Replay,
    grant_id: String,
    what: &'static str,
) -> OAuthError {
    state.metrics.events.replay(replay.token);
    let (now, horizon) = (state.clock.now(), grant_horizon(&state.settings));
    let id = grant_id.clone();
    // The revocation and its audit event commit together, once per grant: a later replay
    // revokes nothing more and records nothing more.
    let revoked = state
        .db
        .run(move |conn| {
            atomically(conn, |conn| {
                let revoked = grants::revoke_grant(conn, &id, now, horizon)?;
                if revoked {
                    let user = grants::grant(conn, &id)?.map(|g| g.user_id);
                    let mut event = audit::Event::new(
                        audit::EventType::TokenReplayDetected,
                        audit::Actor::Client(replay.client_id.clone()),
                    )
                    .target(replay.client_id)
                    .failed()
                    .details(json!({
                        "token": replay.token,
                        "grant_id": id,
                        "user_id": user,
                        "grant_revoked": true,
                    }));
                    event.address = replay.address;
                    event.record(conn, now)?;
                }
                Ok::<_, StorageError>(revoked)
            })
        })
        .await;
    match revoked {
        Err(e) => e.into(),
        Ok(revoked) => {
            if revoked {
                state.verdicts.invalidate();
                tracing::warn!(grant_id = %grant_id, "{what}: its grant is revoked");
            }
            invalid_grant(what)
        }
    }
}

/// Who presented a used code or refresh token again, for the audit event.
pub struct Replay {
    client_id: String,
    address: Option<String>,
    /// `authorization_code`, `refresh_token` or `device_code`.
    token: &'static str,
}

impl Replay {
    fn new(client: &Client, address: Option<&str>, token: &'static str) -> Self {
        Self {
            client_id: client.client_id.clone(),
            address: address.map(str::to_string),
            token,
        }
    }
}

/// After this no token of the grant may be valid: the access tokens issued now die within the
/// horizon, the new refresh token at its expiry.
fn grant_until(state: &AppState, now: i64, refresh: Option<&RefreshRow>) -> i64 {
    let tokens = now + grant_horizon(&state.settings);
    refresh.map_or(tokens, |r| tokens.max(r.expires_at))
}

fn invalid_grant(why: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, why)
}

/// A successful token response (RFC 6749 §5.1): never cached.
fn respond(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}
