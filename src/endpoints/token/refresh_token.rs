//! RFC 6749 §6: refresh. Each refresh token is used once and replaced (rotation); presenting a
//! used one again revokes the whole grant (RFC 9700 §4.14.2) — unless `tokens.refresh_grace`
//! is on and it comes back within the grace, when it gets the rotation's own response again
//! (grace.rs).
//!
//! Validate, build, then commit (SECURITY.md 28): the token is marked used only in the
//! transaction that stores its successor, after the whole response was built, so a response
//! that fails (the client's `jwks_uri` down) leaves the token usable for the client's retry.

use actix_web::HttpResponse;

use super::grace::{self, Asked};
use super::{grant_until, invalid_grant, issue, replayed, respond, Replay};
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::resource_metadata::ResourceMetadata;
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::grants::{self, GrantRow, Redeemed, RefreshRow, Spend};
use crate::storage::AnyConnection;
use crate::web::flow::hash;

/// What the checks found.
enum Checked {
    /// The token may be rotated.
    Ready(Box<Ready>),
    /// A used token, presented again by its client.
    Used(Box<Used>),
}

struct Ready {
    grant: GrantRow,
    subject: issue::Subject,
    scope: String,
    resource: Option<ResourceMetadata>,
}

/// A used refresh token, its grant (live, this client's) and whether its user may still get
/// tokens.
struct Used {
    row: RefreshRow,
    grant: GrantRow,
    user_live: bool,
}

/// A refresh request as the token endpoint got it.
pub struct Presented {
    pub token: String,
    pub scope: Option<Scope>,
    pub resource: Option<String>,
    /// The thumbprint of the DPoP proof's key (RFC 9449 §5), when one came.
    pub dpop_jkt: Option<String>,
}

pub async fn grant(
    state: &AppState,
    client: &Client,
    presented: Presented,
    address: &str,
) -> Result<HttpResponse, OAuthError> {
    let Presented {
        token,
        scope: requested,
        resource,
        dpop_jkt,
    } = presented;
    let replay = Replay::new(client, Some(address), "refresh_token");
    let asked = Asked {
        scope: requested.as_ref().map(Scope::to_string),
        resource: resource.clone(),
    };
    let requested_resource = issue::requested_resource(state, client, resource).await?;
    let now = state.clock.now();
    let token_hash = hash(&token);
    let (owned_hash, owned_client) = (token_hash.clone(), client.clone());
    let presented_jkt = dpop_jkt.clone();
    let checked = state
        .db
        .run(move |conn| {
            let (row, grant) = found(conn, &owned_hash, &owned_client)?;
            // RFC 9449 §5: a bound token is refreshed only with a proof of its key. Judged
            // before anything else, used or not: without the key, nothing is spent, revoked or
            // answered.
            if let Some(bound) = &row.dpop_jkt {
                if presented_jkt.as_deref() != Some(bound.as_str()) {
                    return Err(invalid_grant(
                        "the refresh token is bound to a DPoP key; send a proof with that key",
                    ));
                }
            }
            if row.used_at.is_some() {
                return Ok(Checked::Used(Box::new(used(conn, row, grant)?)));
            }
            if row.expires_at <= now {
                return Err(invalid_grant("the refresh token has expired"));
            }
            // RFC 6749 §6: no scope beyond the original grant; checked before anything changes.
            let granted = Scope::parse(&grant.scope).unwrap_or_default();
            let scope = match requested {
                Some(s) if !s.is_subset(&granted) => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        "the requested scope exceeds the scope originally granted",
                    ))
                }
                Some(s) => s.to_string(),
                None => grant.scope.clone(),
            };
            let resource =
                issue::grant_target(conn, &owned_client, &grant, requested_resource, &scope)?;
            let subject = issue::live_subject(conn, &owned_client, &grant, &scope)?
                .ok_or_else(|| invalid_grant("the user can no longer sign in"))?;
            Ok(Checked::Ready(Box::new(Ready {
                grant,
                subject,
                scope,
                resource,
            })))
        })
        .await?;
    let Ready {
        grant,
        subject,
        scope,
        resource,
    } = match checked {
        Checked::Ready(ready) => *ready,
        Checked::Used(used) => return again(state, *used, &asked, replay).await,
    };

    // Build: the complete response, the successor's value included, before anything is written.
    let refresh_ttl = state.settings.tokens.refresh_ttl.as_secs() as i64;
    let bound = issue::refresh_binding(client, dpop_jkt.as_deref());
    let (successor, successor_row) = issue::new_refresh(&grant.id, now, refresh_ttl, bound);
    let to = issue::Issue {
        subject: &subject,
        scope: &scope,
        resource: resource.as_ref(),
        dpop_jkt: dpop_jkt.as_deref(),
    };
    let body = issue::response(state, client, &grant, to, Some(successor)).await?;
    let successor_sealed = match state.settings.tokens.refresh_grace.as_secs() {
        0 => None,
        _ => Some(grace::seal(&state.master, &token_hash, &asked, &body)?),
    };

    // Commit: the token is used, its successor stored, the grant kept alive — or nothing.
    let until = grant_until(state, now, Some(&successor_row));
    let (owned_hash, owned_client) = (token_hash.clone(), client.clone());
    let outcome = state
        .db
        .run(move |conn| {
            let spend = Spend::Refresh {
                token_hash: &token_hash,
                successor_sealed,
            };
            grants::redeem(conn, spend, &grant, until, Some(&successor_row), now)
        })
        .await?;
    match outcome {
        Redeemed::Committed => {
            issue::count(state, GrantType::RefreshToken, client, &body);
            Ok(respond(body))
        }
        // A concurrent presentation rotated it first (its transaction has committed): this
        // response is thrown away, and the token is judged as used.
        Redeemed::AlreadyUsed => {
            let used = state
                .db
                .run(move |conn| {
                    let (row, grant) = found(conn, &owned_hash, &owned_client)?;
                    used(conn, row, grant)
                })
                .await?;
            again(state, used, &asked, replay).await
        }
        Redeemed::Expired => Err(invalid_grant("the refresh token has expired")),
        Redeemed::GrantRevoked => Err(invalid_grant("the grant was revoked")),
    }
}

