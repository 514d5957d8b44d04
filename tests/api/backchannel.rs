//! Back-channel logout (OIDC Back-Channel Logout 1.0): a receiver on 127.0.0.1 checks every
//! claim of the logout token; only the clients that took part hear of a session's end; slow or
//! failing receivers never delay the logout page; private networks are refused by default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::both_backends;
use crate::flow::Browser;
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp};
use crate::logout::{assert_signed_out_page, end_session_url, id_token, sign_in, signed_in};

both_backends!(
    oidcc_backchannel_logout_token_claims_reach_every_participant_and_no_one_else,
    backchannel_slow_or_failing_receivers_do_not_delay_the_logout_page,
    backchannel_to_a_private_network_is_refused_by_default,
    backchannel_a_rejected_token_is_not_retried,
    backchannel_for_every_session_when_a_user_is_logged_out_everywhere,
);

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    method: String,
    path: String,
    content_type: String,
    form: HashMap<String, String>,
}

/// A back-channel receiver on 127.0.0.1: records each request as it arrives, holds it until
/// released (when `hold`), then answers `status`.
pub(crate) struct Receiver {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    release: watch::Sender<bool>,
}

impl Receiver {
    pub(crate) async fn start(status: u16, hold: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = watch::channel(!hold);
        let recorded = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (hits, released) = (recorded.clone(), released.clone());
                tokio::spawn(serve(stream, hits, released, status));
            }
        });
        Self {
            base,
            hits,
            release,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn release(&self) {
        self.release.send_replace(true);
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests have arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..500 {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} request(s) expected, got {:?}", self.hits());
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    hits: Arc<Mutex<Vec<Hit>>>,
    mut released: watch::Receiver<bool>,
    status: u16,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let form = url::form_urlencoded::parse(&buf[header_end..header_end + length])
        .into_owned()
        .collect();
    hits.lock().unwrap().push(Hit {
        method: method.to_string(),
        path: path.to_string(),
        content_type: header("content-type").unwrap_or_default(),
        form,
    });
    let _ = released.wait_for(|r| *r).await;
    let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Every claim of a logout token (Back-Channel Logout 1.0 §2.4, §2.6) against what the client
/// knows: the JWKS, its client_id, and its ID token's `sub` and `sid`.
fn check_logout_token(app: &TestApp, jwks: &Value, hit: &Hit, client_id: &str, id_token: &str) {
    assert_eq!(hit.method, "POST");
    assert!(
        hit.content_type
            .starts_with("application/x-www-form-urlencoded"),
        "{}",
        hit.content_type
    );
    assert_eq!(hit.form.len(), 1, "only logout_token: {:?}", hit.form);
    let token = &hit.form["logout_token"];
    let (id_header, id_claims) = jwt_parts(id_token);
    let alg = id_header["alg"].as_str().unwrap();
    verify_with_jwks(token, jwks, alg).expect("signed by a key in the JWKS");
    let (header, claims) = jwt_parts(token);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["alg"], alg, "the client's ID token algorithm");
    assert_eq!(claims["iss"], app.issuer());
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a == client_id),
        _ => false,
    };
    assert!(aud_ok, "aud ∋ {client_id}: {claims}");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((iat - app.state.clock.now()).abs() < 300, "iat is now");
    assert!(exp > iat && exp - iat <= 300, "a short lifetime");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert!(claims["sid"].is_string());
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "no nonce");
}

