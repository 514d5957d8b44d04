//! Races and retries at the token endpoint (SECURITY.md 28, 29): one winner among concurrent
//! redemptions of a code, a failed response that can be retried, refreshes from several tabs
//! within `tokens.refresh_grace`, replays that revoke only when the owner presents them, and an
//! introspection cache that only a real revocation empties.

use base64::Engine;
use serde_json::{json, Value};

use crate::both_backends;
use crate::client_assertion::LocalServer;
use crate::flow::{Browser, REDIRECT, VERIFIER};
use crate::helpers::{form_encode, jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};
use crate::instant::{self, Answer};
use crate::introspection::active;
use crate::refresh_and_userinfo::{error_of, refresh};

both_backends!(
    attack28_of_n_concurrent_redemptions_of_one_code_exactly_one_gets_tokens,
    attack28_a_failed_token_response_can_be_retried,
    attack28_concurrent_refreshes_within_the_grace_get_the_same_pair,
    attack28_concurrent_refreshes_without_grace_a_second_use_is_a_replay,
    attack28_a_replayed_public_code_without_the_verifier_revokes_nothing,
    attack29_bogus_codes_never_flush_the_introspection_cache,
);

/// Requests released at once, per round.
const AT_ONCE: usize = 30;
const ROUNDS: usize = 4;

fn tcp_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

/// A raw token request with HTTP Basic authentication (`secret` empty: none, a public client).
async fn token_request(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> Vec<u8> {
    let url = app.endpoint("token_endpoint").await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_encode(id),
            form_encode(secret)
        ))
    );
    match secret {
        "" => instant::form_post(&url, None, form, &[]),
        _ => instant::form_post(&url, None, form, &[("Authorization", &basic)]),
    }
}

/// `n` copies of one token request, released at the same instant.
async fn fire_same(app: &TestApp, request: Vec<u8>, n: usize) -> Vec<Answer> {
    instant::fire(&tcp_address(app), vec![request; n]).await
}

fn json_of(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|_| panic!("not JSON: {a:?}"))
}

/// Each answer is RFC 6749 §5.2's `invalid_grant`, status 400.
fn assert_invalid_grant<'a>(answers: impl IntoIterator<Item = &'a Answer>, round: usize) {
    for a in answers {
        assert_eq!(a.status, 400, "round {round}: {a:?}");
        assert_eq!(json_of(a)["error"], "invalid_grant", "round {round}: {a:?}");
    }
}

/// Exactly one answer is 200 and every other `invalid_grant`; the winner's body.
fn the_one_winner(answers: &[Answer], round: usize) -> Value {
    let (won, lost): (Vec<&Answer>, Vec<&Answer>) = answers.iter().partition(|a| a.status == 200);
    let counts = instant::by_status(answers);
    assert_eq!(won.len(), 1, "round {round}: {counts:?}");
    assert_invalid_grant(lost, round);
    json_of(won[0])
}

