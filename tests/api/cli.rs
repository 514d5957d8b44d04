//! The `sigil` binary: client and user management, configuration errors, and `serve` with its
//! logs and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{sigil_binary, sigil_command, spawn_app, test_settings, Backend};
use sigil::storage::{clients, users};

both_backends!(
    client_add_rejects_bad_metadata_and_stores_nothing,
    client_add_public_client_and_show_list_remove,
    user_lifecycle_through_the_cli,
    serve_logs_no_secrets_and_stops_on_sigterm,
);

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn client_add_rejects_bad_metadata_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"redirect_uris": ["/relative"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "magic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "jwks": {"keys": [{"kty": "RSA"}]}}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "scope": 42}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "id_token_signed_response_alg": "none"}),
            "invalid_client_metadata",
        ),
    ];
    for (metadata, code) in cases {
        let out = app.sigil(
            &["client", "add", "--metadata", "-"],
            Some(&metadata.to_string()),
        );
        assert_eq!(out.status.code(), Some(2), "{metadata}");
        assert!(stderr(&out).contains(code), "{metadata}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = app.sigil(&["client", "add", "--metadata", "-"], Some("{not json"));
    assert_eq!(out.status.code(), Some(2));
    let out = app.sigil(
        &["client", "add", "--client-id", "bad id", "--metadata", "-"],
        Some(r#"{"grant_types":["client_credentials"]}"#),
    );
    assert_eq!(out.status.code(), Some(2));

    app.cc_client("taken");
    let out = app.sigil(
        &["client", "add", "--client-id", "taken", "--metadata", "-"],
        Some(r#"{"grant_types":["client_credentials"]}"#),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"));

    let listed: Value =
        serde_json::from_slice(&app.sigil(&["client", "list", "--json"], None).stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        // Sigil's own clients (account page, admin console) are registered at start.
        .filter(|id| !id.starts_with("sigil-"))
        .collect();
    assert_eq!(ids, ["taken"], "only the good registration was stored");
}

async fn client_add_public_client_and_show_list_remove(backend: Backend) {
    let app = spawn_app(backend).await;
    let metadata = json!({
        "redirect_uris": ["http://127.0.0.1:8081/callback", "https://app.example/cb?tenant=1"],
        "token_endpoint_auth_method": "none",
        "client_name": "Native <App>",
        "scope": "openid profile",
        "some_future_field": {"x": 1}
    });
    let r = app.register_client("native", &metadata);
    assert_eq!(r["client_id"], "native");
    assert!(
        r.get("client_secret").is_none(),
        "public clients get no secret"
    );
    assert_eq!(r["token_endpoint_auth_method"], "none");
    assert_eq!(r["grant_types"], json!(["authorization_code"]));
    assert_eq!(r["response_types"], json!(["code"]));
    assert!(r["client_id_issued_at"].as_i64().unwrap() > 0);
    assert!(r.get("some_future_field").is_none());

    let conf = app.register_client("conf", &json!({"grant_types": ["client_credentials"]}));
    let secret = conf["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    assert_eq!(conf["client_secret_expires_at"], 0);

    let shown = app.sigil(&["client", "show", "conf"], None);
    assert!(shown.status.success());
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(!shown_text.contains(secret), "show never prints the secret");
    let listed = String::from_utf8_lossy(&app.sigil(&["client", "list", "--json"], None).stdout)
        .into_owned();
    assert!(!listed.contains(secret));
    let human = String::from_utf8_lossy(&app.sigil(&["client", "list"], None).stdout).into_owned();
    assert!(human.contains("native") && human.contains("conf"));

    assert!(app
        .sigil(&["client", "remove", "native"], None)
        .status
        .success());
    assert_eq!(
        app.sigil(&["client", "remove", "native"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        app.sigil(&["client", "show", "native"], None).status.code(),
        Some(2)
    );
    let row = app
        .state
        .db
        .run(|c| clients::get(c, "native"))
        .await
        .unwrap();
    assert!(row.is_none());
}

async fn user_lifecycle_through_the_cli(backend: Backend) {
    let app = spawn_app(backend).await;
    let claims = app.dir.path().join("claims.json");
    std::fs::write(&claims, r#"{"given_name":"Alice","locale":"en-GB"}"#).unwrap();
    let out = app.sigil(
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--email-verified",
            "--name",
            "Alice Liddell",
            "--claims",
            claims.to_str().unwrap(),
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let user: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["name"], "Alice Liddell");
    assert_eq!(user["given_name"], "Alice");
    assert!(user["id"].as_str().is_some_and(|s| s.len() == 36));
    assert!(user.get("password_hash").is_none());

    let row = app
        .state
        .db
        .run(|c| users::by_username(c, "alice"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        row.password_hash
    );
    assert!(
        sigil::crypto::password::verify("correct horse battery", &row.password_hash),
        "one trailing newline dropped"
    );

    // Refusals change nothing.
    let dup = app.sigil(
        &["user", "add", "alice", "--password-stdin"],
        Some("another password"),
    );
    assert_eq!(dup.status.code(), Some(2));
    let short = app.sigil(&["user", "add", "bob", "--password-stdin"], Some("short"));
    assert_eq!(short.status.code(), Some(2));
    let bad_claim = app.sigil(
        &["user", "add", "carol", "--claims", "-", "--password-stdin"],
        Some("x"),
    );
    assert_eq!(bad_claim.status.code(), Some(2));
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["user", "list", "--json"], None).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    assert!(app
        .sigil(&["user", "disable", "alice"], None)
        .status
        .success());
    let shown: Value =
        serde_json::from_slice(&app.sigil(&["user", "show", "alice"], None).stdout).unwrap();
    assert_eq!(shown["disabled"], true);
    assert!(app
        .sigil(&["user", "enable", "alice"], None)
        .status
        .success());
    let shown: Value =
        serde_json::from_slice(&app.sigil(&["user", "show", "alice"], None).stdout).unwrap();
    assert_eq!(shown["disabled"], false);

    assert!(app
        .sigil(
            &["user", "passwd", "alice", "--password-stdin"],
            Some("a new passphrase\n")
        )
        .status
        .success());
    let row = app
        .state
        .db
        .run(|c| users::by_username(c, "alice"))
        .await
        .unwrap()
        .unwrap();
    assert!(sigil::crypto::password::verify(
        "a new passphrase",
        &row.password_hash
    ));
    assert!(!sigil::crypto::password::verify(
        "correct horse battery",
        &row.password_hash
    ));
    assert_eq!(
        app.sigil(
            &["user", "passwd", "nobody", "--password-stdin"],
            Some("whatever123")
        )
        .status
        .code(),
        Some(2)
    );

    assert!(app
        .sigil(&["user", "logout-everywhere", "alice"], None)
        .status
        .success());
    let row = app
        .state
        .db
        .run(|c| users::by_username(c, "alice"))
        .await
        .unwrap()
        .unwrap();
    assert!(row.tokens_valid_after > 0);

    assert!(app
        .sigil(&["user", "remove", "alice"], None)
        .status
        .success());
    assert_eq!(
        app.sigil(&["user", "show", "alice"], None).status.code(),
        Some(2)
    );
}

/// `sigil serve` as an operator runs it: JSON logs at debug level carry no client secret or
/// token, and SIGTERM stops it cleanly.
async fn serve_logs_no_secrets_and_stops_on_sigterm(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(backend, dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut s = settings.clone();
        s.issuer = url::Url::parse(&base).unwrap();
        sigil_command(&s, dir.path(), args, stdin)
    };
    assert!(run(&["migrate"], None).status.success());
    let reg = run(
        &["client", "add", "--client-id", "svc", "--metadata", "-"],
        Some(r#"{"grant_types":["client_credentials"]}"#),
    );
    let secret = serde_json::from_slice::<Value>(&reg.stdout).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string();

    let mut child = Command::new(sigil_binary())
        .arg("serve")
        .current_dir(dir.path())
        .env("SIGIL_DATABASE_URL", settings.database_url.expose())
        .env(
            "SIGIL_MASTER_KEY",
            settings.master_key.as_ref().unwrap().expose(),
        )
        .env("SIGIL_ISSUER", &base)
        .env("SIGIL_BIND", format!("127.0.0.1:{port}"))
        .env("SIGIL_LOG__FORMAT", "json")
        .env("SIGIL_LOG__LEVEL", "debug")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sigil serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body: Value = http
        .post(format!("{base}/token"))
        .basic_auth("svc", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sigil did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );

    let lines = reader.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("/token")),
        "the request was logged at debug level"
    );
    for line in &lines {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(!line.contains(&secret), "client secret in the log: {line}");
        assert!(!line.contains(&token), "access token in the log: {line}");
        assert!(
            !line.contains(settings.master_key.as_ref().unwrap().expose()),
            "master key in the log"
        );
    }
}

#[test]
fn unknown_configuration_keys_and_bad_values_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |file: Option<&str>, env: &[(&str, &str)]| {
        let mut cmd = Command::new(sigil_binary());
        cmd.current_dir(dir.path())
            .arg("keys")
            .arg("list")
            .env_remove("SIGIL_CONFIG");
        let _ = std::fs::remove_file(dir.path().join("sigil.toml"));
        if let Some(text) = file {
            let path = dir.path().join("sigil.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (Some("isuer = \"http://127.0.0.1:8080\"\n"), &[], "isuer"),
        (
            Some("[tokens]\naccess_ttl = \"ten minutes\"\n"),
            &[],
            "invalid duration",
        ),
        (
            Some("[tokens]\naccess_token_alg = \"HS256\"\n"),
            &[],
            "HS256",
        ),
        (None, &[("SIGIL_TOKENS__ACCESS_TTL", "1h")], "access_ttl"),
        (Some("[tokens]\nno_such_key = 1\n"), &[], "no_such_key"),
        (None, &[("SIGIL_ISSUER", "http://id.example.com")], "https"),
    ];
    for (file, env, expected) in cases {
        let out = run(file, env);
        assert_eq!(out.status.code(), Some(2), "{file:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{file:?} {env:?}: {err}");
    }
    let missing = Command::new(sigil_binary())
        .current_dir(dir.path())
        .args(["--config", "/no/such/sigil.toml", "keys", "list"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        !dir.path().join("sigil.db").exists(),
        "nothing was created by a refused start"
    );
}

#[test]
fn first_start_creates_a_private_master_key_beside_the_sqlite_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("sigil.db");
    let run = |args: &[&str]| {
        Command::new(sigil_binary())
            .current_dir(dir.path())
            .args(args)
            .env("SIGIL_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env_remove("SIGIL_MASTER_KEY")
            .env_remove("SIGIL_CONFIG")
            .output()
            .unwrap()
    };
    let migrated = run(&["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let key_file = dir.path().join("data").join("sigil.master.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(String::from_utf8_lossy(&migrated.stderr).contains("created a new master key"));
    let key = std::fs::read_to_string(&key_file).unwrap();
    // Later commands open the same keys with the same master key.
    let first = run(&["keys", "list", "--json"]);
    assert!(first.status.success());
    let second = run(&["keys", "list", "--json"]);
    assert!(second.status.success());
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
}
