//! Form bodies and queries (`Params::parse`), the token request (RFC 6749 §4.1.3, §4.4.2, §6),
//! the authorization request checks and redirect URIs (RFC 6749 §4.1.1, §3.1.2; OIDC Core
//! §3.1.2.1), PKCE (RFC 7636) and scopes (RFC 6749 §3.3).

use std::collections::BTreeMap;

use proptest::prelude::*;

use sigil::oauth::authorize_request::{self, AuthorizationRequest, ResponseMode};
use sigil::oauth::client_metadata::{Client, ClientMetadata};
use sigil::oauth::form::Params;
use sigil::oauth::pkce;
use sigil::oauth::scope::Scope;
use sigil::oauth::token_request::TokenRequest;
use sigil::oauth::ErrorCode;

use super::{bytes, check, hostile_text, mutated};

const REDIRECT: &str = "https://app.example/cb?x=1";
/// `http.max_param_bytes` by default.
const PARAM_LIMIT: usize = 4096;

/// A registered client: confidential (`client_secret_basic`) or public (`none`).
pub fn client(public: bool) -> Client {
    let method = if public {
        "none"
    } else {
        "client_secret_basic"
    };
    let json = format!(
        r#"{{"redirect_uris":["{REDIRECT}","https://app.example/other"],"scope":"openid profile api:read",
            "grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"{method}"}}"#
    );
    Client {
        client_id: "app".into(),
        metadata: ClientMetadata::from_json(json.as_bytes()).expect("valid metadata"),
        secret: None,
    }
}

/// Form bodies made of the names the endpoints read, each with a valid, hostile or mutated value.
pub fn oauth_form() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("grant_type"),
        Just("code"),
        Just("redirect_uri"),
        Just("code_verifier"),
        Just("refresh_token"),
        Just("scope"),
        Just("resource"),
        Just("client_id"),
        Just("client_secret"),
        Just("response_type"),
        Just("response_mode"),
        Just("state"),
        Just("nonce"),
        Just("code_challenge"),
        Just("code_challenge_method"),
        Just("prompt"),
        Just("max_age"),
        Just("request"),
        Just("request_uri"),
        Just("login_hint"),
        Just("id_token_hint"),
    ]
    .prop_map(str::to_string);
    let value = prop_oneof![
        prop_oneof![
            Just("authorization_code"),
            Just("refresh_token"),
            Just("client_credentials"),
            Just("code"),
            Just("openid profile"),
            Just("S256"),
            Just("plain"),
            Just("none login"),
            Just("form_post"),
            Just("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            Just("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            Just(REDIRECT),
            Just("https://api.example/"),
            Just("60"),
        ]
        .prop_map(str::to_string),
        hostile_text(),
        mutated(REDIRECT.to_string()),
        mutated("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
    ];
    proptest::collection::vec((name, value), 0..12)
}

fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

/// Arbitrary bytes, and bodies near the limits (`http.max_body_bytes` 16 KiB, one parameter
/// of `http.max_param_bytes` 4 KiB), never panic the form parser.
#[test]
fn form_bodies_of_any_bytes_parse_or_are_refused() {
    check("Params::parse (any bytes)", bytes(20_000), |body| {
        let _ = Params::parse(&body, PARAM_LIMIT);
        Ok(())
    });
    let at_limits = (0..3usize, any::<u8>()).prop_map(|(which, b)| {
        let fill = |n: usize| vec![b'a' + b % 26; n];
        match which {
            0 => [b"code=".to_vec(), fill(4096)].concat(),
            1 => [b"code=".to_vec(), fill(4097)].concat(),
            _ => [b"state=".to_vec(), fill(16 * 1024 - 6)].concat(),
        }
    });
    check("Params::parse (at the size limits)", at_limits, |body| {
        let value_len = body.len() - body.iter().position(|b| *b == b'=').unwrap() - 1;
        // Over the parameter limit: refused, whatever the value.
        if value_len > PARAM_LIMIT {
            prop_assert!(Params::parse(&body, PARAM_LIMIT).is_err());
        }
        // Without the limit, read whole.
        let p = Params::parse(&body, usize::MAX).expect("one long parameter is a form");
        let value = p.get("code").or(p.get("state")).expect("its value");
        prop_assert_eq!(value.len(), value_len);
        if value_len <= PARAM_LIMIT {
            prop_assert!(Params::parse(&body, PARAM_LIMIT).is_ok());
        }
        Ok(())
    });
}

/// RFC 6749 §3.1: what a client form-encodes is what Sigil reads, whatever the bytes (NUL,
/// `&`, `=`, `+`, `%`, any Unicode); a parameter sent twice is refused.
#[test]
fn form_bodies_say_what_was_encoded() {
    let pairs = proptest::collection::btree_map("[a-z_&=+%\0 ]{1,12}", hostile_text(), 0..8);
    check(
        "Params::parse (round trip)",
        pairs,
        |pairs: BTreeMap<String, String>| {
            let list: Vec<_> = pairs.clone().into_iter().collect();
            let parsed = Params::parse(&encode(&list), usize::MAX);
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => return Err(TestCaseError::fail(format!("refused: {e:?}"))),
            };
            for (k, v) in &pairs {
                // §3.1: "Parameters sent without a value MUST be treated as if they were omitted".
                let expected = (!v.is_empty()).then_some(v.as_str());
                prop_assert_eq!(parsed.get(k), expected, "parameter {:?}", k);
            }
            if let Some((k, v)) = list.first() {
                let mut twice = list.clone();
                twice.push((k.clone(), v.clone()));
                prop_assert!(
                    Params::parse(&encode(&twice), PARAM_LIMIT).is_err(),
                    "{k:?} twice"
                );
            }
            Ok(())
        },
    );
}

