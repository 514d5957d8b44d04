//! `sigil export` / `sigil import` / `sigil backup`, the real binary: a database moved to the
//! other backend keeps its users (old passwords, TOTP, passkeys), clients (old secrets), consents, groups
//! and resource servers, and tokens issued before the move verify against the new JWKS; an
//! import into a database in use, a merge with conflicts, a damaged document or another master
//! key change nothing; a backup taken while the server writes opens with the data.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{location, Browser, REDIRECT, VERIFIER};
use crate::helpers::{
    jwt_parts, sigil_command, spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp,
};
use crate::passkeys::authenticator::SoftKey;
use crate::passkeys::{enrol, existing_user, passkey_app, passwordless_code};
use crate::second_factors::{post_otp, to_second_step, tokens, totp_at};
use sigil::storage::transfer::{row_counts, unplaced_tables};

both_backends!(
    a_database_moved_to_the_other_backend_keeps_sign_ins_secrets_and_tokens,
    import_refuses_a_database_in_use_and_merge_reports_every_conflict_changing_nothing,
    a_damaged_document_or_another_master_key_changes_nothing,
);

const API: &str = "https://api.example.com";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let out = app.sigil(args, stdin);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

fn export(app: &TestApp, name: &str, with_keys: bool) -> std::path::PathBuf {
    let file = app.dir.path().join(name);
    let mut args = vec!["export", "--output", file.to_str().unwrap()];
    if with_keys {
        args.push("--with-keys");
    }
    let out = ok(app, &args, None);
    assert!(stderr(&out).contains("same master key"), "{}", stderr(&out));
    file
}

/// `sigil import`, expected to fail with a usage error (exit status 2): its message.
fn refused(app: &TestApp, args: &[&str]) -> String {
    let out = app.sigil(args, None);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing printed as imported");
    stderr(&out)
}

async fn counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    app.state.db.run(row_counts).await.unwrap()
}

fn kids(jwks: &Value) -> BTreeSet<String> {
    crate::keys::kids(jwks).into_iter().collect()
}

fn other(backend: Backend) -> Backend {
    match backend {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    }
}

/// A database with users (alice with TOTP, bob, carol disabled), the confidential client
/// "rp", a resource server and a group; returns the app, the client's secret and alice's TOTP
/// secret. The issuer is `http://localhost:PORT`, a domain name passkeys can be bound to.
async fn populated(backend: Backend) -> (TestApp, String, String) {
    let app = passkey_app(backend, |_| {}).await;
    let (_, secret) = app.web_client("rp", json!({}));
    for user in ["alice", "bob", "carol"] {
        app.add_user(user);
    }
    ok(&app, &["user", "disable", "carol"], None);
    let totp = app.add_totp("alice");
    ok(&app, &["group", "add", "staff"], None);
    ok(&app, &["group", "member", "add", "staff", "alice"], None);
    let resource = json!({"resource": API, "scope": "read write"}).to_string();
    ok(
        &app,
        &["resource", "add", "--metadata", "-"],
        Some(&resource),
    );
    (app, secret, totp)
}

/// Follows Sigil's redirects after the second step to the client, asserting that no consent
/// page is shown on the way.
async fn to_client_without_consent(
    browser: &Browser,
    mut r: reqwest::Response,
) -> reqwest::Response {
    for _ in 0..5 {
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = location(&r);
        assert!(!to.contains("/consent"), "consent asked again: {to}");
        if to.starts_with(REDIRECT) {
            return r;
        }
        r = browser.get(&to).await;
    }
    panic!("too many redirects");
}