fn refresh_form(token: &str) -> [(&str, &str); 2] {
    [("grant_type", "refresh_token"), ("refresh_token", token)]
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

async fn attack28_of_n_concurrent_redemptions_of_one_code_exactly_one_gets_tokens(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("rp", json!({"skip_consent": true}));
    let browser = Browser::new();
    // The old way lost both sides in about 1 round of 20: more rounds than elsewhere.
    for round in 0..3 * ROUNDS {
        let code = app
            .code_for(&browser, &id, &[("scope", "openid offline_access")])
            .await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let answers = fire_same(
            &app,
            token_request(&app, &id, &secret, &form).await,
            AT_ONCE,
        )
        .await;
        // RFC 6749 §4.1.2: the losers were replays, so the winner's tokens die with the grant.
        let won = the_one_winner(&answers, round);
        assert_eq!(app.userinfo(text(&won, "access_token")).await.status(), 401);
        let rt = text(&won, "refresh_token");
        assert_eq!(
            error_of(refresh(&app, &id, &secret, rt, None).await).await,
            "invalid_grant"
        );
    }
}

/// The claims of an ID token encrypted to `key` (RSA-OAEP-256) and signed by Sigil.
fn open_id_token(token: &str, key: &josekit::jwk::alg::rsa::RsaKeyPair) -> Value {
    assert_eq!(token.split('.').count(), 5, "a JWE: {token}");
    let decrypter = josekit::jwe::RSA_OAEP_256
        .decrypter_from_der(key.to_der_private_key())
        .unwrap();
    let (payload, _) = josekit::jwe::deserialize_compact(token, &decrypter).unwrap();
    jwt_parts(std::str::from_utf8(&payload).unwrap()).1
}

async fn attack28_a_failed_token_response_can_be_retried(backend: Backend) {
    let key = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048).unwrap();
    let mut public = serde_json::to_value(key.to_jwk_public_key().as_ref()).unwrap();
    public["use"] = "enc".into();
    public["kid"] = "enc-1".into();
    let jwks = LocalServer::start(json!({"keys": [public]}).to_string());
    jwks.set_down(true);
    let app = spawn_app_with(backend, |s| s.outbound.allow_private_networks = true).await;
    app.add_user("alice");
    let (id, secret) = app.web_client(
        "rp",
        json!({"skip_consent": true, "jwks_uri": jwks.url,
               "id_token_encrypted_response_alg": "RSA-OAEP-256"}),
    );
    let code = app
        .code_for(&Browser::new(), &id, &[("scope", "openid offline_access")])
        .await;

    // The client's key host is down: the ID token cannot be encrypted, the exchange fails…
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "server_error");
    assert_eq!(jwks.hits(), 1, "the key set was asked for");
    // …and the client's retry of the same code, once the host is back, is no replay.
    jwks.set_down(false);
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    assert_eq!(open_id_token(text(&first, "id_token"), &key)["aud"], id);
    assert_eq!(
        app.userinfo(text(&first, "access_token")).await.status(),
        200
    );

    // The same for a refresh: the cached key set goes stale, the host is down again.
    app.state
        .clock
        .advance(sigil::tokens::jwe::JWKS_FRESH_SECS + 1);
    jwks.set_down(true);
    let rt = text(&first, "refresh_token");
    let r = refresh(&app, &id, &secret, rt, None).await;
    assert_eq!(r.status(), 500);
    assert_eq!(jwks.hits(), 3, "the stale key set was asked for again");
    jwks.set_down(false);
    let r = refresh(&app, &id, &secret, rt, None).await;
    assert_eq!(r.status(), 200, "the retry of the same refresh token");
    let second: Value = r.json().await.unwrap();
    assert_eq!(open_id_token(text(&second, "id_token"), &key)["aud"], id);
    // Nothing was revoked: the first and the new access token work, the new refresh token too.
    assert_eq!(
        app.userinfo(text(&first, "access_token")).await.status(),
        200
    );
    assert_eq!(
        app.userinfo(text(&second, "access_token")).await.status(),
        200
    );
    let r = refresh(&app, &id, &secret, text(&second, "refresh_token"), None).await;
    assert_eq!(r.status(), 200);
}

/// The stored row of a refresh token.
async fn refresh_row(app: &TestApp, token: &str) -> sigil::storage::grants::RefreshRow {
    let hash = sigil::web::flow::hash(token);
    app.state
        .db
        .run(move |c| sigil::storage::grants::refresh_token(c, &hash))
        .await
        .unwrap()
        .expect("the refresh token is stored")
}

/// The grant a refresh token belongs to.
async fn grant_of(app: &TestApp, token: &str) -> sigil::storage::grants::GrantRow {
    let id = refresh_row(app, token).await.grant_id;
    app.state
        .db
        .run(move |c| sigil::storage::grants::grant(c, &id))
        .await
        .unwrap()
        .expect("the grant is stored")
}