/// The token's row and its grant, which must be live and this client's. SECURITY.md: client B
/// cannot use client A's refresh token (and does not burn it).
fn found(
    conn: &mut AnyConnection,
    token_hash: &str,
    client: &Client,
) -> Result<(RefreshRow, GrantRow), OAuthError> {
    let row = grants::refresh_token(conn, token_hash)?
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    let grant = grants::grant(conn, &row.grant_id)?
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    if grant.client_id != client.client_id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if grant.revoked_at.is_some() {
        return Err(invalid_grant("the grant was revoked"));
    }
    Ok((row, grant))
}

fn used(conn: &mut AnyConnection, row: RefreshRow, grant: GrantRow) -> Result<Used, OAuthError> {
    let user_live = issue::live_user(conn, &grant)?.is_some();
    Ok(Used {
        row,
        grant,
        user_live,
    })
}

/// A used token presented again by its client: within the grace, for the same request, the
/// rotation's own response; otherwise a replay, which revokes the grant (RFC 9700 §4.14.2).
async fn again(
    state: &AppState,
    used: Used,
    asked: &Asked,
    replay: Replay,
) -> Result<HttpResponse, OAuthError> {
    const REPLAYED: &str = "the refresh token was already used";
    let grace = state.settings.tokens.refresh_grace.as_secs() as i64;
    let used_at = used.row.used_at.unwrap_or(i64::MIN);
    let within = grace > 0 && state.clock.now() <= used_at.saturating_add(grace);
    let Some(sealed) = used.row.successor_sealed.as_deref().filter(|_| within) else {
        return Err(replayed(state, replay, used.grant.id, REPLAYED).await);
    };
    if !used.user_live {
        return Err(invalid_grant("the user can no longer sign in"));
    }
    // Another scope or resource than the rotation's: no answer, but within the grace it is no
    // replay either.
    let body = grace::open(&state.master, &used.row.token_hash, sealed, asked)
        .ok_or_else(|| invalid_grant(REPLAYED))?;
    tracing::debug!(client_id = %used.grant.client_id, "refresh within the grace: the same answer again");
    Ok(respond(body))
}
