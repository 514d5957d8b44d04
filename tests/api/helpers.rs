//! Test harness: each test gets the real application on port 0 with a fresh database (a temp
//! SQLite file, or a new PostgreSQL database), an HTTP client with redirects off, and a way to
//! run the real `sigil` binary against the same database.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use actix_web::web;
use diesel::{Connection, RunQueryDsl};
use serde_json::Value;

use sigil::clock::Clock;
use sigil::config::{DurationSetting, Secret, Settings};
use sigil::crypto::master_key::MasterKey;
use sigil::startup::Application;
use sigil::state::AppState;

use crate::key_pool::KeyLease;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `sqlite` and `postgres` tests that run `async fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )+
    };
}

pub struct TestApp {
    pub address: String,
    pub state: web::Data<AppState>,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
    _keys: Option<KeyLease>,
}

/// A fresh PostgreSQL database, dropped with the test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// An empty database.
    pub fn create() -> Self {
        Self::create_from(None)
    }

    /// A database with Sigil's schema, copied from [`crate::pg_template`].
    pub fn create_migrated() -> Self {
        Self::create_from(Some(crate::pg_template::template(&admin_url())))
    }

    fn create_from(template: Option<&str>) -> Self {
        let base = admin_url();
        let name = format!("sigil_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            diesel::PgConnection::establish(&base).expect("connect to SIGIL_TEST_POSTGRES_URL");
        let sql = match template {
            Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
            None => format!("CREATE DATABASE {name}"),
        };
        diesel::sql_query(sql)
            .execute(&mut conn)
            .expect("create test database");
        let mut url = url::Url::parse(&base).expect("SIGIL_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Self {
            admin_url: base,
            name,
            url: url.to_string(),
        }
    }
}

fn admin_url() -> String {
    std::env::var("SIGIL_TEST_POSTGRES_URL").expect(
        "SIGIL_TEST_POSTGRES_URL is not set: the PostgreSQL tests need a server \
         (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
    )
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// Settings for a test: port 0, a fast key refresh, a fresh empty database and master key.
pub fn test_settings(backend: Backend, dir: &std::path::Path) -> (Settings, Option<PgDatabase>) {
    settings_on(backend, dir, PgDatabase::create)
}

/// [`test_settings`] with a PostgreSQL database made by `create`.
fn settings_on(
    backend: Backend,
    dir: &std::path::Path,
    create: fn() -> PgDatabase,
) -> (Settings, Option<PgDatabase>) {
    let mut s = Settings {
        master_key: Some(Secret::new(MasterKey::generate().to_base64())),
        ..Settings::default()
    };
    s.keys.refresh_interval = DurationSetting(Duration::from_millis(100));
    s.tokens.revocation_poll = DurationSetting(Duration::from_millis(100));
    s.http.workers = 2;
    // Refused sign-ins are answered at once (tests/api/brute_force.rs checks the delay).
    s.login.refusal_delay = DurationSetting(Duration::ZERO);
    s.database.max_connections = 4;
    // No connection is reopened in the pool's background thread: each test's PostgreSQL
    // database is dropped when the test ends, and a libpq connect still running while the test
    // process exits can crash it.
    s.database.min_idle = 0;
    let pg = match backend {
        Backend::Sqlite => {
            s.database_url = Secret::new(format!("sqlite://{}", dir.join("sigil.db").display()));
            None
        }
        Backend::Postgres => {
            let db = create();
            s.database_url = Secret::new(db.url.clone());
            Some(db)
        }
    };
    (s, pg)
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    // Migrated already on PostgreSQL (see pg_template); the app's start finds nothing to do.
    let (mut settings, pg) = settings_on(backend, dir.path(), PgDatabase::create_migrated);
    let fresh_database = settings.database_url.expose().to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local address").port();
    settings.bind = format!("127.0.0.1:{port}");
    settings.issuer = url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("issuer URL");
    configure(&mut settings);
    // A fresh database gets borrowed signing keys (see key_pool); one the test pointed at
    // another app's database has its keys already.
    let keys = (settings.database_url.expose() == fresh_database).then(|| {
        let lease = KeyLease::take();
        let core = sigil::bootstrap::Core::open_to_migrate(&settings).expect("open and migrate");
        lease.store(&core.db, &core.master);
        lease
    });
    let app = Application::build_with(settings.clone(), Clock::system(), listener)
        .expect("application builds");
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        state,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        settings,
        dir,
        _pg: pg,
        _keys: keys,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn issuer(&self) -> String {
        self.settings.issuer_str().to_string()
    }

    /// The discovery document; endpoints are found through it, re-rooted at the test port.
    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// An endpoint URL from discovery, moved to the test server's address.
    pub async fn endpoint(&self, name: &str) -> String {
        let doc = self.discovery().await;
        let advertised = doc[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} not in discovery"));
        let path = advertised
            .strip_prefix(&self.issuer())
            .unwrap_or_else(|| panic!("{name} is not under the issuer"));
        self.url(path)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("JSON body")
    }

    pub async fn jwks(&self) -> Value {
        let uri = self.endpoint("jwks_uri").await;
        self.http
            .get(uri)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// RFC 7662 introspection of `token` by the client `id` (HTTP Basic); must answer 200.
    pub async fn introspect(&self, id: &str, secret: &str, token: &str) -> Value {
        let url = self.endpoint("introspection_endpoint").await;
        let r = self
            .http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Runs the real `sigil` binary against this test's database and master key.
    pub fn sigil(&self, args: &[&str], stdin: Option<&str>) -> Output {
        sigil_command(&self.settings, self.dir.path(), args, stdin)
    }

    /// Registers a client through the CLI; returns the RFC 7591 response.
    pub fn register_client(&self, client_id: &str, metadata: &Value) -> Value {
        let out = self.sigil(
            &["client", "add", "--client-id", client_id, "--metadata", "-"],
            Some(&metadata.to_string()),
        );
        assert!(
            out.status.success(),
            "client add failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("client add prints JSON")
    }

    /// A client_credentials client with scopes `api:read api:write`; returns (id, secret).
    pub fn cc_client(&self, client_id: &str) -> (String, String) {
        let r = self.register_client(
            client_id,
            &serde_json::json!({"grant_types": ["client_credentials"], "scope": "api:read api:write"}),
        );
        (
            client_id.to_string(),
            r["client_secret"].as_str().expect("secret").to_string(),
        )
    }

    /// POST to the token endpoint with HTTP Basic client authentication.
    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.endpoint("token_endpoint").await;
        self.http
            .post(token)
            .basic_auth(form_encode(id), Some(form_encode(secret)))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// Waits (bounded) until the server's JWKS satisfies `pred`; the key refresh runs every
    /// 100 ms in tests.
    pub async fn wait_for_jwks(&self, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let jwks = self.jwks().await;
            if pred(&jwks) {
                return jwks;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the JWKS did not change as expected within 5 s: {}",
            self.jwks().await
        );
    }
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
pub fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn sigil_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sigil"))
}

/// The real binary, configured through `SIGIL_*` variables like an operator would.
pub fn sigil_command(
    settings: &Settings,
    cwd: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(sigil_binary());
    cmd.args(args)
        .current_dir(cwd)
        .env("SIGIL_DATABASE_URL", settings.database_url.expose())
        .env("SIGIL_ISSUER", settings.issuer.as_str())
        .env_remove("SIGIL_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = &settings.master_key {
        cmd.env("SIGIL_MASTER_KEY", k.expose());
    }
    let mut child = cmd.spawn().expect("run sigil");
    {
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("sigil output")
}

/// The claims of a compact JWT, decoded without checking anything.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let mut parts = token.split('.');
    let mut decode = |what: &str| -> Value {
        let part = parts.next().unwrap_or_else(|| panic!("JWT without {what}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let header = decode("header");
    let claims = decode("claims");
    (header, claims)
}

/// Verifies a compact JWS with openidconnect's JWK implementation (independent of Sigil's
/// josekit code), using the key the JWKS holds under the token's `kid` and the algorithm the
/// caller expects — never the one the header claims.
pub fn verify_with_jwks(token: &str, jwks: &Value, expected_alg: &str) -> Result<(), String> {
    use base64::Engine;
    use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
    use openidconnect::JsonWebKey;
    let (header, _) = jwt_parts(token);
    if header["alg"] != expected_alg {
        return Err(format!(
            "header alg {} is not {expected_alg}",
            header["alg"]
        ));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let set: CoreJsonWebKeySet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let key = set
        .keys()
        .iter()
        .find(|k| k.key_id().map(|id| id.as_str()) == Some(kid))
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let alg: CoreJwsSigningAlgorithm =
        serde_json::from_value(Value::String(expected_alg.into())).map_err(|e| e.to_string())?;
    let (signing_input, signature) = token.rsplit_once('.').ok_or("not a JWS")?;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    key.verify_signature(&alg, signing_input.as_bytes(), &signature)
        .map_err(|e| e.to_string())
}
