//! What a client that registers itself at `/register` (RFC 7591) may not have, on top of the
//! checks every registration passes ([`ClientMetadata::from_json`], the one validator the CLI
//! and the admin API use too). These are an administrator's decisions:
//!
//! - `skip_consent` (a first-party app), the `sigil:admin` scope (the admin API), and the
//!   grants that give tokens without a user's consent — `client_credentials` and token
//!   exchange (RFC 8693) — are refused with `invalid_client_metadata`;
//! - redirect URIs over plain `http` only on loopback (RFC 8252 §7.3: 127.0.0.1, [::1],
//!   localhost), else `invalid_redirect_uri`; post-logout redirect URIs likewise;
//! - `jwks_uri` and `backchannel_logout_uri` — addresses Sigil itself will call — not on
//!   loopback, private or other non-public addresses (nor `localhost`) unless
//!   `outbound.allow_private_networks`. A name is checked again, on the addresses it resolves
//!   to, each time Sigil connects (`crate::outbound`).

use std::net::IpAddr;

use url::{Host, Url};

use super::{ClientMetadata, GrantType};
use crate::admin::api::ADMIN_SCOPE;
use crate::oauth::{ErrorCode, OAuthError};
use crate::outbound::is_public;

fn bad(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description.into())
}

/// The rules above, on metadata that passed [`ClientMetadata::from_json`].
pub fn check(metadata: &ClientMetadata, allow_private_networks: bool) -> Result<(), OAuthError> {
    if metadata.skip_consent {
        return Err(bad(
            "skip_consent is for clients an administrator registers",
        ));
    }
    if metadata.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
        return Err(bad(format!(
            "the scope {ADMIN_SCOPE} is for clients an administrator registers"
        )));
    }
    for grant in [GrantType::ClientCredentials, GrantType::TokenExchange] {
        if metadata.grant_types.contains(&grant) {
            return Err(bad(format!(
                "the grant {} is for clients an administrator registers",
                grant.as_str()
            )));
        }
    }
    for uri in &metadata.redirect_uris {
        if !secure_or_loopback(uri) {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                format!("redirect_uri {uri:?}: plain http is allowed only on loopback"),
            ));
        }
    }
    for uri in &metadata.post_logout_redirect_uris {
        if !secure_or_loopback(uri) {
            return Err(bad(format!(
                "post_logout_redirect_uri {uri:?}: plain http is allowed only on loopback"
            )));
        }
    }
    if !allow_private_networks {
        for (name, uri) in [
            ("jwks_uri", &metadata.jwks_uri),
            ("backchannel_logout_uri", &metadata.backchannel_logout_uri),
        ] {
            if let Some(uri) = uri {
                if !public_target(uri) {
                    return Err(bad(format!("{name} {uri:?} is not on a public address")));
                }
            }
        }
    }
    Ok(())
}

/// Not plain `http`, or `http` to a loopback host.
fn secure_or_loopback(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if url.scheme() != "http" {
        return true;
    }
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A host Sigil may call: a public literal address, or a name other than `localhost`.
fn public_target(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    match url.host() {
        Some(Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d != "localhost" && !d.ends_with(".localhost")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(json: serde_json::Value) -> ClientMetadata {
        ClientMetadata::from_json(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn loopback_http_and_custom_schemes_pass_other_http_does_not() {
        for uri in [
            "https://app.example/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/cb",
        ] {
            assert!(secure_or_loopback(uri), "{uri}");
        }
        for uri in [
            "http://app.example/cb",
            "http://10.0.0.1/cb",
            "http://localhost.evil/cb",
        ] {
            assert!(!secure_or_loopback(uri), "{uri}");
        }
    }

    #[test]
    fn outbound_targets_must_be_public() {
        for uri in [
            "https://127.0.0.1/jwks",
            "https://[::1]/jwks",
            "https://10.1.2.3/jwks",
            "https://169.254.169.254/latest",
            "https://localhost/jwks",
            "https://a.localhost./jwks",
        ] {
            assert!(!public_target(uri), "{uri}");
        }
        assert!(public_target("https://keys.example.com/jwks"));
        assert!(public_target("https://93.184.216.34/jwks"));
    }

    #[test]
    fn administrators_decisions_are_refused() {
        let base = serde_json::json!({"redirect_uris": ["https://app.example/cb"]});
        check(&metadata(base.clone()), false).unwrap();
        for extra in [
            serde_json::json!({"skip_consent": true}),
            serde_json::json!({"scope": "openid sigil:admin"}),
            serde_json::json!({"grant_types": ["authorization_code", "client_credentials"]}),
            serde_json::json!({"grant_types": ["authorization_code", super::super::TOKEN_EXCHANGE]}),
        ] {
            let mut m = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            let e = check(&metadata(m), false).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClientMetadata, "{extra}");
        }
    }
}
