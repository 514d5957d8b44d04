//! Groups (DESIGN.md "Groups"): the CLI, the `groups` scope and claim in every place it
//! appears (ID token, UserInfo, access token, introspection), a client's `groups_filter`, and
//! what removing users and groups does to memberships. The admin API is in `admin_api`.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, Backend, TestApp};
use crate::refresh_and_userinfo::refresh;

mod admin_api;

both_backends!(
    groups_cli_round_trip,
    groups_claim_in_every_place_with_the_scope,
    groups_claim_absent_without_the_scope,
    groups_filter_limits_what_a_client_sees_everywhere,
    groups_filter_is_checked_at_registration,
    membership_change_shows_in_the_next_refresh,
    resource_tokens_carry_groups_only_when_the_resource_accepts_the_scope,
    removing_a_user_or_a_group_removes_memberships,
);

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `sigil ARGS` and requires success; returns standard output as JSON when it is JSON.
fn sigil_ok(app: &TestApp, args: &[&str]) -> Value {
    let out = app.sigil(args, None);
    assert!(
        out.status.success(),
        "sigil {args:?} failed ({:?}): {}",
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Runs `sigil ARGS`, requires exit status 2 and returns the message.
fn sigil_refused(app: &TestApp, args: &[&str]) -> String {
    let out = app.sigil(args, None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "sigil {args:?}: {}",
        stderr(&out)
    );
    stderr(&out)
}

/// alice in `ops`, `app-viewers` and `app-editors`; bob in `app-viewers`; `team/platform`
/// empty.
fn groups_for_alice(app: &TestApp) {
    app.add_user("alice");
    app.add_user("bob");
    for g in ["ops", "app-viewers", "app-editors", "team/platform"] {
        sigil_ok(app, &["group", "add", g]);
    }
    for g in ["ops", "app-viewers", "app-editors"] {
        sigil_ok(app, &["group", "member", "add", g, "alice"]);
    }
    sigil_ok(app, &["group", "member", "add", "app-viewers", "bob"]);
}

fn names(v: &[&str]) -> Value {
    json!(v)
}

async fn groups_cli_round_trip(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let made = sigil_ok(&app, &["group", "add", "ops"]);
    assert_eq!(made["name"], "ops");
    assert_eq!(made["members"], 0);
    assert!(made["created_at"].is_i64());
    // Duplicates and bad names are refused in words, exit status 2, nothing stored.
    assert!(sigil_refused(&app, &["group", "add", "ops"]).contains("already exists"));
    let long = "g".repeat(65);
    for bad in ["", "two words", "-x", "émigré", "a,b", long.as_str()] {
        let said = sigil_refused(&app, &["group", "add", "--", bad]);
        assert!(said.contains("not valid"), "{bad:?}: {said}");
    }
    let listed = sigil_ok(&app, &["group", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Members: unknown user or group refused; adding twice changes nothing.
    sigil_ok(&app, &["group", "member", "add", "ops", "alice"]);
    let again = app.sigil(&["group", "member", "add", "ops", "alice"], None);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("already a member"),
        "{}",
        stderr(&again)
    );
    assert!(sigil_refused(&app, &["group", "member", "add", "ops", "nobody"]).contains("no user"));
    assert!(sigil_refused(&app, &["group", "member", "add", "nope", "alice"]).contains("no group"));
    let members = sigil_ok(&app, &["group", "members", "ops", "--json"]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["username"], "alice");
    sigil_ok(&app, &["group", "add", "app:viewers"]);
    let listed = sigil_ok(&app, &["group", "list", "--json"]);
    assert_eq!(listed[0]["name"], "app:viewers");
    assert_eq!(listed[0]["members"], 0);
    assert_eq!(listed[1]["name"], "ops");
    assert_eq!(listed[1]["members"], 1);
    let table = app.sigil(&["group", "list"], None);
    assert!(String::from_utf8_lossy(&table.stdout).contains("app:viewers"));
    assert_eq!(
        sigil_ok(&app, &["user", "show", "alice"])["groups"],
        names(&["ops"])
    );

    // Rename: the members follow; a taken, bad or unknown name is refused.
    sigil_ok(&app, &["group", "rename", "ops", "sre"]);
    assert!(sigil_refused(&app, &["group", "rename", "sre", "app:viewers"]).contains("already"));
    assert!(sigil_refused(&app, &["group", "rename", "sre", "s r e"]).contains("not valid"));
    assert!(sigil_refused(&app, &["group", "rename", "ops", "x"]).contains("no group"));
    assert_eq!(
        sigil_ok(&app, &["user", "show", "alice"])["groups"],
        names(&["sre"])
    );
    assert!(sigil_refused(&app, &["group", "members", "ops"]).contains("no group"));

    // Removing a membership that is not there is an error.
    sigil_ok(&app, &["group", "member", "remove", "sre", "alice"]);
    assert!(
        sigil_refused(&app, &["group", "member", "remove", "sre", "alice"])
            .contains("not a member")
    );
    assert_eq!(
        sigil_ok(&app, &["user", "show", "alice"])["groups"],
        names(&[])
    );
    sigil_ok(&app, &["group", "remove", "sre"]);
    assert!(sigil_refused(&app, &["group", "remove", "sre"]).contains("no group"));
    let listed = sigil_ok(&app, &["group", "list", "--json"]);
    assert_eq!(
        listed,
        json!([{"name": "app:viewers", "members": 0, "created_at": listed[0]["created_at"]}])
    );
}

/// A web client registered for `groups` (plus `extra` metadata) and alice's tokens for
/// `scope`: (client id, secret, token response).
async fn tokens(
    app: &TestApp,
    client_id: &str,
    extra: Value,
    scope: &str,
) -> (String, String, Value) {
    let mut metadata = json!({"scope": "openid profile groups offline_access"});
    for (k, v) in extra.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    let (id, secret) = app.web_client(client_id, metadata);
    let code = app
        .code_for(&Browser::new(), &id, &[("scope", scope)])
        .await;
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    (id, secret, r.json().await.unwrap())
}

/// The `groups` of the ID token, the access token, UserInfo, introspection of the access token
/// by a resource server and of the refresh token by its holder (Null where absent).
async fn every_place(app: &TestApp, id: &str, secret: &str, t: &Value) -> [Value; 5] {
    let (_, idt) = jwt_parts(t["id_token"].as_str().unwrap());
    let at = t["access_token"].as_str().unwrap();
    let (_, atc) = jwt_parts(at);
    let r = app.userinfo(at).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["sub"], idt["sub"]);
    let (rs, rs_secret) = resource_server(app);
    let at_intro = app.introspect(&rs, &rs_secret, at).await;
    assert_eq!(at_intro["active"], true);
    let rt_intro = app
        .introspect(id, secret, t["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(rt_intro["active"], true);
    assert_eq!(rt_intro["token_type"], "refresh_token");
    [
        idt["groups"].clone(),
        atc["groups"].clone(),
        info["groups"].clone(),
        at_intro["groups"].clone(),
        rt_intro["groups"].clone(),
    ]
}

/// A resource server that introspects (registered once per app).
fn resource_server(app: &TestApp) -> (String, String) {
    let path = app.dir.path().join("rs.secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return ("rs".into(), secret);
    }
    let (id, secret) = app.cc_client("rs");
    std::fs::write(&path, &secret).unwrap();
    (id, secret)
}

async fn groups_claim_in_every_place_with_the_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = app.discovery().await;
    assert!(doc["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("groups")));
    assert!(doc["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("groups")));
    groups_for_alice(&app);
    let (id, secret, t) = tokens(&app, "rp", json!({}), "openid groups offline_access").await;
    let expected = names(&["app-editors", "app-viewers", "ops"]);
    for (place, got) in every_place(&app, &id, &secret, &t).await.iter().enumerate() {
        assert_eq!(got, &expected, "place {place}");
    }
    assert!(t["scope"].as_str().unwrap().contains("groups"));
}

async fn groups_claim_absent_without_the_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    groups_for_alice(&app);
    let (id, secret, t) = tokens(&app, "rp", json!({}), "openid profile offline_access").await;
    for (place, got) in every_place(&app, &id, &secret, &t).await.iter().enumerate() {
        assert_eq!(got, &Value::Null, "place {place}");
    }
    // The same client with the scope gets them (the client is not the reason).
    let code = app
        .code_for(
            &Browser::new(),
            &id,
            &[("scope", "openid groups offline_access")],
        )
        .await;
    let t: Value = app
        .exchange(&id, &secret, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let (_, idt) = jwt_parts(t["id_token"].as_str().unwrap());
    assert_eq!(idt["groups"], names(&["app-editors", "app-viewers", "ops"]));
}

async fn groups_filter_limits_what_a_client_sees_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    groups_for_alice(&app);
    let (id, secret, t) = tokens(
        &app,
        "grafana",
        json!({"groups_filter": "app-"}),
        "openid groups offline_access",
    )
    .await;
    for (place, got) in every_place(&app, &id, &secret, &t).await.iter().enumerate() {
        assert_eq!(
            got,
            &names(&["app-editors", "app-viewers"]),
            "place {place}"
        );
    }
    // A filter nothing matches: an empty list, not every group.
    let (id, secret, t) = tokens(
        &app,
        "other",
        json!({"groups_filter": "k8s:"}),
        "openid groups offline_access",
    )
    .await;
    for (place, got) in every_place(&app, &id, &secret, &t).await.iter().enumerate() {
        assert_eq!(got, &names(&[]), "place {place}");
    }
}

async fn groups_filter_is_checked_at_registration(backend: Backend) {
    let app = spawn_app(backend).await;
    let base = json!({"grant_types": ["client_credentials"]});
    for bad in [
        json!(""),
        json!("a b"),
        json!("-x"),
        json!(7),
        json!(["app-"]),
    ] {
        let mut m = base.clone();
        m["groups_filter"] = bad.clone();
        let out = app.sigil(
            &["client", "add", "--client-id", "c1", "--metadata", "-"],
            Some(&m.to_string()),
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid_client_metadata"),
            "{bad}"
        );
        assert_eq!(
            app.sigil(&["client", "show", "c1"], None).status.code(),
            Some(2)
        );
    }
    let mut m = base.clone();
    m["groups_filter"] = json!("grafana:");
    let added = app.register_client("c1", &m);
    assert_eq!(added["groups_filter"], "grafana:");
    assert_eq!(
        sigil_ok(&app, &["client", "show", "c1"])["groups_filter"],
        "grafana:"
    );
}

async fn membership_change_shows_in_the_next_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    groups_for_alice(&app);
    let (id, secret, first) = tokens(&app, "rp", json!({}), "openid groups offline_access").await;
    sigil_ok(&app, &["group", "member", "remove", "ops", "alice"]);
    sigil_ok(&app, &["group", "member", "add", "team/platform", "alice"]);
    // Tokens already issued keep the groups they were issued with.
    let at = first["access_token"].as_str().unwrap();
    let info: Value = app.userinfo(at).await.json().await.unwrap();
    assert_eq!(
        info["groups"],
        names(&["app-editors", "app-viewers", "ops"])
    );
    // The next refresh reads them again.
    let r = refresh(
        &app,
        &id,
        &secret,
        first["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let now = names(&["app-editors", "app-viewers", "team/platform"]);
    for (place, got) in every_place(&app, &id, &secret, &second)
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(got, &now, "place {place}");
    }
    // Renaming and removing a group show too.
    sigil_ok(&app, &["group", "rename", "app-viewers", "viewers"]);
    sigil_ok(&app, &["group", "remove", "app-editors"]);
    let r = refresh(
        &app,
        &id,
        &secret,
        second["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    let third: Value = r.json().await.unwrap();
    let (_, idt) = jwt_parts(third["id_token"].as_str().unwrap());
    assert_eq!(idt["groups"], names(&["team/platform", "viewers"]));
}

async fn resource_tokens_carry_groups_only_when_the_resource_accepts_the_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    groups_for_alice(&app);
    for (uri, scope) in [
        ("https://k8s.example/", "groups profile"),
        ("https://api.example/", "profile"),
    ] {
        sigil_ok_stdin(
            &app,
            &["resource", "add", "--metadata", "-"],
            &json!({"resource": uri, "scope": scope}).to_string(),
        );
    }
    let (id, secret, t) = tokens(
        &app,
        "rp",
        json!({}),
        "openid profile groups offline_access",
    )
    .await;
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    for (uri, expected) in [
        (
            "https://k8s.example/",
            names(&["app-editors", "app-viewers", "ops"]),
        ),
        ("https://api.example/", Value::Null),
    ] {
        let r = app
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("resource", uri),
                ],
            )
            .await;
        assert_eq!(r.status(), 200, "{uri}");
        let body: Value = r.json().await.unwrap();
        let (_, at) = jwt_parts(body["access_token"].as_str().unwrap());
        assert_eq!(at["aud"], uri);
        assert_eq!(at["groups"], expected, "{uri}");
        rt = body["refresh_token"].as_str().unwrap().to_string();
    }
}

fn sigil_ok_stdin(app: &TestApp, args: &[&str], stdin: &str) -> Value {
    let out = app.sigil(args, Some(stdin));
    assert!(out.status.success(), "sigil {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Rows of `group_members`, counted in the database itself.
async fn memberships(app: &TestApp) -> i64 {
    use sigil::storage::schema::group_members::dsl;
    app.state
        .db
        .run(|conn| {
            dsl::group_members
                .count()
                .get_result::<i64>(conn)
                .map_err(sigil::storage::StorageError::from)
        })
        .await
        .unwrap()
}

async fn removing_a_user_or_a_group_removes_memberships(backend: Backend) {
    let app = spawn_app(backend).await;
    groups_for_alice(&app);
    assert_eq!(memberships(&app).await, 4);
    // Removing a user removes their memberships (alice: 3), and nobody else's.
    sigil_ok(&app, &["user", "remove", "alice"]);
    assert_eq!(memberships(&app).await, 1);
    let listed = sigil_ok(&app, &["group", "list", "--json"]);
    let count = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap()["members"]
            .clone()
    };
    assert_eq!(count("ops"), 0);
    assert_eq!(count("app-viewers"), 1);
    // Removing a group removes its memberships; a new group of the same name starts empty.
    sigil_ok(&app, &["group", "remove", "app-viewers"]);
    assert_eq!(memberships(&app).await, 0);
    sigil_ok(&app, &["group", "add", "app-viewers"]);
    assert_eq!(
        sigil_ok(&app, &["group", "members", "app-viewers", "--json"]),
        json!([])
    );
    assert_eq!(
        sigil_ok(&app, &["user", "show", "bob"])["groups"],
        names(&[])
    );
}
