//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1).
//! Callers run these on the blocking pool: one hash takes tens of milliseconds.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&super::random::bytes(16)).expect("16-byte salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters")
        .to_string()
}

/// Checks `password` against a stored PHC string; a malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified when the username is unknown so that the answer and
/// its timing match a wrong password. Made on first use (argon2 takes tens of milliseconds,
/// which start-up should not pay).
#[derive(Clone, Default)]
pub struct DummyHash(std::sync::Arc<std::sync::OnceLock<String>>);

impl DummyHash {
    pub fn get(&self) -> &str {
        self.0.get_or_init(|| hash(&super::random::secret_256()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let phc = super::hash("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(super::verify("correct horse", &phc));
        assert!(!super::verify("wrong", &phc));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