/// The token request: any form gives a request or one of the errors RFC 6749 §5.2 (and
/// RFC 8707 §2) lists for it — `unsupported_grant_type` exactly when the grant type is not one
/// Sigil serves.
#[test]
fn token_requests_are_read_or_refused_with_the_rfc_error() {
    check("TokenRequest::parse", oauth_form(), |pairs| {
        let Ok(params) = Params::parse(&encode(&pairs), PARAM_LIMIT) else {
            return Ok(());
        };
        match TokenRequest::parse(&params) {
            Ok(request) => {
                prop_assert_eq!(
                    params.get("grant_type"),
                    Some(request.grant_type().as_str())
                );
            }
            Err(e) => {
                prop_assert!(
                    matches!(
                        e.code,
                        ErrorCode::InvalidRequest
                            | ErrorCode::UnsupportedGrantType
                            | ErrorCode::InvalidScope
                            | ErrorCode::InvalidTarget
                    ),
                    "{:?}",
                    e
                );
                let served = ["authorization_code", "refresh_token", "client_credentials"];
                let unsupported = params
                    .get("grant_type")
                    .is_some_and(|g| !served.contains(&g));
                prop_assert_eq!(e.code == ErrorCode::UnsupportedGrantType, unsupported);
            }
        }
        Ok(())
    });
}

/// RFC 6749 §3.1.2.3 and RFC 9700 §4.1.3: a redirect URI is accepted only when it is one of the
/// registered ones, byte for byte; any mutation of a registered URI is refused.
#[test]
fn redirect_uris_match_exactly_or_are_refused() {
    let candidate = prop_oneof![mutated(REDIRECT.to_string()), hostile_text()];
    let (confidential, public) = (client(false), client(true));
    check("check_redirect_uri", candidate, |uri| {
        let params =
            Params::parse(&encode(&[("redirect_uri".into(), uri.clone())]), usize::MAX).unwrap();
        for c in [&confidential, &public] {
            let registered = c.metadata.redirect_uris.contains(&uri);
            match authorize_request::check_redirect_uri(&params, c) {
                Ok(got) => prop_assert!(registered && got == uri),
                Err(e) => {
                    prop_assert!(!registered, "{uri:?} is registered");
                    prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
                }
            }
        }
        Ok(())
    });
}

