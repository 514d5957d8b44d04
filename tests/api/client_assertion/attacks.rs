//! SECURITY.md attacks 1–5 and 7 against client assertions, and the RFC 7523 §3 claim rules.
//! Every refusal must be the one `invalid_client` 401 body, never a 500.

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use serde_json::{json, Value};

use super::keys::{b64url, compact, ClientKey, ASSERTION_TYPE};
use super::{assert_invalid_client, claims, key_client, post, register, token, LocalServer};
use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};

both_backends!(
    attack1_alg_none_and_empty_signatures_are_refused,
    attack2_hmac_keyed_with_the_clients_rsa_public_key_is_refused,
    attack3_kid_injection_is_a_clean_401,
    attack4_jku_x5u_jwk_x5c_headers_are_ignored_and_never_fetched,
    attack5_ecdsa_zero_and_wrong_length_signatures_are_refused,
    attack7_wrong_types_missing_claims_and_replayed_jti_are_refused,
    audience_issuer_subject_and_lifetime_are_exact,
    assertions_over_64_kb_are_refused,
);

/// A `client_secret_jwt` client "hmac-app" and its key.
fn hmac_client(app: &TestApp) -> ClientKey {
    let r = register(
        app,
        "hmac-app",
        json!({"token_endpoint_auth_method": "client_secret_jwt"}),
    );
    ClientKey::hmac(r["client_secret"].as_str().unwrap())
}

/// A `private_key_jwt` client with one key of `alg`.
fn keyed_client(app: &TestApp, id: &str, alg: &'static str) -> ClientKey {
    let key = ClientKey::generate(alg);
    key_client(app, id, &key);
    key
}

async fn refused(app: &TestApp, assertion: &str, what: &str) {
    let (status, body) = token(app, assertion).await;
    assert_invalid_client(status, &body, what);
}

async fn accepted(app: &TestApp, assertion: &str, what: &str) {
    let (status, body) = token(app, assertion).await;
    assert_eq!(status, 200, "{what}: {body}");
}

async fn attack1_alg_none_and_empty_signatures_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let hmac = hmac_client(&app);
    let rsa = keyed_client(&app, "key-app", "RS256");
    for (id, key) in [("hmac-app", &hmac), ("key-app", &rsa)] {
        for alg in ["none", "None", "noNE", "NONE"] {
            let mut header = key.header();
            header["alg"] = alg.into();
            let c = claims(&app, id).await;
            refused(&app, &compact(&header, &c, |_| Vec::new()), alg).await;
            // Also with a signature the real key made over that very header.
            refused(&app, &key.sign_with_header(&header, &c), alg).await;
        }
        // The right algorithm with the signature left off.
        let c = claims(&app, id).await;
        refused(
            &app,
            &compact(&key.header(), &c, |_| Vec::new()),
            "empty signature",
        )
        .await;
        let (status, body) = post(
            &app,
            "introspection_endpoint",
            &compact(&json!({"alg": "none"}), &c, |_| Vec::new()),
            &[("token", "x")],
        )
        .await;
        assert_invalid_client(status, &body, "alg none at introspection");
        // The same claims signed properly pass: the refusals were for the signature alone.
        accepted(&app, &key.sign(&c), id).await;
    }
}

async fn attack2_hmac_keyed_with_the_clients_rsa_public_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let rsa = keyed_client(&app, "key-app", "RS256");
    let pkcs1_pem = openssl::rsa::Rsa::public_key_from_der(&rsa.public_der)
        .unwrap()
        .public_key_to_pem_pkcs1()
        .unwrap();
    let jwk_bytes = rsa.public_jwk.to_string().into_bytes();
    for (what, secret) in [
        ("PEM", rsa.public_pem.clone()),
        (
            "PEM without the newline",
            rsa.public_pem.trim_ascii_end().to_vec(),
        ),
        ("PKCS#1 PEM", pkcs1_pem),
        ("DER", rsa.public_der.clone()),
        ("JWK", jwk_bytes),
    ] {
        let forger = ClientKey::hmac_bytes(&secret);
        for header in [
            json!({"alg": "HS256", "kid": rsa.kid}),
            json!({"alg": "HS256"}),
        ] {
            let forged = forger.sign_with_header(&header, &claims(&app, "key-app").await);
            refused(&app, &forged, what).await;
        }
    }
    // One key, one algorithm: a key registered without `alg` is RS256 only, so a PS256
    // signature by the very same key is refused.
    let pss = ClientKey::generate("PS256");
    key_client(&app, "pss-by-type", &pss);
    refused(
        &app,
        &pss.sign(&claims(&app, "pss-by-type").await),
        "PS256 on an RS256 key",
    )
    .await;
    accepted(
        &app,
        &rsa.sign(&claims(&app, "key-app").await),
        "the real key",
    )
    .await;
}

