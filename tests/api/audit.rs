//! The stored audit log: every change by CLI and admin API, sign-ins and their failures and
//! lockouts, second-factor and consent changes, token replays and key rotations are events with
//! actor, target and client address; `sigil audit list` and `GET /admin/api/audit` read them;
//! the maintenance purge drops them after `audit.retention`; no secret is ever in one.

use serde_json::{json, Value};

use crate::account::{account_page, post};
use crate::admin_api::admin_token;
use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD};
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::second_factors::totp_at;
use sigil::storage::audit::{self as stored, EventRow, Filter};

mod reading;
mod tokens_and_keys;

both_backends!(
    cli_changes_are_events_by_cli_and_audit_list_filters_them,
    sign_ins_failures_and_lockouts_are_events_with_the_client_address,
    account_factor_changes_and_consent_given_and_withdrawn_are_events_of_the_user,
);

/// Every stored event, newest first.
pub(crate) async fn events(app: &TestApp) -> Vec<EventRow> {
    let filter = Filter {
        limit: stored::MAX_LIMIT,
        ..Filter::default()
    };
    app.state
        .db
        .run(move |c| stored::list(c, &filter))
        .await
        .unwrap()
}

/// The newest event of `kind`, or a panic listing what there is.
pub(crate) fn find<'a>(all: &'a [EventRow], kind: &str) -> &'a EventRow {
    all.iter()
        .find(|e| e.event_type == kind)
        .unwrap_or_else(|| {
            let kinds: Vec<_> = all.iter().map(|e| e.event_type.as_str()).collect();
            panic!("no {kind} event among {kinds:?}")
        })
}

pub(crate) fn details(e: &EventRow) -> Value {
    serde_json::from_str(&e.details).unwrap()
}

/// Every stored event as one text, to look for secrets in.
pub(crate) fn dump(all: &[EventRow]) -> String {
    all.iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn assert_no_secret(all: &[EventRow], secrets: &[&str]) {
    let text = dump(all);
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "{secret:?} is in an audit event");
    }
}

