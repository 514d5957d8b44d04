//! Upgrades: only `serve` and `migrate` change the schema. Other commands refuse a database
//! whose schema is behind (status 2, "run `sigil migrate`") and change nothing; nothing runs on
//! a schema newer than the binary knows. Also `sigil --version` and `sigil config check`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use serde_json::Value;

use sigil::config::Settings;
use sigil::storage::{Database, DatabaseUrl};

use crate::both_backends;
use crate::flow::PASSWORD;
use crate::helpers::{sigil_binary, sigil_command, test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{migrate, serve_command, settings_on};

both_backends!(commands_refuse_a_schema_behind_until_sigil_migrate);
both_backends!(nothing_runs_on_a_schema_newer_than_the_binary);

const FUTURE_VERSION: &str = "29991231000099";

fn database(settings: &Settings) -> Database {
    let url = DatabaseUrl::parse(settings.database_url.expose()).unwrap();
    Database::connect(&url, 1, 0, Duration::from_secs(5), Duration::from_secs(5)).unwrap()
}

fn sql(settings: &Settings, statements: &str) {
    database(settings)
        .with_conn(|c| c.batch_execute(statements).map_err(Into::into))
        .unwrap_or_else(|e: sigil::storage::StorageError| panic!("{statements}: {e}"));
}

fn applied(settings: &Settings) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    use diesel::RunQueryDsl;
    let mut rows: Vec<String> = database(settings)
        .with_conn(|c| {
            diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
                .load::<Row>(c)
                .map_err(sigil::storage::StorageError::from)
        })
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    rows.sort();
    rows
}