async fn oidcc_backchannel_logout_token_claims_reach_every_participant_and_no_one_else(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.outbound.allow_private_networks = true).await;
    let receiver = Receiver::start(200, false).await;
    let (a, a_secret) =
        app.web_client("a", json!({ "backchannel_logout_uri": receiver.url("/a") }));
    let (b, b_secret) = app.web_client(
        "b",
        json!({
            "backchannel_logout_uri": receiver.url("/b"),
            "id_token_signed_response_alg": "ES256",
            "skip_consent": true,
        }),
    );
    let (c, c_secret) = app.web_client(
        "c",
        json!({ "backchannel_logout_uri": receiver.url("/c"), "skip_consent": true }),
    );
    app.add_user("alice");
    let browser = Browser::new();
    let at_a = id_token(&sign_in(&app, &browser, &a, &a_secret, "alice", &[]).await);
    let at_b = id_token(&sign_in(&app, &browser, &b, &b_secret, "alice", &[]).await);
    assert_eq!(jwt_parts(&at_a).1["sid"], jwt_parts(&at_b).1["sid"], "SSO");
    let url = end_session_url(&app, &[("id_token_hint", &at_a)]).await;
    assert_signed_out_page(browser.get(&url).await, "out").await;
    let jwks = app.jwks().await;
    let hits = receiver.wait_for(2).await;
    let hit = |path: &str| hits.iter().find(|h| h.path == path).cloned();
    check_logout_token(&app, &jwks, &hit("/a").expect("a got one"), &a, &at_a);
    check_logout_token(&app, &jwks, &hit("/b").expect("b got one"), &b, &at_b);
    assert_ne!(
        hit("/a").unwrap().form["logout_token"],
        hit("/b").unwrap().form["logout_token"]
    );

    // Client c took part in another session only: it hears of that one alone.
    let other = Browser::new();
    let at_c = id_token(&sign_in(&app, &other, &c, &c_secret, "alice", &[]).await);
    let url = end_session_url(&app, &[("id_token_hint", &at_c)]).await;
    assert_signed_out_page(other.get(&url).await, "c out").await;
    let hits = receiver.wait_for(3).await;
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths.iter().filter(|p| **p == "/a").count(), 1, "{paths:?}");
    assert_eq!(paths.iter().filter(|p| **p == "/b").count(), 1, "{paths:?}");
    let to_c: Vec<&Hit> = hits.iter().filter(|h| h.path == "/c").collect();
    assert_eq!(to_c.len(), 1, "{paths:?}");
    check_logout_token(&app, &jwks, to_c[0], &c, &at_c);
    assert_ne!(jwt_parts(&at_c).1["sid"], jwt_parts(&at_a).1["sid"]);
}

async fn backchannel_slow_or_failing_receivers_do_not_delay_the_logout_page(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.outbound.allow_private_networks = true;
        s.outbound.backchannel_attempts = 3;
        // A delivery waits far longer than the test would for the logout page.
        s.outbound.timeout = sigil::config::DurationSetting(Duration::from_secs(120));
    })
    .await;
    let slow = Receiver::start(200, true).await;
    let failing = Receiver::start(500, true).await;
    let (a, a_secret) = app.web_client("a", json!({ "backchannel_logout_uri": slow.url("/") }));
    let (b, b_secret) = app.web_client(
        "b",
        json!({ "backchannel_logout_uri": failing.url("/"), "skip_consent": true }),
    );
    app.add_user("alice");
    let browser = Browser::new();
    let hint = id_token(&sign_in(&app, &browser, &a, &a_secret, "alice", &[]).await);
    sign_in(&app, &browser, &b, &b_secret, "alice", &[]).await;
    let url = end_session_url(&app, &[("id_token_hint", &hint)]).await;
    // Neither receiver can answer before the test releases it, and the test releases them
    // only after the logout page has arrived: a logout that waited for them never would.
    let page = tokio::time::timeout(Duration::from_secs(30), browser.get(&url))
        .await
        .expect("the logout page does not wait for the receivers");
    assert_signed_out_page(page, "out").await;
    assert!(!signed_in(&app, &browser, &a).await);
    slow.wait_for(1).await;
    assert_eq!(
        failing.wait_for(1).await.len(),
        1,
        "held: no retry before an answer"
    );
    slow.release();
    failing.release();
    // 500 is retried, up to outbound.backchannel_attempts, with the same token.
    let tries = failing.wait_for(3).await;
    let token = tries[0].form["logout_token"].clone();
    assert!(tries.iter().all(|h| h.form["logout_token"] == token));
    // The same delivery, awaited: it gives up after exactly the configured attempts.
    let claims = jwt_parts(&hint).1;
    let outcome = sigil::web::backchannel::deliver(
        &app.state,
        &b,
        claims["sub"].as_str().unwrap(),
        claims["sid"].as_str().unwrap(),
    )
    .await;
    assert!(
        matches!(
            outcome,
            sigil::web::backchannel::Outcome::Failed { attempts: 3, .. }
        ),
        "{outcome:?}"
    );
    let awaited = failing
        .hits()
        .iter()
        .filter(|h| h.form["logout_token"] != token)
        .count();
    assert_eq!(awaited, 3, "three attempts, no more");
    assert_eq!(slow.hits().len(), 1, "a 200 is not retried");
}

