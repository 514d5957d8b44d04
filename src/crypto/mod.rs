//! Keys, signatures, encryption at rest, password hashing and randomness.

pub mod keyring;
pub mod keys;
pub mod master_key;
pub mod password;
pub mod random;
pub mod rewrap;
pub mod rotation;
pub mod schedule;
pub mod totp;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// HMAC-SHA256 (RFC 2104) of `parts`, in order, under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(key).expect("an HMAC key");
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("HMAC-SHA256");
    for part in parts {
        signer.update(part).expect("HMAC update");
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&signer.sign_to_vec().expect("HMAC-SHA256"));
    out
}
