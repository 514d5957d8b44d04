//! The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), checked in the spec's order,
//! one check per function. The checks that come before the redirect_uri is trusted answer with
//! an error page; the rest answer on the redirect_uri.

use serde::{Deserialize, Serialize};

use super::client_metadata::{Client, GrantType};
use super::form::Params;
use super::pkce;
use super::resource_metadata;
use super::scope::Scope;
use super::{ErrorCode, OAuthError};
use crate::web::strength::Acr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// The `prompt` values (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A request that passed every check; kept server-side while the login and consent pages run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The `sub` of a valid `id_token_hint`, checked by the caller.
    pub id_token_hint: Option<String>,
    /// The resource server the access tokens are for (RFC 8707); its registration and the
    /// client's right to it are checked by the flow, which can read the registry.
    #[serde(default)]
    pub resource: Option<String>,
    /// `acr_values` (OIDC Core §3.1.2.1) Sigil knows, as given: voluntary, the strongest one
    /// the user can give is asked for.
    #[serde(default)]
    pub acr_values: Vec<Acr>,
    /// An essential `acr` in the `claims` parameter (OIDC Core §5.5.1.1): the ID token's `acr`
    /// must be one of these, or the request fails.
    #[serde(default)]
    pub essential_acr: Option<Vec<Acr>>,
    /// Set when the request was made on the `/device` page for a device authorization
    /// (RFC 8628 §3.3): the answer goes to the device, not to a redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<super::device::DeviceLink>,
}

impl AuthorizationRequest {
    pub fn is_openid(&self) -> bool {
        self.scope.split(' ').any(|s| s == "openid")
    }

    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            state: self.state.clone(),
            device: self.device.is_some(),
        }
    }
}

/// Where an error goes back to, once the client and redirect_uri are known good.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    /// A device authorization's request (RFC 8628): answered on Sigil's own page.
    pub device: bool,
}

/// RFC 6749 §3.1.2.3 / OIDC Core §3.1.2.1: redirect_uri is required and must be one of the
/// registered URIs, compared as exact strings (RFC 9700 §4.1.3). Failing here is an error page.
pub fn check_redirect_uri<'a>(params: &'a Params, client: &Client) -> Result<&'a str, OAuthError> {
    let uri = params.required("redirect_uri")?;
    if !client.metadata.redirect_uris.iter().any(|r| r == uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    Ok(uri)
}

/// response_mode `query` (the default for `code`) or `form_post`. Checked before anything else
/// that redirects, because it decides how errors travel.
pub fn check_response_mode(params: &Params) -> Result<ResponseMode, OAuthError> {
    match params.get("response_mode") {
        None | Some("query") => Ok(ResponseMode::Query),
        Some("form_post") => Ok(ResponseMode::FormPost),
        Some(other) => Err(OAuthError::invalid_request(format!(
            "response_mode {other:?} is not supported"
        ))),
    }
}

/// RFC 6749 §3.1.1: `code` only.
fn check_response_type(params: &Params, client: &Client) -> Result<(), OAuthError> {
    match params.get("response_type") {
        None => Err(OAuthError::invalid_request("response_type is required")),
        Some("code") if client.allows_grant(GrantType::AuthorizationCode) => Ok(()),
        Some("code") => Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization_code grant",
        )),
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )),
    }
}

/// RFC 6749 §3.3: within the client's registered scopes; without a scope, the registered ones.
pub fn check_scope(params: &Params, client: &Client) -> Result<Scope, OAuthError> {
    let registered = client.registered_scope();
    match params.get("scope") {
        None => Ok(registered),
        Some(text) => {
            let scope =
                Scope::parse(text).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?;
            if !scope.is_subset(&registered) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "the requested scope exceeds the client's registered scope",
                ));
            }
            Ok(scope)
        }
    }
}

/// RFC 7636; required for public clients (RFC 9700 §2.1.1), honoured for all.
fn check_pkce(params: &Params, client: &Client) -> Result<Option<String>, OAuthError> {
    match params.get("code_challenge") {
        Some(challenge) => {
            pkce::check_challenge(challenge, params.get("code_challenge_method"))?;
            Ok(Some(challenge.to_string()))
        }
        None if params.get("code_challenge_method").is_some() => Err(OAuthError::invalid_request(
            "code_challenge_method without code_challenge",
        )),
        None if !client.metadata.token_endpoint_auth_method.is_confidential() => Err(
            OAuthError::invalid_request("public clients must use PKCE (code_challenge)"),
        ),
        None => Ok(None),
    }
}

