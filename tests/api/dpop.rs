//! DPoP (RFC 9449) over real HTTP: proofs built here with josekit's signers and hand-made
//! headers (not Sigil's code), sent to /token and UserInfo; each check of §4.3, the nonce flow
//! (§8, §9), the replay check (§11.1) with requests released at once, bound tokens (§5, §6)
//! and refresh tokens of public clients, the resource side (§7) and introspection.

use std::collections::BTreeMap;

use base64::Engine;
use josekit::jws::{JwsSigner, ES256, HS256, RS256};
use serde_json::{json, Map, Value};

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{form_encode, jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};
use crate::instant;

both_backends!(
    rfc9449_4_3_a_proof_failing_any_check_is_invalid_dpop_proof,
    rfc9449_4_3_proofs_with_rsa_and_eddsa_keys_are_accepted,
    rfc9449_8_the_token_endpoint_asks_for_a_nonce_and_accepts_it_for_two_minutes,
    rfc9449_11_1_a_proof_is_accepted_once_even_when_sent_30_times_at_once,
    rfc9449_11_1_a_full_store_of_proof_ids_refuses_with_503,
    rfc9449_11_1_proof_ids_are_forgotten_after_their_window,
    rfc9449_5_tokens_are_bound_to_the_proof_key_and_introspection_shows_it,
    rfc9449_5_a_public_client_refresh_token_is_bound_to_its_key,
    rfc9449_5_a_confidential_client_refresh_token_is_not_bound,
    rfc9449_5_2_a_dpop_bound_access_tokens_client_must_send_a_proof,
    rfc9449_7_1_userinfo_takes_a_bound_token_only_with_a_proof_of_its_key,
    rfc9449_7_2_a_bound_token_is_no_bearer_token_anywhere,
    rfc9449_5_1_discovery_lists_the_proof_algorithms,
);

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

