//! RFC 9449 §4.3 (each check of a proof), §8 (nonces) and §11.1 (a proof accepted once).

use std::collections::BTreeMap;

use base64::Engine;
use josekit::jws::{JwsSigner, ES256, HS256};
use serde_json::{json, Value};

use super::*;
use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, Backend};
use crate::instant;

both_backends!(
    rfc9449_4_3_a_proof_failing_any_check_is_invalid_dpop_proof,
    rfc9449_4_3_proofs_with_rsa_and_eddsa_keys_are_accepted,
    rfc9449_8_the_token_endpoint_asks_for_a_nonce_and_accepts_it_for_two_minutes,
    rfc9449_11_1_a_proof_is_accepted_once_even_when_sent_30_times_at_once,
    rfc9449_11_1_a_full_store_of_proof_ids_refuses_with_503,
    rfc9449_11_1_proof_ids_are_forgotten_after_their_window,
);

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
