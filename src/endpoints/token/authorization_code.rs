//! RFC 6749 §4.1.3: a code for tokens. The code must belong to this client, be presented with
//! the same redirect_uri and the PKCE verifier, and is used once: a second use is an attack
//! (RFC 6749 §4.1.2) and revokes everything issued from it.

use actix_web::HttpResponse;

use super::{invalid_grant, issue, respond};
use crate::oauth::client_metadata::Client;
use crate::oauth::{pkce, OAuthError};
use crate::state::AppState;
use crate::storage::grants;
use crate::web::flow::hash;

pub async fn grant(
    state: &AppState,
    client: &Client,
    code: String,
    redirect_uri: String,
    verifier: Option<String>,
    resource: Option<String>,
) -> Result<HttpResponse, OAuthError> {
    let requested = issue::requested_resource(state, client, resource).await?;
    let now = state.clock.now();
    let refresh_ttl = state.settings.tokens.refresh_ttl.as_secs() as i64;
    let client_for_db = client.clone();
    let (grant, user, refresh, resource) = state
        .db
        .run(move |conn| {
            let code_hash = hash(&code);
            let row = grants::code(conn, &code_hash)?.ok_or_else(|| invalid_grant("unknown authorization code"))?;
            // SECURITY.md attack 9: another client's code, or another redirect_uri.
            if row.client_id != client_for_db.client_id {
                return Err(invalid_grant("the code was issued to another client"));
            }
            if row.consumed_at.is_some() {
                grants::revoke_grant(conn, &row.grant_id, now)?;
                tracing::warn!(client_id = %row.client_id, "authorization code replayed; its grant is revoked");
                return Err(invalid_grant("the code was already used"));
            }
            if row.expires_at <= now {
                return Err(invalid_grant("the code has expired"));
            }
            // RFC 6749 §4.1.3: identical to the redirect_uri of the authorization request.
            if row.redirect_uri != redirect_uri {
                return Err(invalid_grant("redirect_uri differs from the authorization request"));
            }
            // RFC 7636 §4.6, and no verifier without a challenge (downgrade).
            match (&row.code_challenge, &verifier) {
                (Some(challenge), Some(v)) => pkce::verify(v, challenge)?,
                (Some(_), None) => return Err(invalid_grant("code_verifier is required")),
                (None, Some(_)) => return Err(invalid_grant("no code_challenge was sent for this code")),
                (None, None) => {}
            }
            let resource = match grants::grant(conn, &row.grant_id)? {
                Some(g) => issue::grant_target(conn, &client_for_db, &g, requested, &g.scope)?,
                None => None,
            };
            if !grants::consume_code(conn, &code_hash, now)? {
                // Someone else used it a moment ago: the same attack.
                grants::revoke_grant(conn, &row.grant_id, now)?;
                return Err(invalid_grant("the code was already used"));
            }
            let grant = grants::grant(conn, &row.grant_id)?
                .filter(|g| g.revoked_at.is_none())
                .ok_or_else(|| invalid_grant("the grant was revoked"))?;
            let user = issue::live_user(conn, &grant)?.ok_or_else(|| invalid_grant("the user can no longer sign in"))?;
            let refresh = issue::wants_refresh(&client_for_db, &grant.scope)
                .then(|| issue::new_refresh(conn, &grant.id, now, refresh_ttl))
                .transpose()?;
            Ok::<_, OAuthError>((grant, user, refresh, resource))
        })
        .await?;
    let body = issue::response(
        state,
        client,
        &grant,
        &user,
        &grant.scope,
        resource.as_ref(),
        refresh,
    )
    .await?;
    Ok(respond(body))
}