async fn attack3_kid_injection_is_a_clean_401(backend: Backend) {
    // Limits raised so that a 10 kB kid reaches the assertion checks (by default the
    // parameter is refused as too long before anything reads it).
    let app = spawn_app_with(backend, |s| {
        s.outbound.allow_private_networks = true;
        s.http.max_param_bytes = 16 * 1024;
    })
    .await;
    let hmac = hmac_client(&app);
    let rsa = keyed_client(&app, "key-app", "RS256");
    let remote = ClientKey::generate("ES256");
    let server = LocalServer::start(json!({"keys": [remote.public_jwk]}).to_string());
    register(
        &app,
        "remote-app",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url}),
    );
    let long = "k".repeat(10 * 1024);
    let kids: Vec<Value> = vec![
        "../../dev/null".into(),
        "../../../../../../etc/passwd".into(),
        "' OR '1'='1".into(),
        "'; DROP TABLE clients; --".into(),
        long.into(),
        "\0".into(),
        format!("{}\0", rsa.kid).into(),
        "%00".into(),
        "".into(),
        json!(123),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(null),
        json!({"kid": rsa.kid}),
        json!([rsa.kid]),
    ];
    for (id, key) in [
        ("hmac-app", &hmac),
        ("key-app", &rsa),
        ("remote-app", &remote),
    ] {
        for kid in &kids {
            let mut header = key.header();
            header["kid"] = kid.clone();
            let forged = key.sign_with_header(&header, &claims(&app, id).await);
            let (status, body) = token(&app, &forged).await;
            let shown: String = kid.to_string().chars().take(40).collect();
            if id == "hmac-app" && kid.is_string() {
                // The secret is the client's one key: a kid selects nothing and is never
                // looked up, so the properly signed assertion passes.
                assert_eq!(status, 200, "{id} kid {shown}: {body}");
                continue;
            }
            assert_invalid_client(status, &body, &format!("{id} kid {shown}"));
        }
    }
    // Injected kids cost the jwks_uri one fetch, not one per request.
    assert_eq!(server.hits(), 1);
    accepted(&app, &rsa.sign(&claims(&app, "key-app").await), "key-app").await;
    accepted(
        &app,
        &remote.sign(&claims(&app, "remote-app").await),
        "remote-app",
    )
    .await;
    assert_eq!(server.hits(), 1);
}

async fn attack4_jku_x5u_jwk_x5c_headers_are_ignored_and_never_fetched(backend: Backend) {
    // Private addresses are allowed, so that a fetch, if Sigil tried one, would succeed.
    let app = spawn_app_with(backend, |s| s.outbound.allow_private_networks = true).await;
    let rsa = keyed_client(&app, "key-app", "RS256");
    let attacker = ClientKey::generate("RS256");
    let server = LocalServer::start(json!({"keys": [attacker.public_jwk]}).to_string());
    let (cert, cert_key) = self_signed();
    let x5c = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &cert);
    let url = server.url.clone();
    for header in [
        json!({"alg": "RS256", "kid": attacker.kid, "jku": url}),
        json!({"alg": "RS256", "kid": rsa.kid, "jku": url}),
        json!({"alg": "RS256", "jku": url}),
        json!({"alg": "RS256", "x5u": url}),
        json!({"alg": "RS256", "kid": rsa.kid, "x5u": url}),
        json!({"alg": "RS256", "jwk": attacker.public_jwk}),
        json!({"alg": "RS256", "kid": rsa.kid, "jwk": attacker.public_jwk}),
        json!({"alg": "RS256", "kid": attacker.kid, "jwk": attacker.public_jwk}),
    ] {
        let forged = attacker.sign_with_header(&header, &claims(&app, "key-app").await);
        refused(&app, &forged, &header.to_string()).await;
    }
    for header in [
        json!({"alg": "RS256", "x5c": [x5c]}),
        json!({"alg": "RS256", "kid": rsa.kid, "x5c": [x5c]}),
    ] {
        let forged = compact(&header, &claims(&app, "key-app").await, |input| {
            sign_rs256(&cert_key, input)
        });
        refused(&app, &forged, "x5c").await;
    }
    // A client_secret_jwt client: an embedded symmetric key is not its secret.
    hmac_client(&app);
    let attacker_secret = b"attacker-chosen-secret-attacker-chosen-secret";
    let forged = ClientKey::hmac_bytes(attacker_secret).sign_with_header(
        &json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64url(attacker_secret)}, "jku": url}),
        &claims(&app, "hmac-app").await,
    );
    refused(&app, &forged, "oct jwk header").await;
    // The client's own signature with those headers present: they are ignored, not obeyed.
    let header =
        json!({"alg": "RS256", "kid": rsa.kid, "jku": url, "x5u": url, "jwk": attacker.public_jwk});
    accepted(
        &app,
        &rsa.sign_with_header(&header, &claims(&app, "key-app").await),
        "own key",
    )
    .await;
    assert_eq!(
        server.hits(),
        0,
        "Sigil never fetched a URL from a token header"
    );
}