/// The authorization request after the redirect URI: any parameters give a request that keeps
/// its promises (scope within the registration, an S256 challenge of 43 characters, a
/// non-negative `max_age`, `prompt=none` alone, parked and read back unchanged) or one of the errors of RFC 6749 §4.1.2.1 / OIDC
/// Core §3.1.2.6 / RFC 8707 §2.
#[test]
fn authorization_requests_keep_their_promises() {
    let (confidential, public) = (client(false), client(true));
    check("authorize_request::check", oauth_form(), |pairs| {
        let Ok(params) = Params::parse(&encode(&pairs), PARAM_LIMIT) else {
            return Ok(());
        };
        let mode = authorize_request::check_response_mode(&params);
        prop_assert!(mode
            .as_ref()
            .map_or_else(|e| e.code == ErrorCode::InvalidRequest, |_| true));
        for c in [&confidential, &public] {
            match authorize_request::check(&params, c, REDIRECT, ResponseMode::Query) {
                Ok(r) => {
                    prop_assert_eq!(params.get("response_type"), Some("code"));
                    let scope = Scope::parse(&r.scope).expect("a stored scope parses");
                    prop_assert!(scope.is_subset(&c.registered_scope()));
                    if let Some(ch) = &r.code_challenge {
                        prop_assert!(pkce::check_challenge(ch, Some("S256")).is_ok());
                    } else {
                        prop_assert!(c.metadata.token_endpoint_auth_method.is_confidential());
                    }
                    prop_assert!(r.max_age.is_none_or(|m| m >= 0));
                    prop_assert!(!(r.prompt.none && (r.prompt.login || r.prompt.consent)));
                    // The request is parked in the database as JSON until the person signs in.
                    let parked = serde_json::to_string(&r).unwrap();
                    let back: AuthorizationRequest = serde_json::from_str(&parked).unwrap();
                    prop_assert_eq!(back, r);
                }
                Err(e) => prop_assert!(
                    matches!(
                        e.code,
                        ErrorCode::InvalidRequest
                            | ErrorCode::UnsupportedResponseType
                            | ErrorCode::UnauthorizedClient
                            | ErrorCode::InvalidScope
                            | ErrorCode::InvalidTarget
                            | ErrorCode::RequestNotSupported
                            | ErrorCode::RequestUriNotSupported
                    ),
                    "{:?}",
                    e
                ),
            }
        }
        Ok(())
    });
}

/// RFC 7636 §4.1, §4.2, §4.6: any challenge and method is accepted only as 43 base64url
/// characters with S256; a verifier of 43–128 unreserved characters verifies against its own
/// S256 challenge, and any other verifier fails with `invalid_grant`.
#[test]
fn pkce_accepts_only_s256_and_the_right_verifier() {
    let method = prop_oneof![
        Just(None),
        Just(Some("S256".to_string())),
        hostile_text().prop_map(Some)
    ];
    check(
        "pkce::check_challenge",
        (hostile_text(), method),
        |(challenge, method)| {
            if pkce::check_challenge(&challenge, method.as_deref()).is_ok() {
                prop_assert_eq!(method.as_deref(), Some("S256"));
                prop_assert_eq!(challenge.len(), 43);
            }
            Ok(())
        },
    );
    let verifier = "[A-Za-z0-9._~-]{43,128}";
    let other = prop_oneof![hostile_text(), "[A-Za-z0-9._~-]{0,200}"];
    check("pkce::verify", (verifier, other), |(verifier, other)| {
        let challenge = sigil::crypto::b64url(&sigil::crypto::sha256(verifier.as_bytes()));
        prop_assert!(pkce::check_challenge(&challenge, Some("S256")).is_ok());
        prop_assert!(pkce::verify(&verifier, &challenge).is_ok());
        if other != verifier {
            let e = pkce::verify(&other, &challenge).unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::InvalidGrant);
        }
        Ok(())
    });
}

/// RFC 6749 §3.3: a scope parses exactly when every token is NQCHAR, and its normal form (sorted,
/// single spaces) parses back to itself.
#[test]
fn scopes_parse_exactly_when_every_token_is_nqchar() {
    let text = prop_oneof![
        hostile_text(),
        "[!#-\\[\\]-~ ]{0,60}",
        mutated("openid profile".into())
    ];
    check("Scope::parse", text, |text| {
        let nqchar = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
        let valid = text.split(' ').all(|t| t.bytes().all(nqchar));
        match Scope::parse(&text) {
            Ok(scope) => {
                prop_assert!(valid);
                let normal = scope.to_string();
                prop_assert_eq!(Scope::parse(&normal).unwrap().to_string(), normal);
            }
            Err(_) => prop_assert!(!valid),
        }
        Ok(())
    });
}
