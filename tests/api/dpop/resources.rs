//! RFC 9449 §7: a bound token at a protected resource — UserInfo with its proof, challenges and
//! nonces — and never as a bearer token (UserInfo, the admin API, token exchange).

use serde_json::{json, Value};

use super::*;
use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, Backend};

both_backends!(
    rfc9449_7_1_userinfo_takes_a_bound_token_only_with_a_proof_of_its_key,
    rfc9449_7_2_a_bound_token_is_no_bearer_token_anywhere,
);

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