async fn a_database_moved_to_the_other_backend_keeps_sign_ins_secrets_and_tokens(target: Backend) {
    let (src, secret, totp) = populated(other(target)).await;
    // dave has a synced passkey and no other factor.
    src.add_user("dave");
    let mut passkey = SoftKey::new(true);
    enrol(&src, &existing_user(&src, "dave").await, &mut passkey).await;
    let dave_before = passwordless_code(&src, "rp", &mut passkey).await;
    let r = src
        .exchange("rp", &secret, &dave_before, Some(VERIFIER))
        .await;
    assert_eq!(r.status(), 200);
    let dave_sub = jwt_parts(
        r.json::<Value>().await.unwrap()["id_token"]
            .as_str()
            .unwrap(),
    )
    .1["sub"]
        .clone();
    // alice signs in with password and TOTP and consents: tokens from the old database.
    let browser = Browser::new();
    let factor = to_second_step(&src, &browser, "rp", &[]).await;
    let used = totp_at(&totp, src.now());
    let r = post_otp(&src, &browser, &factor, &used).await;
    let r = src.drive(&browser, r, "alice").await;
    let (before, body) = tokens(&src, "rp", &secret, &r).await;
    let (id_token, access_token) = (
        body["id_token"].as_str().unwrap(),
        body["access_token"].as_str().unwrap(),
    );
    let src_kids = kids(&src.jwks().await);

    let file = export(&src, "export.json", true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the export is readable by its owner only"
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(&secret),
        "the client secret is carried sealed"
    );
    assert!(!text.contains(&totp), "the TOTP secret is carried sealed");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["sigil_export"], 1);
    let client_ids: Vec<&str> = (doc["clients"].as_array().unwrap().iter())
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(client_ids, ["rp"], "Sigil's own clients stay behind");
    assert_eq!(
        doc["consents"].as_array().unwrap().len(),
        2,
        "alice's and dave's"
    );

    // The target runs with the same master key; its own first keys give way to the imported
    // ones, and the running node picks them up.
    let dst = passkey_app(target, |s| s.master_key = src.settings.master_key.clone()).await;
    let own_kids = kids(&dst.jwks().await);
    let out = ok(&dst, &["import", file.to_str().unwrap()], None);
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(imported["imported"]["users"], 4, "{imported}");
    assert_eq!(imported["imported"]["totp_factors"], 1, "{imported}");
    assert_eq!(imported["imported"]["passkeys"], 1, "{imported}");
    let jwks = dst.wait_for_jwks(|j| kids(j) == src_kids).await;
    assert!(
        own_kids.is_disjoint(&kids(&jwks)),
        "the target's own keys are gone"
    );
    verify_with_jwks(id_token, &jwks, "RS256").expect("an old ID token verifies");
    verify_with_jwks(access_token, &jwks, "RS256").expect("an old access token verifies");

    // alice: old password; the code spent on the old database stays spent, the next one
    // works; her consent came along; the client authenticates with its old secret.
    let browser = Browser::new();
    let factor = to_second_step(&dst, &browser, "rp", &[]).await;
    let r = post_otp(&dst, &browser, &factor, &used).await;
    assert_eq!(
        r.status(),
        401,
        "a TOTP code spent before the move was accepted"
    );
    let r = post_otp(&dst, &browser, &factor, &totp_at(&totp, dst.now() + 30)).await;
    let r = to_client_without_consent(&browser, r).await;
    let (after, _) = tokens(&dst, "rp", &secret, &r).await;
    assert_eq!(after["sub"], before["sub"]);
    assert_eq!(after["given_name"], "Alice", "claims came along");
    assert!(after["amr"].as_array().unwrap().contains(&json!("otp")));
    assert_ne!(jwt_parts(id_token).1["iss"], Value::Null);

    // bob: password only.
    let browser = Browser::new();
    let r = dst.start(&browser, "rp", &[]).await;
    let r = dst.drive(&browser, r, "bob").await;
    let code = crate::flow::query(&location(&r))["code"].clone();
    let r = dst.exchange("rp", &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);

    // dave signs in with his passkey alone, as the same subject.
    let code = passwordless_code(&dst, "rp", &mut passkey).await;
    let r = dst.exchange("rp", &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let claims = jwt_parts(
        r.json::<Value>().await.unwrap()["id_token"]
            .as_str()
            .unwrap(),
    )
    .1;
    assert_eq!(claims["sub"], dave_sub);
    assert_eq!(claims["acr"], "phr", "{claims}");
    assert_eq!(
        claims["amr"],
        json!(["swk", "user", "mfa"]),
        "synced, as before the move"
    );

    // carol stays disabled; the group and the resource server came along.
    let users: Value =
        serde_json::from_slice(&ok(&dst, &["user", "list", "--json"], None).stdout).unwrap();
    let carol = (users.as_array().unwrap().iter())
        .find(|u| u["username"] == "carol")
        .expect("carol");
    assert_eq!(carol["disabled"], true);
    let members = ok(&dst, &["group", "members", "staff", "--json"], None);
    let members: Value = serde_json::from_slice(&members.stdout).unwrap();
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["username"], "alice");
    ok(&dst, &["resource", "show", API], None);

    // The import is one audit event with what it carried.
    let audit = ok(
        &dst,
        &["audit", "list", "--json", "--type", "data.imported"],
        None,
    );
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["details"]["users"], 4, "{audit}");
}