async fn attack28_concurrent_refreshes_within_the_grace_get_the_same_pair(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.tokens.refresh_grace = sigil::config::DurationSetting::from_secs(10)
    })
    .await;
    app.add_user("alice");
    let (id, secret, first) = app.user_tokens("rp").await;
    let mut rt = text(&first, "refresh_token").to_string();
    let mut pair = first.clone();
    let mut last_used = rt.clone();
    for round in 0..ROUNDS {
        let request = token_request(&app, &id, &secret, &refresh_form(&rt)).await;
        let answers = fire_same(&app, request, AT_ONCE).await;
        let counts = instant::by_status(&answers);
        assert_eq!(
            counts.get(&200),
            Some(&AT_ONCE),
            "round {round}: {counts:?}"
        );
        let bodies: Vec<Value> = answers.iter().map(json_of).collect();
        for b in &bodies {
            assert_eq!(
                b["access_token"], bodies[0]["access_token"],
                "round {round}"
            );
            assert_eq!(
                b["refresh_token"], bodies[0]["refresh_token"],
                "round {round}"
            );
            assert_eq!(b["id_token"], bodies[0]["id_token"], "round {round}");
        }
        pair = bodies[0].clone();
        assert_ne!(pair["refresh_token"], rt.as_str(), "rotated");
        // Kept for the grace, sealed: no token of the answer is in the row.
        let used = refresh_row(&app, &rt).await;
        let sealed = used.successor_sealed.expect("the answer is kept");
        let stored = String::from_utf8_lossy(&sealed);
        for token in ["access_token", "refresh_token", "id_token"] {
            assert!(
                !stored.contains(text(&pair, token)),
                "{token} stored in the clear"
            );
        }
        // The same pair works: its access token at UserInfo, its refresh token next round.
        assert_eq!(
            app.userinfo(text(&pair, "access_token")).await.status(),
            200
        );
        // Within the grace, another request with the same token gets nothing and revokes
        // nothing.
        let narrower = app
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("scope", "openid"),
                ],
            )
            .await;
        assert_eq!(error_of(narrower).await, "invalid_grant");
        assert_eq!(
            app.userinfo(text(&pair, "access_token")).await.status(),
            200
        );
        last_used = std::mem::replace(&mut rt, text(&pair, "refresh_token").to_string());
    }
    // Within the grace the last used token still answers the same; after it, a replay
    // revokes the grant.
    let r = refresh(&app, &id, &secret, &last_used, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["refresh_token"],
        rt.as_str()
    );
    app.state.clock.advance(11);
    let r = refresh(&app, &id, &secret, &last_used, None).await;
    assert_eq!(error_of(r).await, "invalid_grant");
    assert_eq!(
        app.userinfo(text(&pair, "access_token")).await.status(),
        401
    );
    assert_eq!(
        error_of(refresh(&app, &id, &secret, &rt, None).await).await,
        "invalid_grant"
    );
}

async fn attack28_concurrent_refreshes_without_grace_a_second_use_is_a_replay(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    for round in 0..ROUNDS {
        let (id, secret, first) = app.user_tokens(&format!("rp{round}")).await;
        let rt = text(&first, "refresh_token");
        if round == 0 {
            // One after the other: the second use is a replay. The grant lives as long as
            // its newest refresh token, and once revoked as long as its access tokens can.
            let expiry = |row: sigil::storage::grants::RefreshRow| row.expires_at;
            let grant = grant_of(&app, rt).await;
            assert_eq!(grant.expires_at, expiry(refresh_row(&app, rt).await));
            let r = refresh(&app, &id, &secret, rt, None).await;
            assert_eq!(r.status(), 200);
            let second: Value = r.json().await.unwrap();
            let newer = text(&second, "refresh_token");
            assert!(
                refresh_row(&app, rt).await.successor_sealed.is_none(),
                "nothing kept"
            );
            let moved = grant_of(&app, rt).await.expires_at;
            assert_eq!(moved, expiry(refresh_row(&app, newer).await));
            app.state.clock.advance(5);
            assert_eq!(
                error_of(refresh(&app, &id, &secret, rt, None).await).await,
                "invalid_grant"
            );
            let revoked = grant_of(&app, rt).await;
            let at = revoked.revoked_at.expect("revoked as a replay");
            let horizon = sigil::web::flow::grant_horizon(&app.state.settings);
            assert_eq!(revoked.expires_at, at + horizon);
            assert!(revoked.expires_at < moved);
            assert_eq!(
                app.userinfo(text(&second, "access_token")).await.status(),
                401
            );
            assert_eq!(
                error_of(refresh(&app, &id, &secret, newer, None).await).await,
                "invalid_grant"
            );
            continue;
        }
        // At once: one rotation, and the others are replays of a used token.
        let request = token_request(&app, &id, &secret, &refresh_form(rt)).await;
        let answers = fire_same(&app, request, AT_ONCE).await;
        let won = the_one_winner(&answers, round);
        assert_eq!(app.userinfo(text(&won, "access_token")).await.status(), 401);
    }
}

