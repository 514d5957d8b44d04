//! RFC 8628 §3.4–3.5: the device polls with its device code. Until the user decides the answer
//! is `authorization_pending`; a poll sooner than the interval after the last one is
//! `slow_down` (and the interval grows by 5 s); a denial is `access_denied`, an expired code
//! `expired_token`, an unknown code or another client's `invalid_grant`. Once approved, the
//! code is redeemed like an authorization code: the whole response is built first, then the
//! code is spent in the transaction that stores the refresh token, once (of concurrent polls
//! exactly one gets tokens); a spent code presented again is a replay and revokes its grant.
//! With a DPoP proof the tokens are bound to its key as for an authorization code (RFC 9449 §5).

use super::{grant_until, invalid_grant, issue, replayed, respond, Replay};
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::device::SLOW_DOWN_STEP;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::device_codes::{self, APPROVED, DENIED};
use crate::storage::grants::{self, GrantRow, Redeemed, Spend};
use actix_web::HttpResponse;

/// What the checks found.
enum Checked {
    Approved(Box<(GrantRow, issue::Subject)>),
    /// A spent code, presented again by its client.
    Replayed {
        grant_id: String,
    },
}

pub async fn grant(
    state: &AppState,
    client: &Client,
    device_code: String,
    address: &str,
    dpop_jkt: Option<&str>,
) -> Result<HttpResponse, OAuthError> {
    let now = state.clock.now();
    let code_hash = crate::web::flow::hash(&device_code);
    let (owned_hash, owned_client) = (code_hash.clone(), client.clone());
    let checked = state
        .db
        .run(move |conn| {
            let row = device_codes::by_device_code(conn, &owned_hash)?
                .filter(|r| r.client_id == owned_client.client_id)
                .ok_or_else(|| invalid_grant("unknown device code"))?;
            if row.consumed_at.is_some() {
                return Ok(Checked::Replayed {
                    grant_id: row.grant_id.unwrap_or_default(),
                });
            }
            if row.expires_at <= now {
                return Err(expired());
            }
            if row.status == DENIED {
                return Err(OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the user denied the request",
                ));
            }
            if !device_codes::poll(conn, &owned_hash, now, SLOW_DOWN_STEP)? {
                return Err(OAuthError::new(
                    ErrorCode::SlowDown,
                    format!(
                        "polled sooner than the interval; wait {} seconds between polls",
                        row.poll_interval + SLOW_DOWN_STEP
                    ),
                ));
            }
            let grant_id = match (row.status.as_str(), row.grant_id) {
                (APPROVED, Some(id)) => id,
                _ => {
                    return Err(OAuthError::new(
                        ErrorCode::AuthorizationPending,
                        "the user has not decided yet",
                    ))
                }
            };
            let grant = grants::grant(conn, &grant_id)?
                .filter(|g| g.revoked_at.is_none())
                .ok_or_else(|| invalid_grant("the grant was revoked"))?;
            let subject = issue::live_subject(conn, &owned_client, &grant, &grant.scope)?
                .ok_or_else(|| invalid_grant("the user can no longer sign in"))?;
            Ok::<_, OAuthError>(Checked::Approved(Box::new((grant, subject))))
        })
        .await?;
    let replay = || Replay::new(client, Some(address), "device_code");
    let (grant, subject) = match checked {
        Checked::Approved(approved) => *approved,
        Checked::Replayed { grant_id } => {
            return Err(replayed(
                state,
                replay(),
                grant_id,
                "the device code was already used",
            )
            .await)
        }
    };

    // Build: the complete response, before anything is written.
    let refresh_ttl = state.settings.tokens.refresh_ttl.as_secs() as i64;
    let (refresh_token, refresh_row) = match issue::wants_refresh(client, &grant.scope) {
        true => {
            let bound = issue::refresh_binding(client, dpop_jkt);
            let (token, row) = issue::new_refresh(&grant.id, now, refresh_ttl, bound);
            (Some(token), Some(row))
        }
        false => (None, None),
    };
    let to = issue::Issue {
        subject: &subject,
        scope: &grant.scope,
        resource: None,
        dpop_jkt,
    };
    let body = issue::response(state, client, &grant, to, refresh_token).await?;

    // Commit: the device code is spent together with the new refresh token, or not at all.
    let until = grant_until(state, now, refresh_row.as_ref());
    let grant_id = grant.id.clone();
    let outcome = state
        .db
        .run(move |conn| {
            let spend = Spend::Device {
                device_code_hash: &code_hash,
            };
            grants::redeem(conn, spend, &grant, until, refresh_row.as_ref(), now)
        })
        .await?;
    match outcome {
        Redeemed::Committed => {
            issue::count(state, GrantType::DeviceCode, client, &body);
            Ok(respond(body))
        }
        Redeemed::AlreadyUsed => Err(replayed(
            state,
            replay(),
            grant_id,
            "the device code was already used",
        )
        .await),
        Redeemed::Expired => Err(expired()),
        Redeemed::GrantRevoked => Err(invalid_grant("the grant was revoked")),
    }
}

fn expired() -> OAuthError {
    OAuthError::new(
        ErrorCode::ExpiredToken,
        "the device code has expired; start again",
    )
}
