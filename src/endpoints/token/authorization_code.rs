//! RFC 6749 §4.1.3: a code for tokens. The code must belong to this client, be presented with
//! the same redirect_uri and the PKCE verifier, and is used once: a second use is an attack
//! (RFC 6749 §4.1.2) and revokes everything issued from it.
//!
//! Validate, build, then commit (SECURITY.md 28): everything is read and checked without a
//! write, the whole response is built (tokens signed, the ID token encrypted, perhaps after
//! fetching the client's `jwks_uri`), and only then is the code spent, in the transaction that
//! stores the new refresh token. A response that fails before that leaves the code unused, so
//! the client's retry is never taken for a replay; of N concurrent redemptions exactly one
//! commits, and the others are replays.
//!
//! [`redeem`] is the one redemption: the token endpoint answers with its body, and Sigil's own
//! first-party account page (`web::account`) redeems its code in-process through it.

use serde_json::Value;

use super::{grant_until, invalid_grant, issue, replayed, Replay};
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::resource_metadata::ResourceMetadata;
use crate::oauth::{pkce, OAuthError};
use crate::state::AppState;
use crate::storage::grants::{self, CodeRow, GrantRow, Redeemed, Spend};
use crate::web::flow::hash;

/// What the checks found.
enum Checked {
    /// The code may be redeemed.
    Ready(Box<Ready>),
    /// A used code, presented by its owner: a replay.
    Replayed { grant_id: String },
}

struct Ready {
    grant: GrantRow,
    subject: issue::Subject,
    resource: Option<ResourceMetadata>,
}

/// A redeemed code: the token response body, and the grant it was issued under.
pub struct Redemption {
    pub body: Value,
    pub grant: GrantRow,
}

/// A code as the token endpoint got it, and the client address it came from.
pub struct Presented {
    pub code: String,
    pub redirect_uri: String,
    pub verifier: Option<String>,
    pub resource: Option<String>,
    pub address: Option<String>,
    /// The thumbprint of the DPoP proof's key (RFC 9449 §5), when one came.
    pub dpop_jkt: Option<String>,
}

/// Redeems a code Sigil redeems for itself (the account page), with no client address.
pub async fn redeem(
    state: &AppState,
    client: &Client,
    code: String,
    redirect_uri: String,
    verifier: Option<String>,
    resource: Option<String>,
) -> Result<Redemption, OAuthError> {
    let presented = Presented {
        code,
        redirect_uri,
        verifier,
        resource,
        address: None,
        dpop_jkt: None,
    };
    redeem_presented(state, client, presented).await
}

