//! RFC 6749 §6: refresh. Each refresh token is used once and replaced (rotation); presenting a
//! used one again revokes the whole grant (RFC 9700 §4.14.2).

use actix_web::HttpResponse;
use diesel::Connection;

use super::{invalid_grant, issue, respond};
use crate::oauth::client_metadata::Client;
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::{grants, StorageError};
use crate::web::flow::hash;

pub async fn grant(
    state: &AppState,
    client: &Client,
    token: String,
    requested: Option<Scope>,
    resource: Option<String>,
) -> Result<HttpResponse, OAuthError> {
    let requested_resource = issue::requested_resource(state, client, resource).await?;
    let now = state.clock.now();
    let refresh_ttl = state.settings.tokens.refresh_ttl.as_secs() as i64;
    let client_id = client.client_id.clone();
    let client_for_db = client.clone();
    let (grant, user, scope, new_token, resource) = state
        .db
        .run(move |conn| {
            let token_hash = hash(&token);
            let row = grants::refresh_token(conn, &token_hash)?.ok_or_else(|| invalid_grant("unknown refresh token"))?;
            let grant = grants::grant(conn, &row.grant_id)?.ok_or_else(|| invalid_grant("unknown refresh token"))?;
            // SECURITY.md: client B cannot use client A's refresh token (and does not burn it).
            if grant.client_id != client_id {
                return Err(invalid_grant("the refresh token was issued to another client"));
            }
            if grant.revoked_at.is_some() {
                return Err(invalid_grant("the grant was revoked"));
            }
            if row.used_at.is_some() {
                grants::revoke_grant(conn, &grant.id, now)?;
                tracing::warn!(client_id = %grant.client_id, "rotated refresh token replayed; its grant is revoked");
                return Err(invalid_grant("the refresh token was already used"));
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
            let resource = issue::grant_target(conn, &client_for_db, &grant, requested_resource, &scope)?;
            let user = issue::live_user(conn, &grant)?.ok_or_else(|| invalid_grant("the user can no longer sign in"))?;
            let rotated = conn.transaction::<_, StorageError, _>(|conn| {
                if !grants::use_refresh(conn, &token_hash, now)? {
                    return Ok(None);
                }
                issue::new_refresh(conn, &grant.id, now, refresh_ttl).map(Some)
            })?;
            let Some(new_token) = rotated else {
                // Used concurrently: one of the two presentations is a replay.
                grants::revoke_grant(conn, &grant.id, now)?;
                return Err(invalid_grant("the refresh token was already used"));
            };
            Ok::<_, OAuthError>((grant, user, scope, new_token, resource))
        })
        .await?;
    let body = issue::response(
        state,
        client,
        &grant,
        &user,
        &scope,
        resource.as_ref(),
        Some(new_token),
    )
    .await?;
    Ok(respond(body))
}
