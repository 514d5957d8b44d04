//! Tokens for a user's grant: an RFC 9068 access token, an ID token when `openid` was granted,
//! and a new refresh token when the grant allows one.

use serde_json::{json, Map, Value};

use crate::admin::resources as admin_resources;
use crate::crypto::random;
use crate::metrics;
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::groups;
use crate::oauth::resource_metadata::{self, ResourceMetadata};
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::grants::{GrantRow, RefreshRow};
use crate::storage::groups as stored_groups;
use crate::storage::users::UserRow;
use crate::storage::{AnyConnection, StorageError};
use crate::tokens::access_token::{self, AccessTokenClaims};
use crate::tokens::{claims, id_token, jwe};
use crate::web::flow::hash;

/// DESIGN.md: refresh tokens when the client has the grant and `offline_access` was granted,
/// or the client is first-party (`skip_consent`).
pub fn wants_refresh(client: &Client, scope: &str) -> bool {
    client.allows_grant(GrantType::RefreshToken)
        && (scope.split(' ').any(|s| s == "offline_access") || client.metadata.skip_consent)
}

/// RFC 9449 §5: the key a new refresh token is bound to — the proof's, for a public client.
/// A confidential client's refresh tokens stay unbound: it authenticates to use them.
pub fn refresh_binding(client: &Client, jkt: Option<&str>) -> Option<String> {
    if client.metadata.token_endpoint_auth_method.is_confidential() {
        return None;
    }
    jkt.map(str::to_string)
}

/// The `token_type` of an access token bound to `jkt` or not (RFC 9449 §5, RFC 6750).
pub fn token_type(jkt: Option<&str>) -> &'static str {
    match jkt {
        Some(_) => crate::oauth::dpop::TOKEN_TYPE,
        None => "Bearer",
    }
}

/// A new refresh token for `grant_id` and its row (bound to `dpop_jkt` when given), stored
/// only when the response commits.
pub fn new_refresh(
    grant_id: &str,
    now: i64,
    ttl: i64,
    dpop_jkt: Option<String>,
) -> (String, RefreshRow) {
    let token = random::secret_256();
    let row = RefreshRow {
        token_hash: hash(&token),
        grant_id: grant_id.to_string(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
        successor_sealed: None,
        dpop_jkt,
    };
    (token, row)
}

/// Who an access token is for: its `aud`, its scope and its lifetime.
pub struct Target<'a> {
    pub aud: &'a str,
    pub scope: String,
    pub ttl: i64,
    /// The resource, when it registered a key to encrypt its access tokens to.
    encrypt_for: Option<&'a ResourceMetadata>,
}

impl<'a> Target<'a> {
    /// RFC 8707 §2: a token for a resource has the resource as `aud`, only the scopes the
    /// resource accepts, and the resource's lifetime; without one, Sigil's own (the issuer).
    pub fn new(
        state: &'a AppState,
        resource: Option<&'a ResourceMetadata>,
        scope: &Scope,
    ) -> Result<Self, OAuthError> {
        let default_ttl = state.settings.tokens.access_ttl.as_secs() as i64;
        Ok(match resource {
            Some(r) => Self {
                aud: &r.resource,
                scope: r.token_scope(scope)?.to_string(),
                ttl: r.ttl_secs().unwrap_or(default_ttl),
                encrypt_for: r.access_token_encrypted_response_alg.is_some().then_some(r),
            },
            None => Self {
                aud: state.settings.issuer_str(),
                scope: scope.to_string(),
                ttl: default_ttl,
                encrypt_for: None,
            },
        })
    }

    /// The access token as sent: a nested JWT (signed, then encrypted to the resource server's
    /// key) for a resource that registered encryption, else the signed JWT.
    pub fn seal(&self, signed: String) -> Result<String, OAuthError> {
        let Some(r) = self.encrypt_for else {
            return Ok(signed);
        };
        let (Some(alg), Some(jwks)) = (&r.access_token_encrypted_response_alg, &r.jwks) else {
            return Ok(signed);
        };
        let enc = r
            .access_token_encrypted_response_enc
            .as_deref()
            .unwrap_or(jwe::DEFAULT_ENC);
        jwe::encrypt(&signed, alg, enc, jwe::Recipient::Keys(jwks))
            .map_err(|e| OAuthError::server_error(format!("resource {}: {e}", r.resource)))
    }
}