pub(crate) fn run_ok(app: &TestApp, args: &[&str], stdin: Option<&str>) -> String {
    let out = app.sigil(args, stdin);
    assert!(
        out.status.success(),
        "sigil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn listed(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "list", "--json"];
    all.extend_from_slice(args);
    let out: Value = serde_json::from_str(&run_ok(app, &all, None)).unwrap();
    out.as_array().expect("one JSON array").clone()
}

async fn cli_changes_are_events_by_cli_and_audit_list_filters_them(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    run_ok(
        &app,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("another long passphrase"),
    );
    for cmd in ["disable", "enable", "unlock"] {
        run_ok(&app, &["user", cmd, "alice"], None);
    }
    let totp: Value =
        serde_json::from_str(&run_ok(&app, &["user", "totp", "add", "alice"], None)).unwrap();
    let codes: Value =
        serde_json::from_str(&run_ok(&app, &["user", "recovery-codes", "alice"], None)).unwrap();
    run_ok(&app, &["user", "totp", "remove", "alice"], None);
    let (_, client_secret) = app.web_client("rp", json!({}));
    run_ok(&app, &["client", "remove", "rp"], None);
    let resource = json!({"resource": "https://api.example/", "scope": "api:read"});
    run_ok(
        &app,
        &["resource", "add", "--metadata", "-"],
        Some(&resource.to_string()),
    );
    run_ok(&app, &["resource", "remove", "https://api.example/"], None);
    app.add_user("bob");
    run_ok(&app, &["user", "remove", "bob"], None);

    let all = events(&app).await;
    for (kind, target) in [
        ("user.created", "alice"),
        ("user.password_changed", "alice"),
        ("user.disabled", "alice"),
        ("user.enabled", "alice"),
        ("user.unlocked", "alice"),
        ("factor.totp_added", "alice"),
        ("factor.recovery_codes_issued", "alice"),
        ("factor.totp_removed", "alice"),
        ("client.added", "rp"),
        ("client.removed", "rp"),
        ("resource.added", "https://api.example/"),
        ("resource.removed", "https://api.example/"),
        ("user.removed", "bob"),
    ] {
        let e = all
            .iter()
            .find(|e| e.event_type == kind && e.target.as_deref() == Some(target))
            .unwrap_or_else(|| panic!("no {kind} on {target} in {}", dump(&all)));
        assert_eq!((e.actor_kind.as_str(), e.actor.as_str()), ("cli", "cli"));
        assert_eq!(e.outcome, "success");
        assert_eq!(e.client_address, None, "the CLI has no client address");
    }
    // A change that fails stores nothing.
    assert!(!app
        .sigil(&["user", "disable", "nobody"], None)
        .status
        .success());
    assert!(!app
        .sigil(&["client", "remove", "rp"], None)
        .status
        .success());
    assert_eq!(events(&app).await.len(), all.len());

    // `sigil audit list`: newest first, filtered by type, actor, target, time and count.
    let json = listed(&app, &[]);
    assert_eq!(json.len(), all.len());
    assert_eq!(json[0]["id"], all[0].id);
    assert_eq!(json[0]["type"], "user.removed");
    assert!(json[0]["time"].as_str().unwrap().ends_with('Z'));
    let disabled = listed(&app, &["--type", "user.disabled"]);
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["target"], "alice");
    assert_eq!(
        listed(&app, &["--target", "bob"])
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["user.removed", "user.created"]
    );
    assert_eq!(listed(&app, &["--actor", "cli"]).len(), all.len());
    assert!(listed(&app, &["--actor", "alice"]).is_empty());
    assert_eq!(listed(&app, &["--since", "1h"]).len(), all.len());
    assert_eq!(listed(&app, &["--limit", "2"]).len(), 2);
    app.add_user("carol");

    // The table: a header and one line per event.
    let table = run_ok(&app, &["audit", "list", "--type", "user.created"], None);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("OUTCOME"),
        "{table}"
    );
    assert_eq!(lines.len(), 1 + 3, "{table}");
    assert!(
        lines[1].contains("carol") && lines[1].contains(" cli "),
        "{table}"
    );
    // Bad filters: a clear message, exit status 2.
    for bad in [
        &["audit", "list", "--type", "user.nope"][..],
        &["audit", "list", "--since", "soon"],
        &["audit", "list", "--limit", "0"],
    ] {
        let out = app.sigil(bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }

    let secret = totp["secret"].as_str().unwrap();
    let code = codes["codes"][0].as_str().unwrap();
    assert_no_secret(
        &events(&app).await,
        &[
            PASSWORD,
            "another long passphrase",
            secret,
            code,
            &client_secret,
        ],
    );
}

/// Signs in at `id` in a new browser with `password`; the login answer.
async fn try_password(app: &TestApp, id: &str, username: &str, password: &str) -> u16 {
    let b = Browser::new();
    let r = app.start(&b, id, &[]).await;
    let r = app
        .submit_login(&b, &location(&r), username, password)
        .await;
    r.status().as_u16()
}

