//! Secrets from the operating system's CSPRNG (through `rand`'s thread generator, which is
//! seeded from and periodically reseeded by the OS).

use rand::RngCore;

/// `n` random bytes.
pub fn bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A 256-bit secret as base64url (43 characters): client secrets, codes, tokens, session ids.
pub fn secret_256() -> String {
    super::b64url(&bytes(32))
}

/// A 128-bit identifier as base64url (22 characters): token ids, client ids.
pub fn id_128() -> String {
    super::b64url(&bytes(16))
}
