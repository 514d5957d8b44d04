//! PKCE (RFC 7636), S256 only.

use super::{ErrorCode, OAuthError};

/// RFC 7636 §4.2: a challenge is base64url(SHA-256(verifier)), 43 characters.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    // §4.3: without a method the challenge is `plain`, which Sigil refuses (RFC 9700 §2.1.1).
    match method {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256 (plain is not accepted)",
            ))
        }
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "code_challenge_method {other:?} is not supported"
            )))
        }
    }
    if challenge.len() != 43 || !challenge.bytes().all(is_b64url) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43 base64url characters",
        ));
    }
    Ok(())
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 7636 §4.1 / §4.6: the verifier is 43–128 unreserved characters and hashes to the
/// challenge. Every failure is `invalid_grant`.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), OAuthError> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier must be 43–128 unreserved characters",
        ));
    }
    let computed = crate::crypto::b64url(&crate::crypto::sha256(verifier.as_bytes()));
    let same: bool =
        subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into();
    if !same {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        check_challenge(challenge, Some("S256")).unwrap();
        verify(verifier, challenge).unwrap();
        assert!(verify(&verifier.replace('d', "e"), challenge).is_err());
        assert!(check_challenge(challenge, Some("plain")).is_err());
        assert!(check_challenge(challenge, None).is_err());
        assert!(verify(&"a".repeat(42), challenge).is_err());
        assert!(verify(&"a".repeat(129), challenge).is_err());
    }
}
