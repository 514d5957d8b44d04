//! DPoP (RFC 9449) over real HTTP: proofs built here with josekit's signers and hand-made
//! headers (not Sigil's code), sent to /token and UserInfo; each check of §4.3, the nonce flow
//! (§8, §9), the replay check (§11.1) with requests released at once, bound tokens (§5, §6)
//! and refresh tokens of public clients, the resource side (§7) and introspection.

mod proofs;
mod resources;
mod tokens;

use base64::Engine;
use josekit::jws::{JwsSigner, ES256, RS256};
use serde_json::{json, Map, Value};

use crate::flow::{Browser, VERIFIER};
use crate::helpers::{form_encode, TestApp};

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A client's DPoP key pair.
pub struct DpopKey {
    alg: &'static str,
    signer: Box<dyn JwsSigner>,
    public: Map<String, Value>,
}

impl DpopKey {
    pub fn es256() -> Self {
        let pair = ES256.generate_key_pair().unwrap();
        Self {
            alg: "ES256",
            signer: Box::new(ES256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
            public: pair.to_jwk_public_key().into(),
        }
    }

    fn rs256() -> Self {
        let pair = RS256.generate_key_pair(2048).unwrap();
        Self {
            alg: "RS256",
            signer: Box::new(RS256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
            public: pair.to_jwk_public_key().into(),
        }
    }

    fn eddsa() -> Self {
        let pair = josekit::jws::EdDSA
            .generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519)
            .unwrap();
        Self {
            alg: "EdDSA",
            signer: Box::new(
                josekit::jws::EdDSA
                    .signer_from_jwk(&pair.to_jwk_key_pair())
                    .unwrap(),
            ),
            public: pair.to_jwk_public_key().into(),
        }
    }

    /// RFC 7638 thumbprint, computed here: SHA-256 of the required members in lexical order.
    pub fn jkt(&self) -> String {
        let members: &[&str] = match self.public["kty"].as_str().unwrap() {
            "EC" => &["crv", "kty", "x", "y"],
            "RSA" => &["e", "kty", "n"],
            _ => &["crv", "kty", "x"],
        };
        let fields: Vec<String> = members
            .iter()
            .map(|m| format!("\"{m}\":\"{}\"", self.public[*m].as_str().unwrap()))
            .collect();
        b64(&openssl::sha::sha256(
            format!("{{{}}}", fields.join(",")).as_bytes(),
        ))
    }

    /// The usual header: typ, alg and the public key.
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public})
    }

    /// A compact JWS of `header` and `claims`, signed with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&signature))
    }

    /// A good proof for `htm htu` at `now`, with the nonce and (at a resource) the token.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        now: i64,
        nonce: Option<&str>,
        token: Option<&str>,
    ) -> String {
        self.sign(&self.header(), &claims(htm, htu, now, nonce, token))
    }
}

fn claims(htm: &str, htu: &str, now: i64, nonce: Option<&str>, token: Option<&str>) -> Value {
    let mut c = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": htm,
        "htu": htu,
        "iat": now,
    });
    if let Some(n) = nonce {
        c["nonce"] = n.into();
    }
    if let Some(t) = token {
        c["ath"] = b64(&openssl::sha::sha256(t.as_bytes())).into();
    }
    c
}

fn now(app: &TestApp) -> i64 {
    app.state.clock.now()
}

/// POST /token with HTTP Basic (when a secret is given, else `client_id` in the form) and
/// each of `proofs` as a `DPoP` header.
async fn token(
    app: &TestApp,
    client: (&str, &str),
    form: &[(&str, &str)],
    proofs: &[&str],
) -> reqwest::Response {
    let url = app.endpoint("token_endpoint").await;
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut request = app.http.post(url);
    if client.1.is_empty() {
        form.push(("client_id", client.0));
    } else {
        request = request.basic_auth(form_encode(client.0), Some(form_encode(client.1)));
    }
    for p in proofs {
        request = request.header("DPoP", *p);
    }
    request.form(&form).send().await.unwrap()
}

const CC: &[(&str, &str)] = &[("grant_type", "client_credentials")];

fn nonce_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The nonce the token endpoint asks for (RFC 9449 §8): a proof without one is refused with
/// `use_dpop_nonce` and the nonce to use.
async fn token_nonce(app: &TestApp, client: (&str, &str), key: &DpopKey) -> String {
    let htu = app.endpoint("token_endpoint").await;
    let r = token(
        app,
        client,
        CC,
        &[&key.proof("POST", &htu, now(app), None, None)],
    )
    .await;
    assert_eq!(r.status(), 400);
    let n = nonce_of(&r);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");
    n
}

/// A client_credentials token bound to `key`, through the nonce round trip.
async fn cc_token(app: &TestApp, client: (&str, &str), key: &DpopKey) -> Value {
    let nonce = token_nonce(app, client, key).await;
    let htu = app.endpoint("token_endpoint").await;
    let proof = key.proof("POST", &htu, now(app), Some(&nonce), None);
    let r = token(app, client, CC, &[&proof]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or("").to_string())
}

/// A signed-in user's code at `client_id`, with offline access.
async fn code(app: &TestApp, client_id: &str) -> String {
    app.code_for(
        &Browser::new(),
        client_id,
        &[("scope", "openid email offline_access")],
    )
    .await
}

fn code_form(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", crate::flow::REDIRECT),
        ("code_verifier", VERIFIER),
    ]
}

/// Tokens of a code redeemed with a proof of `key` (through the nonce round trip).
async fn code_tokens(app: &TestApp, client: (&str, &str), key: &DpopKey) -> Value {
    let c = code(app, client.0).await;
    let htu = app.endpoint("token_endpoint").await;
    let first = token(
        app,
        client,
        &code_form(&c),
        &[&key.proof("POST", &htu, now(app), None, None)],
    )
    .await;
    let nonce = nonce_of(&first);
    assert_eq!(error_of(first).await, (400, "use_dpop_nonce".into()));
    let proof = key.proof("POST", &htu, now(app), Some(&nonce), None);
    let r = token(app, client, &code_form(&c), &[&proof]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh(
    app: &TestApp,
    client: (&str, &str),
    refresh_token: &str,
    key: Option<&DpopKey>,
) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let Some(key) = key else {
        return token(app, client, &form, &[]).await;
    };
    let htu = app.endpoint("token_endpoint").await;
    let r = token(
        app,
        client,
        &form,
        &[&key.proof("POST", &htu, now(app), None, None)],
    )
    .await;
    let nonce = nonce_of(&r);
    assert_eq!(error_of(r).await, (400, "use_dpop_nonce".into()));
    let proof = key.proof("POST", &htu, now(app), Some(&nonce), None);
    token(app, client, &form, &[&proof]).await
}
