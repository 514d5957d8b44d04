//! DPoP (RFC 9449): proofs of possession of a key, sent in the `DPoP` header. A proof is a
//! JWT its client signs with a key whose public half rides in the proof's own header; Sigil
//! checks it here (§4.3, one check a function, in the RFC's order), issues stateless nonces
//! (§8, §9) and remembers each proof's `jti` while the proof could still be accepted (§11.1).
//! Nothing here knows of HTTP or storage: the endpoints hand in plain values.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsVerifier, ES256, PS256, RS256};
use serde_json::{Map, Value};
use url::Url;

use crate::crypto::{b64url, hmac_sha256, keys, sha256};

/// The header that carries a proof, and the one that carries a nonce (RFC 9449 §4.1, §8).
pub const HEADER: &str = "dpop";
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The authorization scheme of a DPoP-bound access token (RFC 9449 §7.1).
pub const SCHEME: &str = "DPoP";
/// The token type of a bound token (RFC 9449 §5).
pub const TOKEN_TYPE: &str = "DPoP";

/// The signature algorithms a proof may use (`dpop_signing_alg_values_supported`, RFC 9449
/// §5.1): asymmetric only — never `none`, never an HMAC (§4.3 point 5).
pub const ALGS: [&str; 4] = ["ES256", "PS256", "RS256", "EdDSA"];

/// The largest proof read: a proof with an RSA-4096 key is about 1.5 KiB.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// How far a proof's `iat` may be from Sigil's clock, either way (RFC 9449 §11.1).
pub const IAT_WINDOW_SECS: i64 = 60;