/// The newest migration of `backend`'s tree: (directory name, version).
fn newest_migration(backend: &str) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let name = names.pop().unwrap();
    let version: String = name
        .split('_')
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (name, version)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tree(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

async fn commands_refuse_a_schema_behind_until_sigil_migrate(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(backend, dir.path());
    // A password on standard input for `user add`; the others do not read it.
    let run = |args: &[&str]| sigil_command(&settings, dir.path(), args, Some(PASSWORD));

    // A new database: no schema at all. Refused, and nothing is created.
    let out = run(&["user", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run `sigil migrate`"),
        "{}",
        stderr(&out)
    );
    match backend {
        Backend::Sqlite => {
            assert!(!dir.path().join("sigil.db").exists(), "no file created");
        }
        Backend::Postgres => {
            let tables = database(&settings).with_conn(|c| {
                #[derive(diesel::QueryableByName)]
                struct N {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                use diesel::RunQueryDsl;
                diesel::sql_query(
                    "SELECT COUNT(*) AS n FROM information_schema.tables \
                     WHERE table_schema = 'public'",
                )
                .get_result::<N>(c)
                .map_err(sigil::storage::StorageError::from)
            });
            assert_eq!(tables.unwrap().n, 0, "no table created");
        }
    }

    // A database an older Sigil migrated: the newest migration undone, as its down.sql says.
    migrate(&settings, dir.path());
    let (name, version) = newest_migration(tree(backend));
    let down = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(tree(backend))
            .join(&name)
            .join("down.sql"),
    )
    .unwrap();
    sql(&settings, &down);
    sql(
        &settings,
        &format!("DELETE FROM __diesel_schema_migrations WHERE version = '{version}'"),
    );
    let before = applied(&settings);
    assert!(!before.contains(&version));

    for args in [
        &["user", "list"][..],
        &["client", "list"],
        &["keys", "list"],
        &["user", "add", "bob", "--password-stdin"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("run `sigil migrate`"), "{args:?}: {err}");
        assert!(err.contains(&name), "the pending migration is named: {err}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(
        applied(&settings),
        before,
        "the refused commands changed nothing"
    );

    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(applied(&settings).contains(&version));
    let out = run(&["user", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `sigil serve` on `settings`' database: its output once it has exited (bounded wait).
fn serve_until_exit(settings: &Settings, dir: &Path) -> Output {
    let settings = settings_on(settings.clone(), free_port());
    let mut child = serve_command(&settings, dir, &[])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!(
        "sigil serve kept running on a newer schema:\n{}",
        stderr(&child.wait_with_output().unwrap())
    );
}

async fn nothing_runs_on_a_schema_newer_than_the_binary(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(backend, dir.path());
    migrate(&settings, dir.path());
    // A newer Sigil applied a migration this binary does not have.
    sql(
        &settings,
        &format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{FUTURE_VERSION}')"),
    );
    let before = applied(&settings);
    let run = |args: &[&str]| sigil_command(&settings, dir.path(), args, None);
    for args in [&["user", "list"][..], &["keys", "list"], &["migrate"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("newer than this version of Sigil"),
            "{args:?}: {err}"
        );
        assert!(err.contains(FUTURE_VERSION), "{err}");
    }
    let out = serve_until_exit(&settings, dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("newer than this version of Sigil"), "{err}");
    assert!(err.contains(FUTURE_VERSION), "{err}");
    assert!(!err.contains("listening"), "{err}");
    assert_eq!(applied(&settings), before, "nothing changed the schema");

    // Back to the schema this binary knows (the newer version rolled back): it works again.
    sql(
        &settings,
        &format!("DELETE FROM __diesel_schema_migrations WHERE version = '{FUTURE_VERSION}'"),
    );
    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["keys", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn version_prints_the_version_and_the_commit() {
    let out = Command::new(sigil_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim_end(),
        format!(
            "sigil {} ({})",
            env!("CARGO_PKG_VERSION"),
            sigil::BUILD_COMMIT
        )
    );
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match git {
        Ok(git) if git.status.success() => {
            let head = String::from_utf8(git.stdout).unwrap();
            assert_eq!(sigil::BUILD_COMMIT, head.trim(), "built from HEAD");
        }
        // Built outside a git checkout (a source tarball): the fallback.
        _ => assert_eq!(sigil::BUILD_COMMIT, "unknown"),
    }
}

/// `sigil config check` in `dir` with `file` as the configuration and `env` added.
fn config_check(dir: &Path, file: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let path = dir.join("check.toml");
    std::fs::write(&path, file).unwrap();
    let mut cmd = Command::new(sigil_binary());
    cmd.current_dir(dir)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SIGIL_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn config_check_prints_the_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let master = "U2lnaWwgY29uZmlnIGNoZWNrIHRlc3Qga2V5IDMyYiE=";
    let file = format!(
        "issuer = \"https://id.example.com\"\n\
         database_url = \"postgres://sigil:hunter2-pw@db.example.com/sigil?sslmode=require\"\n\
         master_key = \"{master}\"\n\
         [tokens]\naccess_ttl = \"5m\"\n\
         [http]\ntrusted_proxies = [\"10.0.0.0/8\"]\n"
    );
    let out = config_check(dir.path(), &file, &["--format", "json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("hunter2-pw") && !text.contains(master),
        "{text}"
    );
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json["database_url"],
        "postgres://sigil:[redacted]@db.example.com/sigil?sslmode=require"
    );
    assert_eq!(json["master_key"], "[redacted]");
    assert_eq!(json["issuer"], "https://id.example.com/");
    assert_eq!(json["tokens"]["access_ttl"], "5m");
    assert_eq!(
        json["tokens"]["id_token_ttl"], "1h",
        "defaults are shown too"
    );
    assert_eq!(json["log"]["access"], true);
    assert_eq!(json["http"]["trusted_proxies"][0], "10.0.0.0/8");

    // TOML (the default) says the same.
    let out = config_check(dir.path(), &file, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("hunter2-pw") && !text.contains(master),
        "{text}"
    );
    let toml: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(toml).unwrap(), json);
    assert!(
        !dir.path().join("sigil.db").exists(),
        "no database was opened"
    );
}

#[test]
fn config_check_refuses_a_bad_configuration_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in [
        ("[tokens]\naccess_ttl = \"1h\"\n", "access_ttl"),
        ("isuer = \"http://127.0.0.1:8080\"\n", "isuer"),
        ("master_key = \"c2hvcnQ=\"\n", "master_key"),
        ("database_url = \"mysql://db/sigil\"\n", "database_url"),
    ] {
        let out = config_check(dir.path(), file, &[], &[]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{file}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn unknown_sigil_variables_are_one_warning_and_otherwise_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SIGIL_PORT", "tcp://10.96.0.7:80"),
        ("SIGIL_SERVICE_HOST", "10.96.0.7"),
        ("SIGIL_TOKENS__NO_SUCH_TTL", "5m"),
        ("SIGIL_TOKENS__ACCESS_TTL", "6m"),
    ];
    let out = config_check(dir.path(), "", &["--format", "json"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["tokens"]["access_ttl"], "6m",
        "known variables still apply"
    );
    assert!(json.get("port").is_none() && json["tokens"].get("no_such_ttl").is_none());
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    for name in [
        "SIGIL_PORT",
        "SIGIL_SERVICE_HOST",
        "SIGIL_TOKENS__NO_SUCH_TTL",
    ] {
        assert!(warnings[0].contains(name), "{name}: {err}");
    }
    assert!(!err.contains("10.96.0.7"), "values are not logged: {err}");

    // An unknown key in the file stays an error, even when a variable sets it too.
    let out = config_check(dir.path(), "port = 80\n", &[], &[("SIGIL_PORT", "81")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("port"), "{}", stderr(&out));
}