pub async fn redeem_presented(
    state: &AppState,
    client: &Client,
    presented: Presented,
) -> Result<Redemption, OAuthError> {
    let Presented {
        code,
        redirect_uri,
        verifier,
        resource,
        address,
        dpop_jkt,
    } = presented;
    let replay = || Replay::new(client, address.as_deref(), "authorization_code");
    let requested = issue::requested_resource(state, client, resource).await?;
    let now = state.clock.now();
    let code_hash = hash(&code);
    let (owned_hash, owned_client) = (code_hash.clone(), client.clone());
    let checked = state
        .db
        .run(move |conn| {
            let row = grants::code(conn, &owned_hash)?
                .ok_or_else(|| invalid_grant("unknown authorization code"))?;
            // SECURITY.md attack 9: another client's code changes nothing.
            if row.client_id != owned_client.client_id {
                return Err(invalid_grant("the code was issued to another client"));
            }
            if row.consumed_at.is_some() {
                // SECURITY.md 28: only the code's owner can have its grant revoked.
                presented_by_owner(&owned_client, &row, verifier.as_deref())?;
                return Ok(Checked::Replayed {
                    grant_id: row.grant_id,
                });
            }
            if row.expires_at <= now {
                return Err(invalid_grant("the code has expired"));
            }
            // RFC 6749 §4.1.3: identical to the redirect_uri of the authorization request.
            if row.redirect_uri != redirect_uri {
                return Err(invalid_grant(
                    "redirect_uri differs from the authorization request",
                ));
            }
            check_verifier(&row, verifier.as_deref())?;
            let grant = grants::grant(conn, &row.grant_id)?
                .filter(|g| g.revoked_at.is_none())
                .ok_or_else(|| invalid_grant("the grant was revoked"))?;
            let resource =
                issue::grant_target(conn, &owned_client, &grant, requested, &grant.scope)?;
            let subject = issue::live_subject(conn, &owned_client, &grant, &grant.scope)?
                .ok_or_else(|| invalid_grant("the user can no longer sign in"))?;
            Ok::<_, OAuthError>(Checked::Ready(Box::new(Ready {
                grant,
                subject,
                resource,
            })))
        })
        .await?;
    let Ready {
        grant,
        subject,
        resource,
    } = match checked {
        Checked::Ready(ready) => *ready,
        Checked::Replayed { grant_id } => {
            return Err(replayed(state, replay(), grant_id, "the code was already used").await)
        }
    };

    // Build: the complete response, before anything is written.
    let refresh_ttl = state.settings.tokens.refresh_ttl.as_secs() as i64;
    let (refresh_token, refresh_row) = match issue::wants_refresh(client, &grant.scope) {
        true => {
            let bound = issue::refresh_binding(client, dpop_jkt.as_deref());
            let (token, row) = issue::new_refresh(&grant.id, now, refresh_ttl, bound);
            (Some(token), Some(row))
        }
        false => (None, None),
    };
    let to = issue::Issue {
        subject: &subject,
        scope: &grant.scope,
        resource: resource.as_ref(),
        dpop_jkt: dpop_jkt.as_deref(),
    };
    let body = issue::response(state, client, &grant, to, refresh_token).await?;

    // Commit: the code is spent together with the new refresh token, or not at all.
    let until = grant_until(state, now, refresh_row.as_ref());
    let grant_id = grant.id.clone();
    let (outcome, grant) = state
        .db
        .run(move |conn| {
            let spend = Spend::Code {
                code_hash: &code_hash,
            };
            grants::redeem(conn, spend, &grant, until, refresh_row.as_ref(), now)
                .map(|outcome| (outcome, grant))
        })
        .await?;
    match outcome {
        Redeemed::Committed => {
            issue::count(state, GrantType::AuthorizationCode, client, &body);
            Ok(Redemption { body, grant })
        }
        // A concurrent redemption won: the same attack as a later replay (RFC 6749 §4.1.2).
        // The winner's tokens die with the grant; this response is thrown away.
        Redeemed::AlreadyUsed => {
            Err(replayed(state, replay(), grant_id, "the code was already used").await)
        }
        Redeemed::Expired => Err(invalid_grant("the code has expired")),
        Redeemed::GrantRevoked => Err(invalid_grant("the grant was revoked")),
    }
}

/// RFC 7636 §4.6, and no verifier without a challenge (downgrade, SECURITY.md attack 10).
fn check_verifier(row: &CodeRow, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (&row.code_challenge, verifier) {
        (Some(challenge), Some(v)) => pkce::verify(v, challenge),
        (Some(_), None) => Err(invalid_grant("code_verifier is required")),
        (None, Some(_)) => Err(invalid_grant("no code_challenge was sent for this code")),
        (None, None) => Ok(()),
    }
}

/// Whether a used code comes back from the client it was issued to (the caller checked the
/// client id): a confidential client authenticated to get here; a public client proves it only
/// with the code's PKCE verifier (RFC 7636 §1). Anyone else gets `invalid_grant` and nothing
/// changes, so a stolen used code cannot be spent to revoke its victim's grant.
fn presented_by_owner(
    client: &Client,
    row: &CodeRow,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if client.metadata.token_endpoint_auth_method.is_confidential() {
        return Ok(());
    }
    match (&row.code_challenge, verifier) {
        (Some(challenge), Some(v)) if pkce::verify(v, challenge).is_ok() => Ok(()),
        _ => Err(invalid_grant("the code was already used")),
    }
}