/// A self-signed certificate for a fresh RSA key (the attacker's `x5c`): (DER, key).
fn self_signed() -> (Vec<u8>, openssl::pkey::PKey<openssl::pkey::Private>) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "key-app").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (b.build().to_der().unwrap(), key)
}

fn sign_rs256(key: &openssl::pkey::PKey<openssl::pkey::Private>, input: &[u8]) -> Vec<u8> {
    let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
    s.update(input).unwrap();
    s.sign_to_vec().unwrap()
}

async fn attack5_ecdsa_zero_and_wrong_length_signatures_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let ec = keyed_client(&app, "ec-app", "ES256");
    let c = claims(&app, "ec-app").await;
    let good = ec.sign(&c);
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        good.rsplit('.').next().unwrap(),
    )
    .unwrap();
    assert_eq!(raw.len(), 64);
    let der = EcdsaSig::from_private_components(
        BigNum::from_slice(&raw[..32]).unwrap(),
        BigNum::from_slice(&raw[32..]).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap();
    let order = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let mut r_zero = raw.clone();
    r_zero[..32].fill(0);
    let mut s_zero = raw.clone();
    s_zero[32..].fill(0);
    let n_n = [order.clone(), order.clone()].concat();
    let mut longer = raw.clone();
    longer.push(0);
    let mut padded = vec![0u8];
    padded.extend_from_slice(&raw);
    for (what, sig) in [
        ("all zero (CVE-2022-21449)", vec![0u8; 64]),
        ("empty", vec![]),
        ("one zero byte", vec![0u8]),
        ("63 zero bytes", vec![0u8; 63]),
        ("65 zero bytes", vec![0u8; 65]),
        ("r = 0", r_zero),
        ("s = 0", s_zero),
        ("r = s = n", n_n),
        ("the valid signature DER-encoded", der),
        ("the valid signature truncated", raw[..63].to_vec()),
        ("the valid signature with a byte added", longer),
        ("the valid signature behind a zero byte", padded),
    ] {
        refused(&app, &compact(&ec.header(), &c, |_| sig.clone()), what).await;
    }
    for alg in ["RS256", "EdDSA"] {
        let id = format!("{}-app", alg.to_lowercase());
        let key = keyed_client(&app, &id, alg);
        let c = claims(&app, &id).await;
        let len = if alg == "RS256" { 256 } else { 64 };
        for sig in [
            vec![0u8; len],
            vec![0u8; len - 1],
            vec![0u8; len + 1],
            vec![],
        ] {
            let what = format!("{alg} {} zero bytes", sig.len());
            refused(&app, &compact(&key.header(), &c, |_| sig.clone()), &what).await;
        }
        accepted(&app, &key.sign(&c), alg).await;
    }
    accepted(&app, &good, "the valid ES256 signature").await;
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

async fn attack7_wrong_types_missing_claims_and_replayed_jti_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let hmac = hmac_client(&app);
    let base = claims(&app, "hmac-app").await;
    let with = |name: &str, v: Value| {
        let mut c = base.clone();
        c["jti"] = uuid::Uuid::new_v4().to_string().into();
        c[name] = v;
        c
    };
    let without = |name: &str| {
        let mut c = with("jti", uuid::Uuid::new_v4().to_string().into());
        c.as_object_mut().unwrap().remove(name);
        c
    };
    let exp = base["exp"].as_i64().unwrap();
    for (what, c) in [
        ("exp \"never\"", with("exp", "never".into())),
        (
            "exp as a numeric string",
            with("exp", exp.to_string().into()),
        ),
        ("exp true", with("exp", true.into())),
        ("exp null", with("exp", Value::Null)),
        ("exp object", with("exp", json!({"$date": exp}))),
        ("iat \"now\"", with("iat", "now".into())),
        ("nbf array", with("nbf", json!([0]))),
        ("iss a number", with("iss", 7.into())),
        ("sub an array", with("sub", json!(["hmac-app"]))),
        ("aud a number", with("aud", 1.into())),
        ("jti a number", with("jti", 42.into())),
        ("jti empty", with("jti", "".into())),
        ("jti an object", with("jti", json!({}))),
        ("no exp", without("exp")),
        ("no jti", without("jti")),
        ("no iss", without("iss")),
        ("no sub", without("sub")),
        ("no aud", without("aud")),
    ] {
        refused(&app, &hmac.sign(&c), what).await;
    }

    // RFC 7523 §3 item 7: a jti is accepted once.
    let once = hmac.sign(&with("iat", base["iat"].clone()));
    accepted(&app, &once, "first use").await;
    refused(&app, &once, "the same assertion again").await;
    let (status, body) = post(&app, "introspection_endpoint", &once, &[("token", "x")]).await;
    assert_invalid_client(status, &body, "replayed at introspection");
    let mut same_jti = claims(&app, "hmac-app").await;
    same_jti["jti"] = crate::helpers::jwt_parts(&once).1["jti"].clone();
    same_jti["iat"] = (same_jti["iat"].as_i64().unwrap() - 1).into();
    refused(
        &app,
        &hmac.sign(&same_jti),
        "a new assertion with a used jti",
    )
    .await;
    // Sent eight times at once, one assertion still authenticates exactly one request.
    let racing = hmac.sign(&claims(&app, "hmac-app").await);
    let url = app.endpoint("token_endpoint").await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, assertion) = (app.http.clone(), url.clone(), racing.clone());
        requests.spawn(async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ];
            let r = http.post(url).form(&form).send().await.unwrap();
            r.status().as_u16()
        });
    }
    let statuses = requests.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        7,
        "{statuses:?}"
    );
    // Another client may happen to use the same jti.
    let rsa = keyed_client(&app, "key-app", "RS256");
    let mut other = claims(&app, "key-app").await;
    other["jti"] = same_jti["jti"].clone();
    accepted(&app, &rsa.sign(&other), "same jti, other client").await;
}