/// How long one nonce bucket lasts; a nonce is accepted in its bucket and the next.
pub const NONCE_BUCKET_SECS: i64 = 60;

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_dpop_proof` (RFC 9449 §5, §7.1), with what was wrong.
    Invalid(&'static str),
    /// `use_dpop_nonce` (RFC 9449 §8, §9): no nonce, or one no longer current.
    Nonce,
}

/// A proof that passed every stateless check; its `jti` is yet to be spent (see [`Jtis`]).
#[derive(Debug, Clone)]
pub struct Proof {
    /// RFC 7638 thumbprint (SHA-256, base64url) of the proof's key: the `cnf.jkt` of what it
    /// binds (RFC 9449 §6.1).
    pub jkt: String,
    /// SHA-256 of the key's thumbprint and the `jti`: the proof's identity in the replay
    /// store, so one client cannot spend another key's ids.
    pub jti_hash: [u8; 32],
    /// After this the proof cannot be accepted: its `iat` plus the window (and a second).
    pub expires_at: i64,
}

/// What a proof must match: the request it came with.
pub struct Expected<'a> {
    /// The HTTP method (`htm`).
    pub method: &'a str,
    /// The endpoint's URL under the issuer (`htu`).
    pub url: &'a str,
    /// At a protected resource, the access token presented with it (`ath`, RFC 9449 §4.3
    /// point 12).
    pub access_token: Option<&'a str>,
    pub now: i64,
}

/// RFC 9449 §4.3: every check of a proof but the `jti` replay check, in the RFC's order. The
/// nonce is checked last, so that a client is asked for one only with an otherwise good proof.
pub fn verify(proof: &str, expected: &Expected<'_>, dpop: &Dpop) -> Result<Proof, Refusal> {
    use Refusal::Invalid;
    // Point 1 (one header, checked by the caller) and the size every input is held to.
    if proof.len() > MAX_PROOF_BYTES {
        return Err(Invalid("the DPoP proof is too large"));
    }
    // Point 2: a well-formed compact JWS.
    let mut parts = proof.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid("the DPoP proof is not a compact JWS"));
    };
    let header = json_object(h64).ok_or(Invalid("the DPoP proof's header is not JSON"))?;
    let claims = json_object(p64).ok_or(Invalid("the DPoP proof's payload is not JSON"))?;
    let signature = decode(s64).ok_or(Invalid("the DPoP proof's signature is not base64url"))?;
    // Point 4: `typ` is exactly dpop+jwt.
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    // Nothing Sigil would have to understand (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(Invalid("the DPoP proof has critical header parameters"));
    }
    // Point 5: an asymmetric algorithm Sigil supports.
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGS.contains(&alg) {
        return Err(Invalid("the DPoP proof's alg is not supported"));
    }
    // Points 6 and 7: the signature verifies with the header's `jwk`, a public key.
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(Invalid("the DPoP proof has no jwk header"))?;
    let verifier = dpop.verifiers.get(alg, jwk)?;
    let signing_input = &proof[..h64.len() + 1 + p64.len()];
    if verifier
        .verify(signing_input.as_bytes(), &signature)
        .is_err()
    {
        return Err(Invalid("the DPoP proof's signature does not verify"));
    }
    // Point 3: the claims every proof has.
    let text = |name| claims.get(name).and_then(Value::as_str);
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (
        text("jti"),
        text("htm"),
        text("htu"),
        claims.get("iat").and_then(Value::as_i64),
    ) else {
        return Err(Invalid("the DPoP proof lacks jti, htm, htu or iat"));
    };
    if jti.is_empty() || jti.len() > 256 {
        return Err(Invalid("the DPoP proof's jti is empty or too long"));
    }
    // Point 8: the method of this request.
    if htm != expected.method {
        return Err(Invalid("the DPoP proof's htm is not this request's method"));
    }
    // Point 9: this endpoint's URL, without query and fragment, after normalisation.
    if !same_uri(htu, expected.url) {
        return Err(Invalid("the DPoP proof's htu is not this endpoint"));
    }
    // Point 12: at a resource, bound to the access token presented with it.
    if let Some(token) = expected.access_token {
        if text("ath") != Some(ath(token).as_str()) {
            return Err(Invalid(
                "the DPoP proof's ath does not match the access token",
            ));
        }
    }
    // Point 11 (§11.1): created within the window around now.
    if (iat - expected.now).abs() > IAT_WINDOW_SECS {
        return Err(Invalid(
            "the DPoP proof's iat is outside the accepted window",
        ));
    }
    // Point 10 (§8, §9): a nonce Sigil issued, still current.
    if !text("nonce").is_some_and(|n| dpop.nonces.accepts(n, expected.now)) {
        return Err(Refusal::Nonce);
    }
    let jkt = keys::thumbprint(jwk);
    let jti_hash = sha256(format!("{jkt}.{jti}").as_bytes());
    Ok(Proof {
        jkt,
        jti_hash,
        expires_at: iat + IAT_WINDOW_SECS + 1,
    })
}

/// RFC 9449 §4.2 `ath`: base64url SHA-256 of the access token's ASCII.
pub fn ath(access_token: &str) -> String {
    b64url(&sha256(access_token.as_bytes()))
}

fn decode(part: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&decode(part)?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The verifier of `alg` for the proof's key. RFC 9449 §4.3 point 7: the key must not be a
/// private one; josekit then refuses a key whose type, curve, `use`, `key_ops` or `alg`
/// contradicts the algorithm, and RSA moduli under 2048 bits.
fn verifier(alg: &str, jwk: &Map<String, Value>) -> Result<Box<dyn JwsVerifier>, Refusal> {
    const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(Refusal::Invalid("the DPoP proof's jwk holds a private key"));
    }
    let unusable = Refusal::Invalid("the DPoP proof's jwk cannot verify its alg");
    let key = Jwk::from_map(jwk.clone()).map_err(|_| unusable)?;
    let verifier: Box<dyn JwsVerifier> = match alg {
        "ES256" => Box::new(ES256.verifier_from_jwk(&key).map_err(|_| unusable)?),
        "PS256" => Box::new(PS256.verifier_from_jwk(&key).map_err(|_| unusable)?),
        "RS256" => Box::new(RS256.verifier_from_jwk(&key).map_err(|_| unusable)?),
        "EdDSA" => Box::new(EdDSA.verifier_from_jwk(&key).map_err(|_| unusable)?),
        _ => return Err(unusable),
    };
    Ok(verifier)
}

/// RFC 9449 §4.3 point 9: `htu` and the endpoint's URL name the same resource, compared
/// after syntax- and scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3: case of scheme and
/// host, default port, dot segments, percent-encoding) and without query or fragment.
fn same_uri(htu: &str, endpoint: &str) -> bool {
    let strip = |text: &str| {
        let mut url = Url::parse(text).ok()?;
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    };
    match (strip(htu), strip(endpoint)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Server nonces (RFC 9449 §8, §9), stateless: HMAC-SHA256 of the current minute under a key
/// derived from the master key, so every node issues and accepts the same ones. A nonce is
/// accepted in the minute it was issued and the next. The two nonces of the current minute are
/// computed once a minute and kept: an HMAC through OpenSSL 3 costs microseconds of key set-up,
/// and every DPoP request needs up to three.
pub struct Nonces {
    key: [u8; 32],
    /// The bucket, its nonce and the previous bucket's.
    minute: Mutex<Option<(i64, [String; 2])>>,
}

impl Nonces {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            minute: Mutex::new(None),
        }
    }

    fn of_bucket(&self, bucket: i64) -> String {
        b64url(&hmac_sha256(
            &self.key,
            &[b"dpop-nonce", &bucket.to_be_bytes()],
        ))
    }

    /// Runs `f` on the nonces accepted at `now`: the current one first, then the previous one.
    fn with_minute<T>(&self, now: i64, f: impl FnOnce(&[String; 2]) -> T) -> T {
        let bucket = now.div_euclid(NONCE_BUCKET_SECS);
        let mut minute = self.minute.lock().unwrap_or_else(|e| e.into_inner());
        match &*minute {
            Some((b, nonces)) if *b == bucket => f(nonces),
            _ => {
                let nonces = [self.of_bucket(bucket), self.of_bucket(bucket - 1)];
                let answer = f(&nonces);
                *minute = Some((bucket, nonces));
                answer
            }
        }
    }

    /// The nonce to send now (`DPoP-Nonce`).
    pub fn current(&self, now: i64) -> String {
        self.with_minute(now, |nonces| nonces[0].clone())
    }

    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        use subtle::ConstantTimeEq;
        self.with_minute(now, |nonces| {
            nonces
                .iter()
                .any(|n| n.as_bytes().ct_eq(nonce.as_bytes()).into())
        })
    }
}

/// What the replay store said of a proof's `jti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never seen: the proof may be accepted (and now is remembered).
    First,
    /// Seen within the window: a replay (RFC 9449 §11.1).
    Replay,
    /// The store is full of live ids: refuse rather than forget one (503).
    Full,
}