async fn import_refuses_a_database_in_use_and_merge_reports_every_conflict_changing_nothing(
    backend: Backend,
) {
    let (src, _, _) = populated(backend).await;
    let file = export(&src, "export.json", false);
    let path = file.to_str().unwrap();
    let with_keys = export(&src, "with-keys.json", true);

    let dst = spawn_app_with(backend, |s| s.master_key = src.settings.master_key.clone()).await;
    dst.add_user("dave");
    let before = counts(&dst).await;
    let jwks = kids(&dst.jwks().await);
    let message = refused(&dst, &["import", path]);
    assert!(message.contains("already holds 1 users"), "{message}");
    assert!(message.contains("--merge"), "{message}");
    let message = refused(&dst, &["import", with_keys.to_str().unwrap(), "--merge"]);
    assert!(message.contains("without --with-keys"), "{message}");
    assert_eq!(counts(&dst).await, before, "refused imports changed rows");

    // A merge without conflicts adds everything.
    let out = ok(&dst, &["import", path, "--merge"], None);
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(imported["imported"]["users"], 3);
    let merged = counts(&dst).await;
    assert_ne!(merged, before);

    // The same again: every conflict is named, and nothing changes.
    let message = refused(&dst, &["import", path, "--merge"]);
    for conflict in [
        "user \"alice\" exists",
        "user \"bob\" exists",
        "user \"carol\" exists",
        "group \"staff\" exists",
        "client \"rp\" exists",
        &format!("resource \"{API}\" exists"),
    ] {
        assert!(message.contains(conflict), "{conflict} missing: {message}");
    }
    assert!(message.contains("nothing was imported"), "{message}");
    assert_eq!(
        counts(&dst).await,
        merged,
        "a merge with conflicts changed rows"
    );
    assert_eq!(
        kids(&dst.jwks().await),
        jwks,
        "a merge never touches the keys"
    );
}

async fn a_damaged_document_or_another_master_key_changes_nothing(backend: Backend) {
    let (src, _, _) = populated(backend).await;
    let file = export(&src, "export.json", true);
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let dst = spawn_app_with(backend, |s| s.master_key = src.settings.master_key.clone()).await;
    let before = counts(&dst).await;
    let jwks = kids(&dst.jwks().await);

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        f(&mut doc);
        doc.to_string()
    };
    let text = good.to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("cut short", text[..text.len() / 2].to_string(), "not JSON"),
        (
            "newer",
            edit(&|d| d["sigil_export"] = json!(2)),
            "version 2",
        ),
        (
            "no version",
            edit(&|d| d["sigil_export"] = Value::Null),
            "version",
        ),
        (
            "no users",
            edit(&|d| {
                d.as_object_mut().unwrap().remove("users");
            }),
            "users",
        ),
        (
            "unknown field",
            edit(&|d| d["users"][0]["shoe_size"] = json!(9)),
            "shoe_size",
        ),
        (
            "consent to nothing",
            edit(&|d| {
                let user = d["users"][0]["id"].clone();
                d["consents"] = json!([{"user_id": user, "client_id": "gone",
                    "scope": "openid", "granted_at": 0}]);
            }),
            "consent",
        ),
        (
            "member nobody",
            edit(&|d| d["groups"][0]["members"][0]["user_id"] = json!("nobody")),
            "member",
        ),
        (
            "damaged secret",
            edit(&|d| d["clients"][0]["secret_sealed"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            "master key",
        ),
        (
            "two active keys",
            edit(&|d| {
                let keys = d["signing_keys"].as_array_mut().unwrap();
                let active = keys
                    .iter()
                    .find(|k| k["state"] == "active")
                    .unwrap()
                    .clone();
                let mut twin = active.clone();
                twin["kid"] = json!("twin");
                keys.push(twin);
            }),
            "twin",
        ),
        (
            "no key that signs",
            edit(&|d| {
                let keys = d["signing_keys"].as_array_mut().unwrap();
                keys.retain(|k| k["state"] != "active");
            }),
            "no active",
        ),
    ];
    for (what, body, expected) in cases {
        let bad = dst.dir.path().join("bad.json");
        std::fs::write(&bad, body).unwrap();
        let message = refused(&dst, &["import", bad.to_str().unwrap()]);
        assert!(message.contains(expected), "{what}: {message}");
        assert!(
            message.contains("nothing was imported"),
            "{what}: {message}"
        );
        assert_eq!(counts(&dst).await, before, "{what} changed rows");
    }

    // Another master key: refused before anything is written.
    let stranger = spawn_app(backend).await;
    let stranger_before = counts(&stranger).await;
    let message = refused(&stranger, &["import", file.to_str().unwrap()]);
    assert!(
        message.contains("does not open under the configured master key"),
        "{message}"
    );
    assert_eq!(counts(&stranger).await, stranger_before);

    // The keys never moved, and the good document still imports.
    assert_eq!(kids(&dst.jwks().await), jwks);
    ok(&dst, &["import", file.to_str().unwrap()], None);
    assert_ne!(counts(&dst).await, before);
}