async fn backchannel_to_a_private_network_is_refused_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start(200, false).await;
    let (id, secret) = app.web_client(
        "rp",
        json!({ "backchannel_logout_uri": receiver.url("/bc") }),
    );
    app.add_user("alice");
    let browser = Browser::new();
    let hint = id_token(&sign_in(&app, &browser, &id, &secret, "alice", &[]).await);
    let url = end_session_url(&app, &[("id_token_hint", &hint)]).await;
    assert_signed_out_page(browser.get(&url).await, "out").await;
    // The same delivery, awaited: refused before any connection is made.
    let claims = jwt_parts(&hint).1;
    let outcome = sigil::web::backchannel::deliver(
        &app.state,
        &id,
        claims["sub"].as_str().unwrap(),
        claims["sid"].as_str().unwrap(),
    )
    .await;
    assert!(
        matches!(outcome, sigil::web::backchannel::Outcome::Refused(_)),
        "{outcome:?}"
    );
    assert!(receiver.hits().is_empty(), "nothing reached 127.0.0.1");
}

async fn backchannel_for_every_session_when_a_user_is_logged_out_everywhere(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.outbound.allow_private_networks = true).await;
    let receiver = Receiver::start(200, false).await;
    let (id, secret) = app.web_client(
        "rp",
        json!({ "backchannel_logout_uri": receiver.url("/bc") }),
    );
    let alice = app.add_user("alice");
    let (first, second) = (Browser::new(), Browser::new());
    let one = id_token(&sign_in(&app, &first, &id, &secret, "alice", &[]).await);
    let two = id_token(&sign_in(&app, &second, &id, &secret, "alice", &[]).await);
    let ended = sigil::web::logout::end_every_session(&app.state, alice["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert!(!signed_in(&app, &first, &id).await);
    assert!(!signed_in(&app, &second, &id).await);
    let hits = receiver.wait_for(2).await;
    let jwks = app.jwks().await;
    let sid = |t: &str| jwt_parts(t).1["sid"].clone();
    for token in [&one, &two] {
        let hit = hits
            .iter()
            .find(|h| jwt_parts(&h.form["logout_token"]).1["sid"] == sid(token))
            .expect("one logout token per session");
        check_logout_token(&app, &jwks, hit, &id, token);
    }
}

async fn backchannel_a_rejected_token_is_not_retried(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.outbound.allow_private_networks = true;
        s.outbound.backchannel_attempts = 3;
    })
    .await;
    let receiver = Receiver::start(400, false).await;
    let (id, secret) = app.web_client(
        "rp",
        json!({ "backchannel_logout_uri": receiver.url("/bc") }),
    );
    app.add_user("alice");
    let hint = id_token(&sign_in(&app, &Browser::new(), &id, &secret, "alice", &[]).await);
    let claims = jwt_parts(&hint).1;
    let outcome = sigil::web::backchannel::deliver(
        &app.state,
        &id,
        claims["sub"].as_str().unwrap(),
        claims["sid"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        outcome,
        sigil::web::backchannel::Outcome::Failed {
            attempts: 1,
            reason: "the server answered 400".into()
        }
    );
    assert_eq!(receiver.hits().len(), 1);
}
