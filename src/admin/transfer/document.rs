//! The export document, version 1: the rows of `storage::transfer::Snapshot` as JSON, nested
//! by owner (a user's second factors under the user, a group's members under the group).
//! Times are Unix seconds as stored; sealed values and hashes are carried exactly as stored
//! (sealed ones base64url). Unknown fields are refused, so a document that was edited by hand
//! or cut short fails before anything is written.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const VERSION: u64 = 1;

/// Said in every document: what it needs where it is imported.
pub const NOTE: &str = "Secrets here stay sealed under the master key of the database they \
were exported from (password and recovery-code hashes stay hashes): import with the same \
master key configured. Keep this file as safe as the database itself.";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub sigil_export: u64,
    pub exported_at: String,
    pub sigil_version: String,
    #[serde(default)]
    pub note: String,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub clients: Vec<Client>,
    pub resource_servers: Vec<ResourceServer>,
    pub consents: Vec<Consent>,
    pub revoked_tokens: Vec<RevokedToken>,
    /// Present only in an export made with `--with-keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_keys: Option<Vec<SigningKey>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub claims: Map<String, Value>,
    /// argon2id PHC string, as stored.
    pub password_hash: String,
    pub admin: bool,
    pub disabled: bool,
    pub tokens_valid_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub totp: Option<Totp>,
    pub recovery_codes: Vec<RecoveryCode>,
    pub passkeys: Vec<Passkey>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totp {
    /// Sealed under the master key, bound to the user's id.
    #[serde(with = "sealed")]
    pub secret_sealed: Vec<u8>,
    pub confirmed_at: Option<i64>,
    pub last_step: i64,
    pub created_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCode {
    /// SHA-256 of the code, base64url, as stored.
    pub code_hash: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passkey {
    pub credential_id: String,
    pub name: String,
    /// The WebAuthn credential (public key, counter, flags) as stored.
    pub credential: Value,
    pub backup_eligible: bool,
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub members: Vec<Member>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub user_id: String,
    pub added_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub client_id: String,
    /// Sealed under the master key, bound to the client id; absent for public clients.
    #[serde(with = "sealed_option")]
    pub secret_sealed: Option<Vec<u8>>,
    /// RFC 7591 metadata as stored.
    pub metadata: Map<String, Value>,
    pub created_at: i64,
    /// Set for a client registered at `/register` (RFC 7592 management stays possible).
    pub registration: Option<Registration>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// SHA-256 of the registration access token, as stored.
    pub access_token_hash: String,
    pub client_address: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceServer {
    pub resource: String,
    pub metadata: Map<String, Value>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedToken {
    pub jti: String,
    pub expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub public_jwk: Map<String, Value>,
    /// The private key, sealed under the master key, bound to the kid.
    #[serde(with = "sealed")]
    pub private_sealed: Vec<u8>,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub retire_after: Option<i64>,
    pub retired_at: Option<i64>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

mod sealed {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::Engine::encode(&super::b64(), bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::Engine::decode(&super::b64(), text.as_bytes())
            .map_err(|_| serde::de::Error::custom("a sealed value is not base64url"))
    }
}

mod sealed_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::sealed::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::Engine::decode(&super::b64(), text.as_bytes())
                .map(Some)
                .map_err(|_| serde::de::Error::custom("a sealed value is not base64url")),
        }
    }
}