async fn rfc9449_4_3_a_proof_failing_any_check_is_invalid_dpop_proof(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let client = (id.as_str(), secret.as_str());
    let key = DpopKey::es256();
    let nonce = token_nonce(&app, client, &key).await;
    let htu = app.endpoint("token_endpoint").await;
    let t = now(&app);
    let good = || claims("POST", &htu, t, Some(&nonce), None);
    let with = |name: &str, v: Value| {
        let mut c = good();
        c[name] = v;
        c
    };
    let header_with = |name: &str, v: Value| {
        let mut h = key.header();
        h[name] = v;
        h
    };
    let mut private = key.header();
    let pair = ES256.generate_key_pair().unwrap();
    private["jwk"] = Value::Object(pair.to_jwk_key_pair().into());
    let private_signer = ES256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap();
    let hs = HS256
        .signer_from_bytes(b"0123456789abcdef0123456789abcdef")
        .unwrap();
    let hs_header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}});
    let signed_by = |signer: &dyn JwsSigner, header: &Value, claims: &Value| {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64(&signer.sign(input.as_bytes()).unwrap()))
    };
    let unsigned = |header: &Value| {
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(good().to_string().as_bytes())
        )
    };
    let good_proof = key.sign(&key.header(), &good());
    let mut tampered = good_proof.clone();
    tampered.replace_range(tampered.len() - 6.., "AAAAAA");
    let other_key = DpopKey::es256();
    let mut foreign = key.header();
    foreign["jwk"] = Value::Object(other_key.public.clone());
    let oversize = key.sign(&key.header(), &with("pad", "x".repeat(9000).into()));
    let mut no_jti = good();
    no_jti.as_object_mut().unwrap().remove("jti");

    // RFC 9449 §4.3, one check each.
    let cases: Vec<(&str, &str, String)> = vec![
        ("2: not a JWS", "compact JWS", "not-a-jwt".into()),
        ("3: no jti", "lacks jti", key.sign(&key.header(), &no_jti)),
        (
            "4: typ JWT",
            "typ",
            key.sign(&header_with("typ", "JWT".into()), &good()),
        ),
        ("4: no typ", "typ", {
            let mut h = key.header();
            h.as_object_mut().unwrap().remove("typ");
            key.sign(&h, &good())
        }),
        (
            "5: alg none",
            "alg",
            unsigned(&header_with("alg", "none".into())),
        ),
        ("5: alg HS256", "alg", signed_by(&hs, &hs_header, &good())),
        ("6: no jwk", "no jwk", {
            let mut h = key.header();
            h.as_object_mut().unwrap().remove("jwk");
            key.sign(&h, &good())
        }),
        ("6: bad signature", "signature", tampered),
        (
            "6: signed by another key",
            "signature",
            key.sign(&foreign, &good()),
        ),
        (
            "7: private jwk",
            "private",
            signed_by(&private_signer, &private, &good()),
        ),
        (
            "8: htm GET",
            "htm",
            key.sign(&key.header(), &with("htm", "GET".into())),
        ),
        (
            "9: htu of another endpoint",
            "htu",
            key.sign(
                &key.header(),
                &with("htu", app.endpoint("userinfo_endpoint").await.into()),
            ),
        ),
        (
            "9: htu of another host",
            "htu",
            key.sign(
                &key.header(),
                &with("htu", "https://elsewhere.example/token".into()),
            ),
        ),
        (
            "11: iat 2 min old",
            "iat",
            key.sign(&key.header(), &with("iat", (t - 120).into())),
        ),
        (
            "11: iat 2 min ahead",
            "iat",
            key.sign(&key.header(), &with("iat", (t + 120).into())),
        ),
        ("size: over 8 KiB", "too large", oversize),
    ];
    for (case, why, proof) in &cases {
        let r = token(&app, client, CC, &[proof]).await;
        assert!(r.headers().contains_key("dpop-nonce"), "{case}");
        assert_eq!(r.status(), 400, "{case}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{case}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{case}: {description}");
    }
    // 1: two DPoP headers, each good on its own.
    let second = key.sign(&key.header(), &good());
    let r = token(&app, client, CC, &[&good_proof, &second]).await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_dpop_proof".into()),
        "two headers"
    );
    // 10: a nonce Sigil never issued.
    let r = token(
        &app,
        client,
        CC,
        &[&key.sign(&key.header(), &with("nonce", "made-up".into()))],
    )
    .await;
    assert_eq!(error_of(r).await, (400, "use_dpop_nonce".into()));

    // Nothing above spent anything: the good proof (and its twin) still work, the query and
    // fragment of htu aside (§4.3 point 9).
    let r = token(&app, client, CC, &[&good_proof]).await;
    assert_eq!(r.status(), 200);
    let htu_query = key.sign(&key.header(), &with("htu", format!("{htu}?x=1#f").into()));
    let r = token(&app, client, CC, &[&htu_query]).await;
    assert_eq!(r.status(), 200);
}

async fn rfc9449_4_3_proofs_with_rsa_and_eddsa_keys_are_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    for key in [DpopKey::rs256(), DpopKey::eddsa()] {
        let body = cc_token(&app, (&id, &secret), &key).await;
        assert_eq!(body["token_type"], "DPoP");
        let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
        assert_eq!(claims["cnf"]["jkt"], key.jkt(), "{}", key.alg);
    }
}

