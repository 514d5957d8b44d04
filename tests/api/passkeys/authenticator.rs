//! A software authenticator for the passkey tests, independent of Sigil's code and of
//! webauthn-rs: a P-256 key from openssl, `none` attestation, CBOR and authenticator data built
//! by hand (WebAuthn L2 §6.1, §6.5), ES256 signatures over authData ‖ SHA-256(clientDataJSON).

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// The CBOR (RFC 8949) this authenticator writes.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

fn cbor_head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
    }
}

fn cbor(value: &Cbor) -> Vec<u8> {
    match value {
        Cbor::Int(i) if *i >= 0 => cbor_head(0, *i as u64),
        Cbor::Int(i) => cbor_head(1, (-1 - *i) as u64),
        Cbor::Bytes(b) => [cbor_head(2, b.len() as u64), b.clone()].concat(),
        Cbor::Text(t) => [cbor_head(3, t.len() as u64), t.as_bytes().to_vec()].concat(),
        Cbor::Map(entries) => {
            let mut out = cbor_head(5, entries.len() as u64);
            for (k, v) in entries {
                out.extend(cbor(k));
                out.extend(cbor(v));
            }
            out
        }
    }
}

/// What an answer gets wrong on purpose.
#[derive(Clone, Default)]
pub struct Quirks {
    /// clientDataJSON's origin instead of the app's.
    pub origin: Option<String>,
    /// The RP ID whose hash starts authData, instead of the one asked for.
    pub rp_id: Option<String>,
    /// Leave the UV flag out.
    pub no_user_verification: bool,
    /// This signature counter instead of the next one.
    pub counter: Option<u32>,
}

/// A passkey on a software authenticator.
pub struct SoftKey {
    key: PKey<Private>,
    x: Vec<u8>,
    y: Vec<u8>,
    credential_id: Vec<u8>,
    /// The user handle it was created for (returned when it answers).
    user_handle: Vec<u8>,
    pub counter: u32,
    /// Backup eligible: a synced passkey (amr `swk`).
    synced: bool,
}

impl SoftKey {
    pub fn new(synced: bool) -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let mut credential_id = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut credential_id).unwrap();
        Self {
            x: x.to_vec_padded(32).unwrap(),
            y: y.to_vec_padded(32).unwrap(),
            key: PKey::from_ec_key(ec).unwrap(),
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            synced,
        }
    }

    pub fn id(&self) -> String {
        b64(&self.credential_id)
    }

    /// RFC 9053 §7.1.1 / WebAuthn L2 §6.5.1.1: the EC2 P-256 public key for ES256.
    fn cose_key(&self) -> Vec<u8> {
        cbor(&Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(self.x.clone())),
            (Cbor::Int(-3), Cbor::Bytes(self.y.clone())),
        ]))
    }

    /// WebAuthn L2 §6.1: rpIdHash ‖ flags ‖ signCount (‖ attested credential data).
    fn auth_data(&self, rp_id: &str, user_verified: bool, attested: bool, counter: u32) -> Vec<u8> {
        let mut flags = 0x01; // UP
        if user_verified {
            flags |= 0x04;
        }
        if self.synced {
            flags |= 0x08; // BE
        }
        let mut data = openssl::sha::sha256(rp_id.as_bytes()).to_vec();
        if attested {
            flags |= 0x40; // AT
        }
        data.push(flags);
        data.extend(counter.to_be_bytes());
        if attested {
            data.extend([0u8; 16]); // AAGUID
            data.extend((self.credential_id.len() as u16).to_be_bytes());
            data.extend(&self.credential_id);
            data.extend(self.cose_key());
        }
        data
    }

    fn client_data(kind: &str, challenge: &Value, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create()` for `options` (`{"publicKey": …}`), at `origin`.
    pub fn create(&mut self, origin: &str, options: &Value) -> Value {
        let o = &options["publicKey"];
        self.user_handle = unb64(o["user"]["id"].as_str().unwrap());
        let client_data = Self::client_data("webauthn.create", &o["challenge"], origin);
        let auth_data = self.auth_data(o["rp"]["id"].as_str().unwrap(), true, true, self.counter);
        let attestation = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ]));
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
    }

    /// `navigator.credentials.get()` for `options`, at `origin`, with `quirks`.
    pub fn get(&mut self, origin: &str, options: &Value, quirks: &Quirks) -> Value {
        let o = &options["publicKey"];
        self.counter = quirks.counter.unwrap_or(self.counter + 1);
        let origin = quirks.origin.as_deref().unwrap_or(origin);
        let rp_id = quirks
            .rp_id
            .clone()
            .unwrap_or_else(|| o["rpId"].as_str().unwrap().to_string());
        let client_data = Self::client_data("webauthn.get", &o["challenge"], origin);
        let auth_data = self.auth_data(&rp_id, !quirks.no_user_verification, false, self.counter);
        let signed = [
            auth_data.clone(),
            openssl::sha::sha256(&client_data).to_vec(),
        ]
        .concat();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        let signature = signer.sign_oneshot_to_vec(&signed).unwrap();
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
            "extensions": {},
        })
    }
}
