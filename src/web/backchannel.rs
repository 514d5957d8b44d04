//! Back-channel logout (OIDC Back-Channel Logout 1.0): when a session ends, every client that
//! took part in it and registered a `backchannel_logout_uri` is sent a logout token. Deliveries
//! run off the request path, one task per client (so they run concurrently), each with the
//! outbound client's time limit and `outbound.backchannel_attempts` attempts; the person's
//! logout page never waits for them. Failures are logged with the client and the reason, never
//! the token.

use std::time::Duration;

use actix_web::web;

use crate::metrics::Delivery;
use crate::outbound::OutboundError;
use crate::state::AppState;
use crate::tokens::logout_token;

/// The pause before the second attempt; it doubles before each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The client registered no `backchannel_logout_uri` (or no longer exists).
    NotRegistered,
    /// The client answered 2xx (§2.8) after this many attempts.
    Delivered { attempts: u32 },
    /// The target was refused before any connection (outbound SSRF rules); not retried.
    Refused(String),
    /// Every attempt failed; the last reason.
    Failed { attempts: u32, reason: String },
}

/// Starts a delivery for each client of `client_ids` on the current runtime and returns at
/// once.
pub fn notify(state: &web::Data<AppState>, sub: &str, sid: &str, client_ids: Vec<String>) {
    for client_id in client_ids {
        let (state, sub, sid) = (state.clone(), sub.to_string(), sid.to_string());
        tokio::spawn(async move {
            deliver(&state, &client_id, &sub, &sid).await;
        });
    }
}

/// Delivers one logout token for session `sid` of user `sub` to `client_id` (§2.5), retrying
/// failed attempts with a short, doubling pause; counted by outcome
/// (`sigil_backchannel_logout_deliveries_total`).
pub async fn deliver(state: &AppState, client_id: &str, sub: &str, sid: &str) -> Outcome {
    let outcome = send(state, client_id, sub, sid).await;
    let counted = match outcome {
        Outcome::NotRegistered => None,
        Outcome::Delivered { .. } => Some(Delivery::Delivered),
        Outcome::Refused(_) => Some(Delivery::Refused),
        Outcome::Failed { .. } => Some(Delivery::Failed),
    };
    if let Some(counted) = counted {
        state.metrics.events.delivery(counted);
    }
    outcome
}

async fn send(state: &AppState, client_id: &str, sub: &str, sid: &str) -> Outcome {
    let client = match state.client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Outcome::NotRegistered,
        Err(e) => return failed(client_id, 0, e.to_string()),
    };
    let Some(uri) = client.metadata.backchannel_logout_uri.clone() else {
        return Outcome::NotRegistered;
    };
    let claims = logout_token::claims(
        state.settings.issuer_str(),
        client_id,
        sub,
        sid,
        state.clock.now(),
    );
    let keys = state.keyring.current();
    let alg = client.metadata.id_token_signed_response_alg.as_str();
    let token = match logout_token::sign(&keys, alg, client.secret.as_ref(), &claims) {
        Ok(t) => t,
        Err(_) => return failed(client_id, 0, "the logout token could not be signed".into()),
    };
    drop(keys);
    let attempts = state.settings.outbound.backchannel_attempts.max(1);
    let mut pause = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match state
            .outbound
            .post_form(&uri, &[("logout_token", token.as_str())])
            .await
        {
            Ok(()) => {
                tracing::info!(
                    client_id,
                    attempts = attempt,
                    "back-channel logout delivered"
                );
                return Outcome::Delivered { attempts: attempt };
            }
            Err(OutboundError::Refused(reason)) => {
                tracing::info!(client_id, %reason, "back-channel logout refused");
                return Outcome::Refused(reason);
            }
            Err(e) if attempt >= attempts || !worth_retrying(&e) => {
                return failed(client_id, attempt, e.to_string())
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

/// §2.8: a client answers 400 when it rejects the token; the same token will not fare better.
/// Network failures, timeouts, 5xx, 408 and 429 may pass on another attempt.
fn worth_retrying(e: &OutboundError) -> bool {
    match e {
        OutboundError::Status(status) => *status >= 500 || matches!(status, 408 | 429),
        _ => true,
    }
}

/// The client's URI or host failed: its fault, not Sigil's (INFO at most).
fn failed(client_id: &str, attempts: u32, reason: String) -> Outcome {
    tracing::info!(
        client_id,
        attempts,
        %reason,
        "back-channel logout not delivered"
    );
    Outcome::Failed { attempts, reason }
}