/// `sigil backup` while the server's pool writes clients: the copy passes SQLite's integrity
/// check and holds every client written before the backup began; the running server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_live_sqlite_database_while_it_is_written() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let app = spawn_app(Backend::Sqlite).await;
    app.add_user("alice");
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let writer = {
        let (db, master) = (app.state.db.clone(), app.state.master.clone());
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = written.load(Ordering::Relaxed);
                let metadata = json!({"grant_types": ["client_credentials"], "scope": "read"});
                db.with_conn(|c| {
                    sigil::admin::clients::register(
                        c,
                        &master,
                        metadata.to_string().as_bytes(),
                        Some(format!("svc-{n}")),
                        0,
                    )
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
                })
                .expect("a write while the backup runs");
                written.store(n + 1, Ordering::Relaxed);
            }
        })
    };
    while written.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = written.load(Ordering::Relaxed);
    let copy = app.dir.path().join("backup").join("copy.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let out = ok(&app, &["backup", copy.to_str().unwrap()], None);
    assert!(stderr(&out).contains("master key"), "{}", stderr(&out));
    let after = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        after > before,
        "the server's writes went on during the backup"
    );

    let message = refused(&app, &["backup", copy.to_str().unwrap()]);
    assert!(message.contains("exists already"), "{message}");

    {
        use diesel::{Connection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Check {
            #[diesel(sql_type = diesel::sql_types::Text)]
            integrity_check: String,
        }
        let mut conn = diesel::SqliteConnection::establish(copy.to_str().unwrap()).unwrap();
        let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
            .load(&mut conn)
            .unwrap();
        assert_eq!(check[0].integrity_check, "ok");
    }
    // The copy opens as a Sigil database of its own (same master key) with the data.
    let mut settings = app.settings.clone();
    settings.database_url = sigil::config::Secret::new(format!("sqlite://{}", copy.display()));
    let run = |args: &[&str]| -> Value {
        let out = sigil_command(&settings, copy.parent().unwrap(), args, None);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let users = run(&["user", "list", "--json"]);
    assert_eq!(users[0]["username"], "alice");
    let clients = run(&["client", "list", "--json"]);
    let ids: BTreeSet<String> = (clients.as_array().unwrap().iter())
        .map(|c| c["client_id"].as_str().unwrap().to_string())
        .collect();
    for n in 0..before {
        assert!(
            ids.contains(&format!("svc-{n}")),
            "svc-{n} missing from the copy"
        );
    }
    assert!(
        ids.len() <= after + 2,
        "the copy holds what was written, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_postgresql_points_to_pg_dump() {
    let app = spawn_app(Backend::Postgres).await;
    let copy = app.dir.path().join("copy.db");
    let message = refused(&app, &["backup", copy.to_str().unwrap()]);
    assert!(message.contains("pg_dump"), "{message}");
    assert!(!Path::new(&copy).exists());
}

/// On PostgreSQL too, every table is either exported or left behind for a stated reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_postgresql_table_is_placed_in_or_out_of_the_export() {
    let app = spawn_app(Backend::Postgres).await;
    let unplaced = app.state.db.run(unplaced_tables).await.unwrap();
    assert_eq!(unplaced, Vec::<String>::new());
}