/// RFC 8707 §2: a resource named in a token request must be registered and open to the client.
/// Looked up before anything is consumed.
pub async fn requested_resource(
    state: &AppState,
    client: &Client,
    requested: Option<String>,
) -> Result<Option<ResourceMetadata>, OAuthError> {
    match requested {
        Some(uri) => resource_metadata::admit(state.resource(&uri).await?, client).map(Some),
        None => Ok(None),
    }
}

/// RFC 8707 §2.2 for a user's grant: the resource the token is for. A requested resource must
/// be the one the grant was authorized for (when it named one); without one, the grant's own
/// resource, which must still be registered. Either must accept at least one of `scope`. Runs
/// before the code or refresh token is used up, so a wrong resource costs the client nothing.
pub fn grant_target(
    conn: &mut AnyConnection,
    client: &Client,
    grant: &GrantRow,
    requested: Option<ResourceMetadata>,
    scope: &str,
) -> Result<Option<ResourceMetadata>, OAuthError> {
    let resource = match (requested, grant.resource.as_deref()) {
        (Some(r), Some(authorized)) if r.resource != authorized => {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "the resource differs from the one the grant was authorized for",
            ))
        }
        (Some(r), _) => r,
        (None, Some(authorized)) => {
            resource_metadata::admit(admin_resources::load(conn, authorized)?, client)?
        }
        (None, None) => return Ok(None),
    };
    resource.token_scope(&Scope::parse(scope).unwrap_or_default())?;
    Ok(Some(resource))
}

/// Whom a grant's tokens are for: the user, and — when the scope holds `groups` — the names
/// of their groups that the client may see, read as the tokens are issued (so a membership
/// change shows in the next token or refresh).
pub struct Subject {
    pub user: UserRow,
    pub groups: Option<Vec<String>>,
}

/// The grant's user when they may still receive tokens (`live_user`), with their groups for a
/// scope that holds `groups`: one indexed query, made only then.
pub fn live_subject(
    conn: &mut AnyConnection,
    client: &Client,
    grant: &GrantRow,
    scope: &str,
) -> Result<Option<Subject>, StorageError> {
    let Some(user) = live_user(conn, grant)? else {
        return Ok(None);
    };
    let groups = if groups::in_scope(scope) {
        let names = stored_groups::names_of_user(conn, &user.id)?;
        Some(client.metadata.visible_groups(names))
    } else {
        None
    };
    Ok(Some(Subject { user, groups }))
}

/// What a token response is for: the grant's user, the scope (the grant's, or a narrower one),
/// the resource when one was named, and the DPoP key the access token is bound to.
pub struct Issue<'a> {
    pub subject: &'a Subject,
    pub scope: &'a str,
    pub resource: Option<&'a ResourceMetadata>,
    pub dpop_jkt: Option<&'a str>,
}