async fn rfc9449_8_the_token_endpoint_asks_for_a_nonce_and_accepts_it_for_two_minutes(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let client = (id.as_str(), secret.as_str());
    let key = DpopKey::es256();
    let htu = app.endpoint("token_endpoint").await;
    // §8: without a nonce, 400 use_dpop_nonce and the nonce to use.
    let nonce = token_nonce(&app, client, &key).await;
    let r = token(
        &app,
        client,
        CC,
        &[&key.proof("POST", &htu, now(&app), Some(&nonce), None)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // §8.2: a successful answer carries a nonce too.
    let next = nonce_of(&r);
    // The nonce lives for its minute and the next: 60 s later it still works, 120 s later not.
    app.state.clock.advance(60);
    let r = token(
        &app,
        client,
        CC,
        &[&key.proof("POST", &htu, now(&app), Some(&nonce), None)],
    )
    .await;
    assert_eq!(r.status(), 200);
    app.state.clock.advance(60);
    let r = token(
        &app,
        client,
        CC,
        &[&key.proof("POST", &htu, now(&app), Some(&nonce), None)],
    )
    .await;
    let fresh = nonce_of(&r);
    assert_eq!(error_of(r).await, (400, "use_dpop_nonce".into()));
    assert_ne!(fresh, nonce);
    let _ = next;
    let r = token(
        &app,
        client,
        CC,
        &[&key.proof("POST", &htu, now(&app), Some(&fresh), None)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // A request without any proof hears nothing of DPoP.
    let r = token(&app, client, CC, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("dpop-nonce"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
}

async fn rfc9449_11_1_a_proof_is_accepted_once_even_when_sent_30_times_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let client = (id.as_str(), secret.as_str());
    let key = DpopKey::es256();
    let nonce = token_nonce(&app, client, &key).await;
    let htu = app.endpoint("token_endpoint").await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    for round in 0..3 {
        let proof = key.proof("POST", &htu, now(&app), Some(&nonce), None);
        let requests = (0..30)
            .map(|_| {
                instant::form_post(
                    &htu,
                    None,
                    CC,
                    &[("Authorization", &basic), ("DPoP", &proof)],
                )
            })
            .collect();
        let answers = instant::fire(app.address.strip_prefix("http://").unwrap(), requests).await;
        assert_eq!(
            instant::by_status(&answers),
            BTreeMap::from([(200, 1), (400, 29)]),
            "round {round}"
        );
        for a in answers.iter().filter(|a| a.status == 400) {
            assert!(a.body.contains("invalid_dpop_proof"), "{}", a.body);
        }
        // Later, the same proof again: still refused.
        let r = token(&app, client, CC, &[&proof]).await;
        assert_eq!(error_of(r).await, (400, "invalid_dpop_proof".into()));
    }
    // Nodes sharing PostgreSQL agree (§11.1): a proof spent at one is refused at the other.
    if backend == Backend::Postgres {
        let other = crate::two_nodes::start_node(app.settings.clone(), app.state.clock.clone());
        let proof = key.proof("POST", &htu, now(&app), Some(&nonce), None);
        assert_eq!(token(&app, client, CC, &[&proof]).await.status(), 200);
        let r = app
            .http
            .post(format!("{}/token", other.address))
            .basic_auth(&id, Some(&secret))
            .header("DPoP", &proof)
            .form(CC)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (400, "invalid_dpop_proof".into()));
        // A fresh proof (same nonce: every node issues the same ones) works there.
        let proof = key.proof("POST", &htu, now(&app), Some(&nonce), None);
        let r = app
            .http
            .post(format!("{}/token", other.address))
            .basic_auth(&id, Some(&secret))
            .header("DPoP", &proof)
            .form(CC)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

async fn rfc9449_11_1_a_full_store_of_proof_ids_refuses_with_503(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.dpop.max_jtis = 2).await;
    let (id, secret) = app.cc_client("svc");
    let client = (id.as_str(), secret.as_str());
    let key = DpopKey::es256();
    let nonce = token_nonce(&app, client, &key).await;
    let htu = app.endpoint("token_endpoint").await;
    let proof = || key.proof("POST", &htu, now(&app), Some(&nonce), None);
    for _ in 0..2 {
        assert_eq!(token(&app, client, CC, &[&proof()]).await.status(), 200);
    }
    let r = token(&app, client, CC, &[&proof()]).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_of(r).await, (503, "temporarily_unavailable".into()));
    // Without a proof nothing is stored, and the client is served.
    assert_eq!(token(&app, client, CC, &[]).await.status(), 200);
    // Once the stored proofs' window has passed, their places are free again.
    app.state.clock.advance(62);
    let nonce = token_nonce(&app, client, &key).await;
    let r = token(
        &app,
        client,
        CC,
        &[&key.proof("POST", &htu, now(&app), Some(&nonce), None)],
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn rfc9449_11_1_proof_ids_are_forgotten_after_their_window(backend: Backend) {
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;
    let app = spawn_app_with(backend, |s| {
        s.maintenance.interval =
            sigil::config::DurationSetting(std::time::Duration::from_millis(100));
    })
    .await;
    let count = || {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        app.state
            .db
            .with_conn(|c| {
                diesel::sql_query("SELECT COUNT(*) AS n FROM dpop_jtis")
                    .get_result::<N>(c)
                    .map_err(sigil::storage::StorageError::from)
            })
            .unwrap()
            .n
    };
    let (id, secret) = app.cc_client("svc");
    let key = DpopKey::es256();
    cc_token(&app, (&id, &secret), &key).await;
    // PostgreSQL nodes share the ids through the table; a SQLite node keeps them in memory.
    let stored = match backend {
        Backend::Postgres => 1,
        Backend::Sqlite => 0,
    };
    assert_eq!(count(), stored);
    assert_eq!(app.state.dpop.jtis.len(), 1);
    // A live row the maintenance purge must keep, and the window passing for the first.
    let live = now(&app) + 1000;
    app.state
        .db
        .with_conn(|c| {
            diesel::sql_query(format!(
                "INSERT INTO dpop_jtis (jti_hash, expires_at) VALUES ('live', {live})"
            ))
            .execute(c)
            .map_err(sigil::storage::StorageError::from)
        })
        .unwrap();
    app.state.clock.advance(62);
    for _ in 0..100 {
        if count() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(), 1, "only the live row stays");
    // This node forgets its expired ids as new proofs come.
    cc_token(&app, (&id, &secret), &key).await;
    assert_eq!(app.state.dpop.jtis.len(), 1);
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

async fn rfc9449_5_tokens_are_bound_to_the_proof_key_and_introspection_shows_it(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("web", json!({}));
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, (&id, &secret), &key).await;
    // §5: token_type DPoP; §6.1: cnf.jkt is the key's thumbprint.
    assert_eq!(tokens["token_type"], "DPoP");
    let at = tokens["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(at);
    assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}));
    // §6.2: introspection says so (asked twice: the cached answer too).
    let (rs, rs_secret) = app.cc_client("rs");
    for _ in 0..2 {
        let answer = app.introspect(&rs, &rs_secret, at).await;
        assert_eq!(answer["active"], true);
        assert_eq!(answer["token_type"], "DPoP");
        assert_eq!(answer["cnf"]["jkt"], key.jkt());
    }
    // client_credentials: bound the same way.
    let body = cc_token(&app, (&rs, &rs_secret), &key).await;
    assert_eq!(body["token_type"], "DPoP");
    let cc_at = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(cc_at).1["cnf"]["jkt"], key.jkt());
    let answer = app.introspect(&rs, &rs_secret, cc_at).await;
    assert_eq!(answer["token_type"], "DPoP");
    // Without a proof: a bearer token, no cnf.
    let (_, _, plain) = app.user_tokens("plain").await;
    assert_eq!(plain["token_type"], "Bearer");
    let plain_at = plain["access_token"].as_str().unwrap();
    assert!(jwt_parts(plain_at).1.get("cnf").is_none());
    let answer = app.introspect(&rs, &rs_secret, plain_at).await;
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer.get("cnf").is_none());
}

async fn rfc9449_5_a_public_client_refresh_token_is_bound_to_its_key(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, _) = app.web_client("spa", json!({"token_endpoint_auth_method": "none"}));
    let client = (id.as_str(), "");
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, client, &key).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    // Another key, or no proof: invalid_grant, and nothing is spent or revoked.
    let r = refresh(&app, client, &rt, Some(&DpopKey::es256())).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = refresh(&app, client, &rt, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let at = tokens["access_token"].as_str().unwrap();
    let (rs, rs_secret) = app.cc_client("rs");
    assert_eq!(app.introspect(&rs, &rs_secret, at).await["active"], true);
    // The right key: the refresh token works, and its successor is bound the same way.
    let r = refresh(&app, client, &rt, Some(&key)).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    let (_, claims) = jwt_parts(next["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], key.jkt());
    let rt2 = next["refresh_token"].as_str().unwrap();
    let r = refresh(&app, client, rt2, Some(&DpopKey::es256())).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    // A used bound token shown by someone without the key revokes nothing (RFC 9700 §4.14.2
    // needs the holder): the successor still refreshes.
    let r = refresh(&app, client, &rt, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = refresh(&app, client, rt2, Some(&key)).await;
    assert_eq!(r.status(), 200);
}

async fn rfc9449_5_a_confidential_client_refresh_token_is_not_bound(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("web", json!({}));
    let client = (id.as_str(), secret.as_str());
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, client, &key).await;
    // §5: it authenticates, so its refresh token is not bound; the new access token is bound
    // to the key of the proof presented now.
    let other = DpopKey::es256();
    let r = refresh(
        &app,
        client,
        tokens["refresh_token"].as_str().unwrap(),
        Some(&other),
    )
    .await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    assert_eq!(
        jwt_parts(next["access_token"].as_str().unwrap()).1["cnf"]["jkt"],
        other.jkt()
    );
    let r = refresh(&app, client, next["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), 200);
    let plain: Value = r.json().await.unwrap();
    assert_eq!(plain["token_type"], "Bearer");
}

async fn rfc9449_5_2_a_dpop_bound_access_tokens_client_must_send_a_proof(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.register_client(
        "bound",
        &json!({"grant_types": ["client_credentials"], "scope": "api", "dpop_bound_access_tokens": true}),
    );
    assert_eq!(r["dpop_bound_access_tokens"], true, "{r}");
    let secret = r["client_secret"].as_str().unwrap();
    let client = ("bound", secret);
    let r = token(&app, client, CC, &[]).await;
    assert!(r.headers().contains_key("dpop-nonce"));
    assert_eq!(error_of(r).await, (400, "invalid_dpop_proof".into()));
    let body = cc_token(&app, client, &DpopKey::es256()).await;
    assert_eq!(body["token_type"], "DPoP");
    // The metadata is shown as stored.
    let shown = app.sigil(&["client", "show", "bound"], None);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["dpop_bound_access_tokens"], true, "{shown}");
}

/// GET UserInfo with `authorization` and the proofs given.
async fn userinfo(app: &TestApp, authorization: &str, proofs: &[&str]) -> reqwest::Response {
    let url = app.endpoint("userinfo_endpoint").await;
    let mut r = app.http.get(url).header("Authorization", authorization);
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    r.send().await.unwrap()
}

fn challenges(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

async fn rfc9449_7_1_userinfo_takes_a_bound_token_only_with_a_proof_of_its_key(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("web", json!({}));
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, (&id, &secret), &key).await;
    let at = tokens["access_token"].as_str().unwrap();
    let url = app.endpoint("userinfo_endpoint").await;
    let dpop_auth = format!("DPoP {at}");
    let proof = |nonce: Option<&str>| key.proof("GET", &url, now(&app), nonce, Some(at));

    // §9: a resource asks for its nonce: 401, a DPoP challenge, the nonce.
    let r = userinfo(&app, &dpop_auth, &[&proof(None)]).await;
    assert_eq!(r.status(), 401);
    let nonce = nonce_of(&r);
    let c = challenges(&r);
    assert!(
        c.iter().any(|c| c.starts_with("DPoP ")
            && c.contains("error=\"use_dpop_nonce\"")
            && c.contains("algs=\"")),
        "{c:?}"
    );
    // The right proof: the user's claims, and the next nonce.
    let r = userinfo(&app, &dpop_auth, &[&proof(Some(&nonce))]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("dpop-nonce"));
    let claims: Value = r.json().await.unwrap();
    assert_eq!(claims["email"], "alice@example.com");

    let refusals: Vec<(&str, reqwest::Response, &str)> = vec![
        (
            "no proof",
            userinfo(&app, &dpop_auth, &[]).await,
            "invalid_dpop_proof",
        ),
        (
            "§4.3 point 12: ath of another token",
            userinfo(
                &app,
                &dpop_auth,
                &[&key.proof("GET", &url, now(&app), Some(&nonce), Some("another token"))],
            )
            .await,
            "invalid_dpop_proof",
        ),
        (
            "no ath",
            userinfo(
                &app,
                &dpop_auth,
                &[&key.proof("GET", &url, now(&app), Some(&nonce), None)],
            )
            .await,
            "invalid_dpop_proof",
        ),
        (
            "htm POST",
            userinfo(
                &app,
                &dpop_auth,
                &[&key.proof("POST", &url, now(&app), Some(&nonce), Some(at))],
            )
            .await,
            "invalid_dpop_proof",
        ),
        (
            "a proof of another key",
            userinfo(
                &app,
                &dpop_auth,
                &[&DpopKey::es256().proof("GET", &url, now(&app), Some(&nonce), Some(at))],
            )
            .await,
            "invalid_token",
        ),
        (
            "the same proof again",
            {
                let p = proof(Some(&nonce));
                assert_eq!(userinfo(&app, &dpop_auth, &[&p]).await.status(), 200);
                userinfo(&app, &dpop_auth, &[&p]).await
            },
            "invalid_dpop_proof",
        ),
    ];
    for (case, r, error) in refusals {
        assert_eq!(r.status(), 401, "{case}");
        let c = challenges(&r);
        assert!(
            c.iter()
                .any(|c| c.starts_with("DPoP ") && c.contains(&format!("error=\"{error}\""))),
            "{case}: {c:?}"
        );
    }

    // §7.2: the bound token as a bearer token is refused (a downgrade), header or body.
    let r = userinfo(&app, &format!("Bearer {at}"), &[]).await;
    assert_eq!(r.status(), 401);
    let c = challenges(&r);
    assert!(
        c.iter().any(|c| c.contains("error=\"invalid_token\"")),
        "{c:?}"
    );
    let r = userinfo(&app, &format!("Bearer {at}"), &[&proof(Some(&nonce))]).await;
    assert_eq!(r.status(), 401, "Bearer with a proof");
    let r = app
        .http
        .post(&url)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "in the body");

    // An unbound token is no DPoP token.
    let (_, _, plain) = app.user_tokens("plain").await;
    let plain_at = plain["access_token"].as_str().unwrap();
    let r = userinfo(
        &app,
        &format!("DPoP {plain_at}"),
        &[&key.proof("GET", &url, now(&app), Some(&nonce), Some(plain_at))],
    )
    .await;
    assert_eq!(r.status(), 401);
    // As a bearer token it works, and the answer says DPoP is accepted too (§7.2) on refusal.
    assert_eq!(app.userinfo(plain_at).await.status(), 200);
    let r = userinfo(&app, "Bearer nonsense", &[]).await;
    let c = challenges(&r);
    assert!(c.iter().any(|c| c.starts_with("Bearer")), "{c:?}");
    assert!(c.iter().any(|c| c.starts_with("DPoP algs=")), "{c:?}");
}

async fn rfc9449_7_2_a_bound_token_is_no_bearer_token_anywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    // The admin API (client_credentials tokens with sigil:admin).
    let r = app.register_client(
        "admin-bot",
        &json!({"grant_types": ["client_credentials"], "scope": "sigil:admin"}),
    );
    let secret = r["client_secret"].as_str().unwrap().to_string();
    let key = DpopKey::es256();
    let bound = cc_token(&app, ("admin-bot", &secret), &key).await;
    let users = app.url("/admin/api/users");
    let r = app
        .http
        .get(&users)
        .bearer_auth(bound["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let plain: Value = token(&app, ("admin-bot", &secret), CC, &[])
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .get(&users)
        .bearer_auth(plain["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Token exchange: a bound subject token is exchanged only with a proof of its key.
    app.add_user("alice");
    let (id, secret) = app.web_client("web", json!({}));
    let user = code_tokens(&app, (&id, &secret), &key).await;
    let subject = user["access_token"].as_str().unwrap();
    let r = app.register_client(
        "svc",
        &json!({"grant_types": [sigil::oauth::client_metadata::TOKEN_EXCHANGE], "scope": "openid email"}),
    );
    let svc = ("svc", r["client_secret"].as_str().unwrap());
    let form = [
        ("grant_type", sigil::oauth::client_metadata::TOKEN_EXCHANGE),
        ("subject_token", subject),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    let r = token(&app, svc, &form, &[]).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let htu = app.endpoint("token_endpoint").await;
    let nonce = token_nonce(&app, svc, &key).await;
    let other = DpopKey::es256().proof("POST", &htu, now(&app), Some(&nonce), None);
    let r = token(&app, svc, &form, &[&other]).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = token(
        &app,
        svc,
        &form,
        &[&key.proof("POST", &htu, now(&app), Some(&nonce), None)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let exchanged: Value = r.json().await.unwrap();
    assert_eq!(exchanged["token_type"], "DPoP");
    assert_eq!(
        jwt_parts(exchanged["access_token"].as_str().unwrap()).1["cnf"]["jkt"],
        key.jkt()
    );
}

async fn rfc9449_5_1_discovery_lists_the_proof_algorithms(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.discovery().await;
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "PS256", "RS256", "EdDSA"])
    );
    assert_eq!(
        app.get_json("/.well-known/oauth-authorization-server")
            .await["dpop_signing_alg_values_supported"],
        d["dpop_signing_alg_values_supported"]
    );
}
