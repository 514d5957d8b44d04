//! The account page's own sign-in: the callback's `state`, the fixed first-party client, and
//! the audit lines its changes leave.

use serde_json::{json, Value};

use super::{follow, setup, NEW_PASSWORD};
use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD};
use crate::helpers::{sigil_command, test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{settings_on, ServerProcess};

both_backends!(
    callback_with_a_wrong_or_missing_state_is_refused,
    the_account_client_is_fixed_to_sigils_own_callback,
    every_change_is_an_audit_line_naming_event_user_and_address_never_a_secret,
);

async fn callback_with_a_wrong_or_missing_state_is_refused(backend: Backend) {
    let (app, _, _) = setup(backend).await;
    let b = Browser::new();
    let r = b.get(&app.url("/account")).await;
    let r = b.get(&location(&r)).await;
    let r = app.submit_login(&b, &location(&r), "alice", PASSWORD).await;
    // /authorize/resume → the callback with the code.
    let r = b.get(&location(&r)).await;
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/account/callback?", app.address)),
        "{callback}"
    );
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let forged = k == "state";
            (
                k.into_owned(),
                if forged {
                    "forged".into()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let r = b.get(forged.as_str()).await;
    assert_eq!(r.status(), 400, "a wrong state");
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no account session"
    );
    // Another browser (no pending sign-in) cannot use this browser's answer.
    let r = Browser::new().get(&callback).await;
    assert_eq!(r.status(), 400, "no pending sign-in");
    // The refusals spent nothing: the genuine answer still signs in.
    let r = b.get(&callback).await;
    assert_eq!(r.status(), 303);
    assert_eq!(b.get(&location(&r)).await.status(), 200);
    // The pending sign-in is used once: the same answer again is refused.
    let r = b.get(&callback).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        b.get(&app.url("/account")).await.status(),
        200,
        "the session stands"
    );
}

async fn the_account_client_is_fixed_to_sigils_own_callback(backend: Backend) {
    let (app, _, _) = setup(backend).await;
    let out = app.sigil(&["client", "show", "sigil-account"], None);
    assert!(out.status.success());
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        client["redirect_uris"],
        json!([format!("{}/account/callback", app.issuer())])
    );
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(client["skip_consent"], true);
    assert_eq!(client["scope"], "openid");
    // Another origin cannot have the account client's codes sent to it.
    let b = Browser::new();
    for redirect in [
        "https://evil.example/account/callback",
        &format!("{}/account/callback/", app.issuer()),
    ] {
        let url = app
            .authorize_url(&[
                ("client_id", "sigil-account"),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", "s"),
                ("code_challenge", crate::flow::CHALLENGE),
                ("code_challenge_method", "S256"),
            ])
            .await;
        let r = b.get(&url).await;
        assert_eq!(r.status(), 400, "{redirect}");
        assert!(
            r.headers().get("location").is_none(),
            "never redirected to {redirect}"
        );
    }
    // Without PKCE (a public client) it is refused too.
    let url = app
        .authorize_url(&[
            ("client_id", "sigil-account"),
            (
                "redirect_uri",
                &format!("{}/account/callback", app.issuer()),
            ),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
        ])
        .await;
    let r = b.get(&url).await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");
    // A restart keeps the one registration.
    let out = app.sigil(&["migrate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["client", "list", "--json"], None).stdout).unwrap();
    let ours = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["client_id"] == "sigil-account")
        .count();
    assert_eq!(ours, 1);
}

async fn every_change_is_an_audit_line_naming_event_user_and_address_never_a_secret(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(backend, dir.path());
    let settings = settings_on(settings, free_port());
    let server = ServerProcess::start(&settings, dir.path(), &[]).await;
    let out = sigil_command(
        &settings,
        dir.path(),
        &["user", "add", "alice", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(out.status.success());
    let alice: Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = Browser::new();
    let r = me.get(&server.url("/account")).await;
    let r = follow(&server.address, &me, r, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let csrf = hidden(&r.text().await.unwrap(), "csrf_token");
    let change = |current: &'static str| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("current_password", current.to_string()),
            ("new_password", NEW_PASSWORD.to_string()),
            ("repeat_password", NEW_PASSWORD.to_string()),
        ];
        let url = server.url("/account/password");
        let http = me.http.clone();
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    assert_eq!(change("not my password").await.status(), 401);
    assert_eq!(change(PASSWORD).await.status(), 303);
    let audit: Vec<Value> = server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit")
        .collect();
    let events: Vec<String> = audit
        .iter()
        .map(|l| l.to_string())
        .filter(|l| l.contains(alice["id"].as_str().unwrap()) && l.contains("127.0.0.1"))
        .collect();
    for event in [
        "account.signed_in",
        "account.password_change_refused",
        "account.password_changed",
    ] {
        assert!(
            events.iter().any(|l| l.contains(&format!("\"{event}\""))),
            "{event} with the user and address in {audit:?}"
        );
    }
    let log = server.log_text();
    for secret in [PASSWORD, NEW_PASSWORD, "not my password", csrf.as_str()] {
        assert!(!log.contains(secret), "{secret:?} in the log");
    }
}
