//! Client credentials at the token endpoint (RFC 6749 §2.3): HTTP Basic (RFC 7617, with
//! RFC 6749 §2.3.1's form-encoding), `client_secret_post`, and JWT assertions (RFC 7521 §4.2).

use base64::Engine;
use proptest::prelude::*;

use sigil::oauth::client_assertion::ASSERTION_TYPE;
use sigil::oauth::client_auth::{extract, Presented};
use sigil::oauth::form::Params;
use sigil::oauth::ErrorCode;

use super::{check, hostile_text, mutated};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn form(pairs: &[(&str, String)]) -> Params {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(body.as_bytes(), usize::MAX).expect("distinct names")
}

/// RFC 6749 §2.3.1: id and secret are form-encoded, joined by `:`, then base64 (RFC 7617).
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        B64.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// Authorization headers a client could send: Basic with any payload, mutated Basic values
/// (other case, spaces, missing padding, the URL-safe alphabet, truncation), other schemes.
pub fn authorization() -> impl Strategy<Value = String> {
    let valid = basic("app", "s3cr3t+/=");
    prop_oneof![
        hostile_text(),
        mutated(valid.clone()),
        Just(valid.to_lowercase()),
        Just(valid.replace(' ', "   ")),
        Just(valid.trim_end_matches('=').to_string()),
        Just(valid.replace('+', "-").replace('/', "_")),
        super::bytes(200).prop_map(|b| format!("Basic {}", B64.encode(b))),
        hostile_text().prop_map(|t| format!("Basic {}", B64.encode(t))),
        Just("Bearer x".to_string()),
        Just("Basic".to_string()),
        Just("Basic ".to_string()),
    ]
}

/// Any header and any form give credentials or `invalid_client` / `invalid_request`, the only
/// errors of RFC 6749 §5.2 that client authentication has; a Basic client id is never empty.
#[test]
fn any_credentials_are_read_or_refused_with_the_rfc_error() {
    let assertion = mutated("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln".into());
    let input = (
        proptest::option::of(authorization()),
        proptest::option::of(hostile_text()),
        proptest::option::of(hostile_text()),
        proptest::option::of(prop_oneof![
            Just(ASSERTION_TYPE.to_string()),
            hostile_text()
        ]),
        proptest::option::of(assertion),
    );
    check(
        "client_auth::extract",
        input,
        |(header, id, secret, kind, jwt)| {
            let mut pairs = Vec::new();
            for (name, value) in [
                ("client_id", id),
                ("client_secret", secret),
                ("client_assertion_type", kind),
                ("client_assertion", jwt),
            ] {
                if let Some(v) = value {
                    pairs.push((name, v));
                }
            }
            let params = form(&pairs);
            match extract(header.as_deref(), &params) {
                Ok(presented) => {
                    prop_assert!(!presented.client_id().is_empty());
                    if let Presented::Jwt { .. } = presented {
                        prop_assert_eq!(params.get("client_assertion_type"), Some(ASSERTION_TYPE));
                    }
                }
                Err(e) => prop_assert!(
                    matches!(e.code, ErrorCode::InvalidClient | ErrorCode::InvalidRequest),
                    "{:?}",
                    e
                ),
            }
            Ok(())
        },
    );
}

/// RFC 6749 §2.3.1 / RFC 7617: whatever the client id (not empty) and secret — NUL, `:`, `%`,
/// `+`, `&`, any Unicode — Sigil reads back exactly what the client encoded.
#[test]
fn basic_credentials_say_what_was_encoded() {
    let pair = (
        prop_oneof![hostile_text(), any::<String>()].prop_filter("an id", |s| !s.is_empty()),
        prop_oneof![
            hostile_text(),
            any::<String>(),
            Just("a&b=c+d%20:e".to_string())
        ],
    );
    check(
        "client_auth::extract (Basic round trip)",
        pair,
        |(id, secret)| {
            let presented = extract(Some(&basic(&id, &secret)), &Params::default());
            match presented {
                Ok(Presented::Basic {
                    client_id,
                    secret: got,
                }) => {
                    prop_assert_eq!(&client_id, &id);
                    prop_assert_eq!(got.expose(), secret.as_str());
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            Ok(())
        },
    );
}