/// OIDC Core §3.1.2.1: prompt values; `none` with anything else is an error.
fn check_prompt(params: &Params) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::default();
    for value in params
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|v| !v.is_empty())
    {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            other => {
                return Err(OAuthError::invalid_request(format!(
                    "prompt {other:?} is not supported"
                )))
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

fn check_max_age(params: &Params) -> Result<Option<i64>, OAuthError> {
    params
        .get("max_age")
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                OAuthError::invalid_request("max_age must be a non-negative integer")
            })
        })
        .transpose()
}

/// Everything after the redirect_uri, in the spec's order. Errors here go back to the client.
pub fn check(
    params: &Params,
    client: &Client,
    redirect_uri: &str,
    response_mode: ResponseMode,
) -> Result<AuthorizationRequest, OAuthError> {
    check_response_type(params, client)?;
    let scope = check_scope(params, client)?;
    let resource = params
        .get("resource")
        .map(resource_metadata::check_indicator)
        .transpose()?;
    let code_challenge = check_pkce(params, client)?;
    let prompt = check_prompt(params)?;
    let max_age = check_max_age(params)?;
    let (claims_acr, essential_acr) = check_claims_acr(params)?;
    let mut acr_values: Vec<Acr> = params
        .get("acr_values")
        .unwrap_or("")
        .split(' ')
        .filter_map(Acr::parse)
        .collect();
    acr_values.extend(claims_acr);
    // A request object or pushed request was resolved into `params` before this check
    // (`endpoints::authorize`); one still here is not Sigil's to follow: a request_uri to
    // fetch from elsewhere (RFC 9101 §5.2 lets an OP refuse it).
    if params.get("request").is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "a request object cannot be nested",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "only a request_uri from the PAR endpoint is supported",
        ));
    }
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        response_mode,
        scope: scope.to_string(),
        state: params.get("state").map(str::to_string),
        nonce: params.get("nonce").map(str::to_string),
        code_challenge,
        prompt,
        max_age,
        login_hint: params.get("login_hint").map(str::to_string),
        id_token_hint: params.get("id_token_hint").map(str::to_string),
        resource: resource.map(str::to_string),
        acr_values,
        essential_acr,
        device: None,
    })
}

/// OIDC Core §5.5: the `claims` parameter, a JSON object. Sigil acts on its `id_token.acr`
/// member (§5.5.1.1): essential → the levels it must be one of (none Sigil knows →
/// `unmet_authentication_requirements`); voluntary → like `acr_values`. Other members are
/// accepted and ignored (the scopes decide which claims are returned).
fn check_claims_acr(params: &Params) -> Result<(Vec<Acr>, Option<Vec<Acr>>), OAuthError> {
    let Some(text) = params.get("claims") else {
        return Ok((Vec::new(), None));
    };
    let claims: serde_json::Value = serde_json::from_str(text)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| OAuthError::invalid_request("claims must be a JSON object"))?;
    let Some(acr) = claims.pointer("/id_token/acr").filter(|v| !v.is_null()) else {
        return Ok((Vec::new(), None));
    };
    let bad = || OAuthError::invalid_request("claims.id_token.acr must be null or an object");
    let acr = acr.as_object().ok_or_else(bad)?;
    let mut named: Vec<&serde_json::Value> = Vec::new();
    if let Some(v) = acr.get("value") {
        named.push(v);
    }
    if let Some(vs) = acr.get("values") {
        named.extend(vs.as_array().ok_or_else(bad)?);
    }
    let levels: Vec<Acr> = named
        .iter()
        .filter_map(|v| v.as_str().and_then(Acr::parse))
        .collect();
    let essential = match acr.get("essential") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(bad()),
    };
    if !essential {
        return Ok((levels, None));
    }
    if named.is_empty() {
        // Essential without values: any level is an `acr` Sigil can return.
        return Ok((Vec::new(), None));
    }
    if levels.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::UnmetAuthenticationRequirements,
            "none of the essential acr values is one Sigil offers",
        ));
    }
    Ok((Vec::new(), Some(levels)))
}