async fn sign_ins_failures_and_lockouts_are_events_with_the_client_address(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.max_failures = 2).await;
    let alice = app.add_user("alice");
    let (id, _) = app.web_client("rp", json!({"skip_consent": true}));
    assert_eq!(try_password(&app, &id, "alice", PASSWORD).await, 303);
    let all = events(&app).await;
    let ok = find(&all, "signin.succeeded");
    assert_eq!(ok.actor_kind, "user");
    assert_eq!(ok.actor, alice["id"].as_str().unwrap());
    assert_eq!(ok.actor_name.as_deref(), Some("alice"));
    assert_eq!(ok.target.as_deref(), Some("alice"));
    assert_eq!(ok.client_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(details(ok)["amr"], json!(["pwd"]));

    // An unknown name: counted by the throttle, logged, but not stored — anyone anywhere can
    // make such failures, and the table would grow with every address an attacker has.
    let before = events(&app).await.len();
    assert_eq!(
        try_password(&app, &id, "nobody", "wrong guess 1").await,
        401
    );
    assert_eq!(events(&app).await.len(), before);
    // The address slot of that failure is held: one more failure fills it and alice's first.
    assert_eq!(try_password(&app, &id, "alice", "wrong guess 2").await, 401);
    let all = events(&app).await;
    let locked = find(&all, "signin.locked");
    assert_eq!(locked.actor, alice["id"].as_str().unwrap());
    assert_eq!(locked.client_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(locked.outcome, "failure");
    assert_eq!(details(locked)["method"], "password");
    assert!(
        details(locked)["locked"]
            .as_array()
            .unwrap()
            .contains(&json!("address")),
        "{}",
        locked.details
    );
    // While locked: 429, and no event per refusal (nothing was checked).
    let before = all.len();
    assert_eq!(try_password(&app, &id, "alice", PASSWORD).await, 429);
    assert_eq!(events(&app).await.len(), before);

    // Unlocked by the admin API: the calling client is the actor.
    let token = admin_token(&app).await;
    let r = app
        .http
        .post(app.url("/admin/api/users/alice/unlock"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let all = events(&app).await;
    let unlocked = find(&all, "user.unlocked");
    assert_eq!(
        (unlocked.actor_kind.as_str(), unlocked.actor.as_str()),
        ("client", "ops")
    );
    assert_eq!(unlocked.target.as_deref(), Some("alice"));
    assert_eq!(unlocked.client_address.as_deref(), Some("127.0.0.1"));
    assert_no_secret(&all, &[PASSWORD, "wrong guess 1", "wrong guess 2", &token]);
}

async fn account_factor_changes_and_consent_given_and_withdrawn_are_events_of_the_user(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.add_user("alice");
    let alice_id = alice["id"].as_str().unwrap();
    let (id, secret) = app.web_client("rp", json!({}));
    // Consent given at the consent page (the client has no skip_consent).
    let tokens = crate::logout::sign_in(
        &app,
        &Browser::new(),
        &id,
        &secret,
        "alice",
        &[("scope", "openid email offline_access")],
    )
    .await;
    let all = events(&app).await;
    let given = find(&all, "consent.given");
    assert_eq!(given.actor, alice_id);
    assert_eq!(given.target.as_deref(), Some("rp"));
    assert_eq!(given.client_address.as_deref(), Some("127.0.0.1"));
    assert!(
        details(given)["scope"]
            .as_str()
            .unwrap()
            .contains("offline_access"),
        "{}",
        given.details
    );

    // An authenticator app turned on at /account.
    let me = Browser::new();
    let html = account_page(&app, &me, PASSWORD).await;
    let r = post(&app, &me, "/account/totp/start", &html, &[]).await;
    assert_eq!(query(&location(&r))["done"], "totp-started");
    let html = me.get(&app.url("/account")).await.text().await.unwrap();
    let start = html.find("id=\"totp-secret\">").unwrap() + 17;
    let key = html[start..start + html[start..].find('<').unwrap()].to_string();
    let code = totp_at(&key, app.state.clock.now());
    let r = post(&app, &me, "/account/totp/confirm", &html, &[("otp", &code)]).await;
    assert_eq!(query(&location(&r))["done"], "totp-added");
    let all = events(&app).await;
    for kind in ["factor.totp_started", "factor.totp_added"] {
        let e = find(&all, kind);
        assert_eq!(
            (e.actor_kind.as_str(), e.actor.as_str()),
            ("user", alice_id)
        );
        assert_eq!(e.target.as_deref(), Some("alice"));
        assert_eq!(e.client_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(details(e)["via"], "account");
    }

    // Consent withdrawn at /account.
    let html = me.get(&app.url("/account")).await.text().await.unwrap();
    let r = post(
        &app,
        &me,
        "/account/apps/withdraw",
        &html,
        &[("client_id", "rp")],
    )
    .await;
    assert_eq!(query(&location(&r))["done"], "consent");
    let all = events(&app).await;
    let withdrawn = find(&all, "consent.withdrawn");
    assert_eq!(withdrawn.actor, alice_id);
    assert_eq!(withdrawn.target.as_deref(), Some("rp"));
    assert_eq!(details(withdrawn)["grants_revoked"], 1);
    // Withdrawing what is not given changes nothing and records nothing.
    let html = me.get(&app.url("/account")).await.text().await.unwrap();
    let r = post(
        &app,
        &me,
        "/account/apps/withdraw",
        &html,
        &[("client_id", "rp")],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(events(&app).await.len(), all.len());

    assert_no_secret(
        &all,
        &[
            PASSWORD,
            &key,
            &code,
            &secret,
            tokens["refresh_token"].as_str().unwrap(),
            tokens["access_token"].as_str().unwrap(),
            &hidden(&html, "csrf_token"),
        ],
    );
}