/// The token response body for `grant`.
pub async fn response(
    state: &AppState,
    client: &Client,
    grant: &GrantRow,
    issue: Issue<'_>,
    refresh_token: Option<String>,
) -> Result<Value, OAuthError> {
    let Issue {
        subject,
        scope,
        resource,
        dpop_jkt,
    } = issue;
    let settings = &state.settings;
    let keys = state.keyring.current();
    let now = state.clock.now();
    let issuer = settings.issuer_str();
    let user = &subject.user;
    let target = Target::new(state, resource, &Scope::parse(scope).unwrap_or_default())?;
    let alg = settings.tokens.access_token_alg;
    let key = keys
        .active(alg)
        .ok_or_else(|| OAuthError::server_error(format!("no active {alg} key")))?;
    let mut at = AccessTokenClaims::new(
        issuer,
        &user.id,
        target.aud,
        &client.client_id,
        now,
        target.ttl,
    );
    at.scope = Some(&target.scope);
    at.auth_time = Some(grant.auth_time);
    at.acr = Some(&grant.acr);
    at.amr = Some(grant.amr.split(' ').filter(|m| !m.is_empty()).collect());
    at.gid = Some(&grant.id);
    // A token for a resource server carries the groups when the resource accepts the scope.
    at.groups = subject
        .groups
        .as_deref()
        .filter(|_| groups::in_scope(&target.scope));
    // RFC 9449 §6.1: bound to the proof's key.
    at.cnf = dpop_jkt.map(crate::oauth::dpop::cnf);
    let access_token =
        target.seal(access_token::mint(key, &at).map_err(OAuthError::server_error)?)?;

    // RFC 6749 §5.1: `scope` is the access token's; the ID token keeps the grant's claims.
    let mut body = json!({
        "access_token": access_token,
        "token_type": token_type(dpop_jkt),
        "expires_in": target.ttl,
        "scope": target.scope,
    });
    if scope.split(' ').any(|s| s == "openid") {
        let alg = client.metadata.id_token_signed_response_alg.as_str();
        let mut c: Map<String, Value> = claims::for_scope(user, scope);
        if let Some(names) = &subject.groups {
            c.insert(groups::SCOPE.into(), names.clone().into());
        }
        c.insert("iss".into(), issuer.into());
        c.insert("aud".into(), client.client_id.clone().into());
        c.insert("azp".into(), client.client_id.clone().into());
        c.insert(
            "exp".into(),
            (now + settings.tokens.id_token_ttl.as_secs() as i64).into(),
        );
        c.insert("iat".into(), now.into());
        c.insert("auth_time".into(), grant.auth_time.into());
        if let Some(nonce) = &grant.nonce {
            c.insert("nonce".into(), nonce.clone().into());
        }
        c.insert("acr".into(), grant.acr.clone().into());
        c.insert(
            "amr".into(),
            grant.amr.split(' ').collect::<Vec<_>>().into(),
        );
        c.insert("sid".into(), grant.sid.clone().into());
        c.insert(
            "at_hash".into(),
            id_token::at_hash(&access_token, alg).into(),
        );
        let signed = id_token::sign(&keys, alg, client.secret.as_ref(), &c)?;
        // OIDC Core §16.14: signed, then encrypted, when the client registered encryption.
        let m = &client.metadata;
        body["id_token"] = match &m.id_token_encrypted_response_alg {
            Some(enc_alg) => {
                let enc = m.id_token_encrypted_response_enc.as_deref();
                jwe::seal_for_client(state, client, enc_alg, enc, &signed).await?
            }
            None => signed,
        }
        .into();
    }
    if let Some(rt) = refresh_token {
        body["refresh_token"] = rt.into();
    }
    Ok(body)
}

/// Counts the tokens of `body`, a response handed out for `grant`
/// (`sigil_tokens_issued_total`): the access token in `tokens.access_token_alg`, the ID token
/// in the client's algorithm, the refresh token (opaque).
pub fn count(state: &AppState, grant: GrantType, client: &Client, body: &Value) {
    let events = &state.metrics.events;
    let access_alg = state.settings.tokens.access_token_alg.as_str();
    events.issued(grant, metrics::Token::Access, access_alg);
    if body.get("id_token").is_some() {
        let id_alg = client.metadata.id_token_signed_response_alg.as_str();
        events.issued(grant, metrics::Token::Id, id_alg);
    }
    if body.get("refresh_token").is_some() {
        events.issued(grant, metrics::Token::Refresh, metrics::OPAQUE);
    }
}

/// Checks that the grant's user may still receive tokens.
pub fn live_user(
    conn: &mut AnyConnection,
    grant: &GrantRow,
) -> Result<Option<UserRow>, StorageError> {
    Ok(crate::storage::users::by_id(conn, &grant.user_id)?
        .filter(|u| !u.disabled && grant.auth_time > u.tokens_valid_after))
}
