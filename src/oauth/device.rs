//! The device authorization grant (RFC 8628): the grant type's name, and the user code — eight
//! characters from an alphabet without vowels or look-alikes, shown as `XXXX-XXXX`, read back
//! whatever the case and with or without the dash and spaces (RFC 8628 §6.1).

use serde::{Deserialize, Serialize};

/// RFC 8628 §3.4: the `grant_type` of the token request.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §6.1: consonants only (no words can be spelled), none that reads like a digit or
/// another letter (no vowels, no Y); 20 letters, so 8 of them are 20^8 ≈ 2^34.6 codes.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code (the dash not counted).
pub const LENGTH: usize = 8;
/// RFC 8628 §3.5: how much `slow_down` adds to the polling interval, in seconds.
pub const SLOW_DOWN_STEP: i64 = 5;

/// A new user code, as shown: `XXXX-XXXX`, uniformly random over the alphabet.
pub fn new_user_code() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut code = String::with_capacity(LENGTH + 1);
    for i in 0..LENGTH {
        if i == LENGTH / 2 {
            code.push('-');
        }
        code.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    code
}

/// A user code as typed, in its canonical form (eight upper-case letters of the alphabet), or
/// `None` when it cannot be one: case is ignored, and so are dashes and white space.
pub fn normalize(typed: &str) -> Option<String> {
    let canonical: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = canonical.len() == LENGTH && canonical.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(canonical)
}

/// The canonical code shown as `XXXX-XXXX`.
pub fn display(canonical: &str) -> String {
    let (a, b) = canonical.split_at(canonical.len().min(LENGTH / 2));
    format!("{a}-{b}")
}

/// The label of the key (derived from the master key) that user codes are hashed under.
pub const USER_CODE_KEY: &[u8] = b"sigil device user code v1";

/// How a canonical user code is stored and looked up: HMAC-SHA256 under `key` (a plain hash of
/// 35 bits could be reversed by trying every code; without the key nothing can be).
pub fn user_code_hash(key: &[u8], canonical: &str) -> String {
    crate::crypto::b64url(&crate::crypto::hmac_sha256(key, &[canonical.as_bytes()]))
}

/// What a parked authorization request for the device grant carries: the device authorization
/// it answers (by the keyed hash of its user code) and, sealed under the master key, the user
/// code to show on the consent page so the user can compare it with the device's (RFC 8628
/// §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLink {
    pub user_code_hash: String,
    pub user_code_sealed: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_letters_of_the_alphabet_shown_with_a_dash() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            let canonical = normalize(&code).unwrap();
            assert_eq!(display(&canonical), code);
        }
    }

    #[test]
    fn typed_codes_ignore_case_dashes_and_spaces() {
        assert_eq!(normalize("bcdf-ghjk").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize(" BCDF GHJK ").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize("b-c-d-f-g-h-j-k").as_deref(), Some("BCDFGHJK"));
        // Vowels, digits, too short or too long, other scripts: not a code.
        for bad in [
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "",
            "BCDF-GHJ\u{212A}",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
