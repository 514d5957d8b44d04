//! The master key: AES-256-GCM encryption at rest for private signing keys and client secrets.
//!
//! Sealed layout: 12-byte nonce ‖ ciphertext ‖ 16-byte tag. The associated data names what the
//! ciphertext belongs to (a `kid`, a `client_id`), so a sealed value moved to another row does
//! not open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Clone)]
pub struct MasterKey([u8; 32]);

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key must be 32 bytes, base64-encoded (got {0} bytes)")]
    Length(usize),
    #[error("master key is not valid base64")]
    Encoding,
    #[error("master key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a sealed value did not open: wrong master key or damaged data")]
    Open,
    #[error("encryption failed")]
    Seal,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&super::random::bytes(32));
        Self(key)
    }

    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Encoding)?;
        let key: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::Length(raw.len()))?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| MasterKeyError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_base64(&text)
    }

    /// Writes a new key to `path` with mode 0600; fails if the file already exists.
    pub fn create_file(path: &Path) -> Result<Self, MasterKeyError> {
        let key = Self::generate();
        let io = |source| MasterKeyError::Io {
            path: path.into(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        writeln!(file, "{}", key.to_base64()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(key)
    }

    /// A 256-bit key for one purpose, derived from the master key: HMAC-SHA256(master,
    /// `label`) (HKDF-Expand, RFC 5869 §2.3, with the master key as the pseudorandom key and
    /// one block). Distinct labels give independent keys; every node with the same master key
    /// derives the same one.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        super::hmac_sha256(&self.0, &[label, &[1]])
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let nonce = super::random::bytes(NONCE_LEN);
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            aad,
            plaintext,
            &mut tag,
        )
        .map_err(|_| MasterKeyError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(MasterKeyError::Open);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(nonce),
            aad,
            ciphertext,
            tag,
        )
        .map_err(|_| MasterKeyError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_binds_the_aad() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"private", b"kid-1").unwrap();
        assert_eq!(key.open(&sealed, b"kid-1").unwrap(), b"private");
        assert!(key.open(&sealed, b"kid-2").is_err());
        assert!(MasterKey::generate().open(&sealed, b"kid-1").is_err());
        assert!(key.open(&sealed[..10], b"kid-1").is_err());
    }

    #[test]
    fn base64_round_trip_and_length_check() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.0, again.0);
        assert!(matches!(
            MasterKey::from_base64("c2hvcnQ="),
            Err(MasterKeyError::Length(5))
        ));
    }
}