async fn attack28_a_replayed_public_code_without_the_verifier_revokes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    app.web_client(
        "spa",
        json!({"token_endpoint_auth_method": "none", "skip_consent": true}),
    );
    let (other, other_secret) = app.web_client("other", json!({"skip_consent": true}));
    let code = app
        .code_for(
            &Browser::new(),
            "spa",
            &[("scope", "openid offline_access")],
        )
        .await;
    let redeem = |verifier: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "spa"),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        let app = &app;
        async move { token_request(app, "spa", "", &form).await }
    };
    let r = instant::fire(&tcp_address(&app), vec![redeem(Some(VERIFIER)).await]).await;
    assert_eq!(r[0].status, 200, "{:?}", r[0]);
    let tokens = json_of(&r[0]);
    let at = text(&tokens, "access_token");

    // Whoever holds the used code, without the verifier (or with a wrong one), cannot have the
    // victim's grant revoked.
    const WRONG: &str = "wrong-verifier-wrong-verifier-wrong-verifier-0";
    for round in 0..ROUNDS {
        let mut requests = Vec::with_capacity(AT_ONCE);
        for i in 0..AT_ONCE {
            requests.push(redeem((i % 2 == 0).then_some(WRONG)).await);
        }
        let answers = instant::fire(&tcp_address(&app), requests).await;
        assert_invalid_grant(&answers, round);
        assert_eq!(app.userinfo(at).await.status(), 200, "round {round}");
    }
    // Nor can another client, authenticated.
    let r = app
        .exchange(&other, &other_secret, &code, Some(VERIFIER))
        .await;
    assert_eq!(error_of(r).await, "invalid_grant");
    assert_eq!(app.userinfo(at).await.status(), 200);
    // The victim's refresh token still works.
    let r = app
        .http
        .post(app.endpoint("token_endpoint").await)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", text(&tokens, "refresh_token")),
            ("client_id", "spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    // The owner, with the right verifier, replaying it: that is a replay (RFC 6749 §4.1.2).
    let r = instant::fire(&tcp_address(&app), vec![redeem(Some(VERIFIER)).await]).await;
    assert_eq!(json_of(&r[0])["error"], "invalid_grant");
    assert_eq!(app.userinfo(at).await.status(), 401);
    assert_eq!(
        app.userinfo(text(&refreshed, "access_token"))
            .await
            .status(),
        401
    );
}

async fn attack29_bogus_codes_never_flush_the_introspection_cache(backend: Backend) {
    // Only this node's own invalidation can empty the cache within the test.
    let app = spawn_app_with(backend, |s| {
        s.tokens.revocation_poll = sigil::config::DurationSetting::from_secs(60)
    })
    .await;
    app.add_user("alice");
    let (id, secret) = app.web_client("rp", json!({"skip_consent": true}));
    app.web_client(
        "spa",
        json!({"token_endpoint_auth_method": "none", "skip_consent": true}),
    );
    let (rs, rs_secret) = app.cc_client("resource-server");
    let code = app
        .code_for(&Browser::new(), &id, &[("scope", "openid")])
        .await;
    let tokens: Value = app
        .exchange(&id, &secret, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let at = text(&tokens, "access_token");
    assert_eq!(active(&app, &rs, &rs_secret, at).await["active"], true);
    let cached = app.state.verdicts.len();
    assert!(cached >= 1, "the answer is cached");

    // Floods of requests that fail: bogus codes as a public client, bogus refresh tokens,
    // the used code from someone who is not its owner.
    for round in 0..ROUNDS {
        let mut requests = Vec::with_capacity(AT_ONCE);
        for i in 0..AT_ONCE {
            let bogus = format!("bogus-{round}-{i}");
            let form: Vec<(&str, &str)> = match i % 3 {
                0 => vec![
                    ("grant_type", "authorization_code"),
                    ("code", &bogus),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                    ("client_id", "spa"),
                ],
                1 => vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &bogus),
                    ("client_id", "spa"),
                ],
                _ => vec![
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                    ("client_id", "spa"),
                ],
            };
            requests.push(token_request(&app, "spa", "", &form).await);
        }
        let answers = instant::fire(&tcp_address(&app), requests).await;
        assert_invalid_grant(&answers, round);
        assert_eq!(
            app.state.verdicts.len(),
            cached,
            "round {round}: the cache survived"
        );
    }
    assert_eq!(active(&app, &rs, &rs_secret, at).await["active"], true);

    // A real replay, by the owner, revokes the grant and drops the cached answers at once.
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(error_of(r).await, "invalid_grant");
    assert_eq!(app.state.verdicts.len(), 0, "dropped by the revocation");
    assert_eq!(active(&app, &rs, &rs_secret, at).await["active"], false);
}