/// The `jti`s of accepted proofs on this node, each until its proof's window has passed,
/// bounded by `capacity` (RFC 9449 §11.1). On SQLite this is the replay store; on PostgreSQL
/// it is the first check and the bound on what this node writes to the shared one.
pub struct Jtis {
    capacity: usize,
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    /// First 16 bytes of each `jti_hash`.
    ids: HashSet<[u8; 16]>,
    /// The same ids by when they may be forgotten, so expiry costs only what expires.
    by_expiry: BTreeMap<i64, Vec<[u8; 16]>>,
}

impl Jtis {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Remembered::default()),
        }
    }

    /// Records `proof`'s id unless it is already there, forgetting what expired first.
    pub fn first_use(&self, proof: &Proof, now: i64) -> Seen {
        let mut id = [0u8; 16];
        id.copy_from_slice(&proof.jti_hash[..16]);
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = r.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for gone in entry.remove() {
                r.ids.remove(&gone);
            }
        }
        if r.ids.contains(&id) {
            return Seen::Replay;
        }
        if r.ids.len() >= self.capacity {
            return Seen::Full;
        }
        r.ids.insert(id);
        r.by_expiry.entry(proof.expires_at).or_default().push(id);
        Seen::First
    }

    /// Forgets `proof`'s id again (the shared store found it was a replay after all, or could
    /// not be written), so this node's count stays what the shared store holds.
    pub fn forget(&self, proof: &Proof) {
        let mut id = [0u8; 16];
        id.copy_from_slice(&proof.jti_hash[..16]);
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.ids.remove(&id);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|r| r.ids.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many proof keys' verifiers a node keeps ready.
const VERIFIERS: usize = 4096;

/// Verifiers built for proof keys, by algorithm and key. Building one decodes the key, which
/// under OpenSSL 3 costs several times the signature check itself (measured: DPoP token
/// requests ran at a tenth of plain ones, most of the time in OpenSSL's decoder locks), while a
/// client signs all its proofs with one key. Keyed by the whole `jwk` member, so a key with
/// other `use`, `key_ops` or `alg` members is checked afresh; a full cache starts over, so a
/// flood of new keys costs what it cost without the cache and no memory.
#[derive(Default)]
pub struct Verifiers {
    ready: Mutex<HashMap<String, Arc<dyn JwsVerifier>>>,
}

impl Verifiers {
    fn get(&self, alg: &str, jwk: &Map<String, Value>) -> Result<Arc<dyn JwsVerifier>, Refusal> {
        let id = format!("{alg} {}", Value::Object(jwk.clone()));
        if let Some(ready) = self.ready.lock().unwrap().get(&id) {
            return Ok(ready.clone());
        }
        let built: Arc<dyn JwsVerifier> = verifier(alg, jwk)?.into();
        let mut ready = self.ready.lock().unwrap();
        if ready.len() >= VERIFIERS {
            ready.clear();
        }
        ready.insert(id, built.clone());
        Ok(built)
    }
}

/// Everything DPoP needs at run time: the nonce key, this node's replay store and its ready
/// verifiers.
pub struct Dpop {
    pub nonces: Nonces,
    pub jtis: Jtis,
    pub verifiers: Verifiers,
}

impl Dpop {
    pub fn new(nonce_key: [u8; 32], capacity: usize) -> Self {
        Self {
            nonces: Nonces::new(nonce_key),
            jtis: Jtis::new(capacity),
            verifiers: Verifiers::default(),
        }
    }
}

/// The `cnf` claim of a token bound to `jkt` (RFC 9449 §6.1).
pub fn cnf(jkt: &str) -> Value {
    serde_json::json!({ "jkt": jkt })
}

/// The `jkt` a token's claims bind it to, if any.
pub fn bound_jkt(claims: &Map<String, Value>) -> Option<&str> {
    claims.get("cnf")?.get("jkt")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(expires_at: i64, n: u8) -> Proof {
        Proof {
            jkt: "k".into(),
            jti_hash: [n; 32],
            expires_at,
        }
    }

    #[test]
    fn a_jti_is_accepted_once_until_it_expires_and_a_full_store_refuses() {
        let jtis = Jtis::new(2);
        assert_eq!(jtis.first_use(&proof(100, 1), 50), Seen::First);
        assert_eq!(jtis.first_use(&proof(100, 1), 60), Seen::Replay);
        assert_eq!(jtis.first_use(&proof(200, 2), 60), Seen::First);
        assert_eq!(jtis.first_use(&proof(200, 3), 60), Seen::Full);
        // At 101 the first has expired and gone; its place is free.
        assert_eq!(jtis.first_use(&proof(200, 3), 101), Seen::First);
        assert_eq!(jtis.len(), 2);
    }

    #[test]
    fn a_ready_verifier_serves_only_the_same_jwk_and_alg() {
        let pair = ES256.generate_key_pair().unwrap();
        let jwk = pair.to_jwk_public_key();
        let public: Map<String, Value> = jwk.as_ref().clone();
        let verifiers = Verifiers::default();
        assert!(verifiers.get("ES256", &public).is_ok());
        assert!(verifiers.get("ES256", &public).is_ok());
        assert_eq!(verifiers.ready.lock().unwrap().len(), 1);
        // The same key under another algorithm, or naming another one, is checked afresh.
        assert!(verifiers.get("RS256", &public).is_err());
        let mut other_alg = public.clone();
        other_alg.insert("alg".into(), "RS256".into());
        assert!(verifiers.get("ES256", &other_alg).is_err());
        // Nor does a private key ride on its public half's verifier.
        let private: Map<String, Value> = pair.to_jwk_private_key().as_ref().clone();
        assert!(verifiers.get("ES256", &private).is_err());
    }

    #[test]
    fn nonces_are_the_same_after_the_minute_is_cached_and_change_with_it() {
        let nonces = Nonces::new([7; 32]);
        let first = nonces.current(600);
        assert_eq!(nonces.current(659), first);
        assert_eq!(
            Nonces::new([7; 32]).current(659),
            first,
            "another node agrees"
        );
        let next = nonces.current(660);
        assert_ne!(next, first);
        assert!(nonces.accepts(&first, 660));
        assert!(!nonces.accepts(&first, 720));
        assert!(
            !Nonces::new([8; 32]).accepts(&next, 660),
            "another key's nonce"
        );
    }

    #[test]
    fn nonces_live_for_their_minute_and_the_next() {
        let nonces = Nonces::new([7; 32]);
        let n = nonces.current(600);
        assert!(nonces.accepts(&n, 600));
        assert!(nonces.accepts(&n, 719));
        assert!(!nonces.accepts(&n, 720));
        assert!(!nonces.accepts(&n, 599));
        assert!(!Nonces::new([8; 32]).accepts(&n, 600));
    }

    #[test]
    fn htu_is_compared_after_normalisation_without_query_or_fragment() {
        let e = "https://id.example/token";
        for same in [
            "https://id.example/token",
            "HTTPS://ID.example:443/token?x=1#f",
            "https://id.example/a/../token",
        ] {
            assert!(same_uri(same, e), "{same}");
        }
        for other in [
            "http://id.example/token",
            "https://id.example/token/",
            "https://id.example:8443/token",
            "https://other.example/token",
            "/token",
        ] {
            assert!(!same_uri(other, e), "{other}");
        }
    }
}