async fn audience_issuer_subject_and_lifetime_are_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let hmac = hmac_client(&app);
    let issuer = app.issuer();
    let token_url = app.discovery().await["token_endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let introspection_url = app.discovery().await["introspection_endpoint"].clone();
    keyed_client(&app, "key-app", "RS256");
    let now = app.state.clock.now();
    let set = |mut c: Value, name: &str, v: Value| {
        c[name] = v;
        c
    };
    for (what, name, value) in [
        ("aud foreign", "aud", json!("https://evil.example/token")),
        (
            "aud with a foreign value",
            "aud",
            json!([token_url, "https://evil.example"]),
        ),
        (
            "aud with a slash appended",
            "aud",
            json!(format!("{token_url}/")),
        ),
        (
            "aud the introspection endpoint",
            "aud",
            introspection_url.clone(),
        ),
        ("aud empty array", "aud", json!([])),
        ("exp too far (5 min + skew + 40 s)", "exp", json!(now + 400)),
        ("exp a day away", "exp", json!(now + 86_400)),
        ("expired", "exp", json!(now - 120)),
        ("nbf in the future", "nbf", json!(now + 120)),
        ("iat in the future", "iat", json!(now + 120)),
        ("iss another client", "iss", json!("key-app")),
        ("sub another client", "sub", json!("key-app")),
    ] {
        refused(
            &app,
            &hmac.sign(&set(claims(&app, "hmac-app").await, name, value)),
            what,
        )
        .await;
    }
    for (what, name, value) in [
        ("aud the issuer", "aud", json!(issuer)),
        (
            "aud both of Sigil's names",
            "aud",
            json!([issuer, token_url]),
        ),
        ("exp in 5 minutes", "exp", json!(now + 300)),
        ("expired within the skew", "exp", json!(now - 10)),
    ] {
        accepted(
            &app,
            &hmac.sign(&set(claims(&app, "hmac-app").await, name, value)),
            what,
        )
        .await;
    }
    // A client_id parameter must name the assertion's client (RFC 7521 §4.2).
    let assertion = hmac.sign(&claims(&app, "hmac-app").await);
    let (status, body) = post(
        &app,
        "token_endpoint",
        &assertion,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "key-app"),
        ],
    )
    .await;
    assert_invalid_client(status, &body, "client_id differs from iss");
    let (status, body) = post(
        &app,
        "token_endpoint",
        &assertion,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "hmac-app"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn assertions_over_64_kb_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.http.max_body_bytes = 256 * 1024;
        s.http.max_param_bytes = 128 * 1024;
    })
    .await;
    let hmac = hmac_client(&app);
    let under = padded(&app, &hmac, 46_000).await;
    assert!(
        under.len() > 60 * 1024 && under.len() <= 64 * 1024,
        "{}",
        under.len()
    );
    accepted(&app, &under, "just under 64 kB").await;
    let over = padded(&app, &hmac, 50_000).await;
    assert!(over.len() > 64 * 1024, "{}", over.len());
    refused(&app, &over, "over 64 kB").await;
}

/// A valid assertion made large by a `pad` claim of `n` characters.
async fn padded(app: &TestApp, key: &ClientKey, n: usize) -> String {
    let mut c = claims(app, "hmac-app").await;
    c["pad"] = "x".repeat(n).into();
    key.sign(&c)
}
