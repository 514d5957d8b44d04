//! `sigil demo`: the identity provider plus two demo relying parties on two origins, so that
//! single sign-on can be seen in a browser. Sigil runs at `http://127.0.0.1:8080` on its own
//! SQLite database under `./sigil-demo/`; "App A" at `http://127.0.0.1:8081` and "App B" at
//! `http://localhost:8082` are built with the openidconnect crate ([`relying_party`]).
//!
//! A second run reuses the database, the clients and the demo user; the user's password is
//! kept in `demo-credentials.json` beside the database (mode 0600) so that it prints the same.

mod pages;
pub mod relying_party;

use std::future::Future;
use std::net::{TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::admin::{clients as admin_clients, users as admin_users};
use crate::audit::By;
use crate::clock::Clock;
use crate::config::{Secret, Settings, TlsSettings};
use crate::crypto::master_key::MasterKey;
use crate::crypto::{password, random};
use crate::startup::Application;
use crate::storage::{clients as stored_clients, users as stored_users, AnyConnection};
use relying_party::{Peer, RelyingParty, RpConfig};

/// The file beside the demo database that keeps the demo user's credentials.
pub const CREDENTIALS_FILE: &str = "demo-credentials.json";
pub const DEMO_USERNAME: &str = "demo";
const CLIENT_SCOPE: &str = "openid profile email";

/// `sigil demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's SQLite database, master key and credentials (reused when it
    /// exists; delete it to start afresh).
    #[arg(long, value_name = "DIR", default_value = "sigil-demo")]
    pub dir: PathBuf,
}

/// A host name and a port to listen on (port 0 picks a free one). `localhost` listens on
/// 127.0.0.1, so that it is the same machine as the other sites under another origin.
#[derive(Debug, Clone)]
pub struct Site {
    pub host: String,
    pub port: u16,
}

impl Site {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    fn bind(&self) -> anyhow::Result<(TcpListener, String)> {
        let host = if self.host == "localhost" {
            "127.0.0.1"
        } else {
            self.host.as_str()
        };
        let addr = (host, self.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.host))?
            .next()
            .with_context(|| format!("{} has no address", self.host))?;
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        Ok((listener, format!("http://{}:{port}", self.host)))
    }
}

pub struct DemoConfig {
    /// The configuration as loaded; the demo overrides issuer, bind, database, master key and
    /// TLS so that it is self-contained in `dir`.
    pub settings: Settings,
    pub dir: PathBuf,
    pub sigil: Site,
    pub app_a: Site,
    pub app_b: Site,
}

impl DemoConfig {
    /// The ports `sigil demo` uses: 8080 (Sigil), 8081 (App A), 8082 (App B).
    pub fn standard(settings: Settings, dir: PathBuf) -> Self {
        Self {
            settings,
            dir,
            sigil: Site::new("127.0.0.1", 8080),
            app_a: Site::new("127.0.0.1", 8081),
            app_b: Site::new("localhost", 8082),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoCredentials {
    pub username: String,
    pub password: String,
}

/// The running demo: three servers, already listening.
pub struct Demo {
    pub sigil_url: String,
    pub app_a_url: String,
    pub app_b_url: String,
    pub credentials: DemoCredentials,
    pub dir: PathBuf,
    sigil: Application,
    apps: Vec<actix_web::dev::Server>,
}

/// `sigil demo`: builds an actix system and runs the demo until Ctrl-C.
pub fn main(settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run(DemoConfig::standard(settings, args.dir)))
}

pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let demo = Demo::start(config).await?;
    println!("{}", demo.banner());
    demo.run_until_stopped().await
}

impl Demo {
    /// Binds the three sites, starts Sigil on the demo database, registers the clients and the
    /// demo user when missing, and starts the two apps.
    pub async fn start(config: DemoConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.dir)
            .with_context(|| format!("creating {}", config.dir.display()))?;
        let (sigil_listener, sigil_url) = config.sigil.bind()?;
        let (a_listener, app_a_url) = config.app_a.bind()?;
        let (b_listener, app_b_url) = config.app_b.bind()?;

        let mut settings = config.settings;
        settings.issuer = url::Url::parse(&sigil_url)?;
        settings.bind = sigil_listener.local_addr()?.to_string();
        let db_path = config.dir.join("sigil.db");
        settings.database_url = Secret::new(format!("sqlite://{}", db_path.display()));
        // The master key is created beside the demo database (sigil.master.key).
        settings.master_key = None;
        settings.master_key_file = None;
        settings.tls = TlsSettings::default();
        let issuer = settings.issuer_str().to_string();
        let sigil = Application::build_with(settings, Clock::system(), sigil_listener)?;

        let state = sigil.state();
        let master = state.master.clone();
        let now = state.clock.now();
        let dir = config.dir.clone();
        let redirects = [
            format!("{app_a_url}/callback"),
            format!("{app_b_url}/callback"),
        ];
        let (credentials, secrets) = state
            .db
            .run(move |c| -> anyhow::Result<_> {
                let secrets = [
                    ensure_client(c, &master, "demo-app-a", "App A", &redirects[0], now)?,
                    ensure_client(c, &master, "demo-app-b", "App B", &redirects[1], now)?,
                ];
                Ok((ensure_user(c, &dir, now)?, secrets))
            })
            .await?;

        let [secret_a, secret_b] = secrets;
        let app = |name: &str, id: &str, secret: String, base: &str, cookie: &str, peer: Peer| {
            RelyingParty::new(RpConfig {
                name: name.into(),
                base_url: base.into(),
                issuer: issuer.clone(),
                client_id: id.into(),
                client_secret: secret,
                cookie_name: cookie.into(),
                peers: vec![peer],
            })
        };
        let a = app(
            "App A",
            "demo-app-a",
            secret_a,
            &app_a_url,
            "demo_app_a_session",
            Peer::new("App B", &app_b_url),
        )?;
        let b = app(
            "App B",
            "demo-app-b",
            secret_b,
            &app_b_url,
            "demo_app_b_session",
            Peer::new("App A", &app_a_url),
        )?;
        let apps = vec![a.serve(a_listener)?, b.serve(b_listener)?];
        Ok(Self {
            sigil_url,
            app_a_url,
            app_b_url,
            credentials,
            dir: config.dir,
            sigil,
            apps,
        })
    }

    /// What `sigil demo` prints once everything listens.
    pub fn banner(&self) -> String {
        format!(
            "\nSigil demo is running (Ctrl-C to stop)\n\n\
             \x20 Identity provider  {sigil}\n\
             \x20                    discovery: {sigil}/.well-known/openid-configuration\n\
             \x20 App A              {a}\n\
             \x20 App B              {b}\n\n\
             \x20 Username  {user}\n\
             \x20 Password  {password}\n\n\
             \x20 Data      {dir} (database, master key, {file}; delete it to start afresh)\n\n\
             Open App A and sign in, then open App B: it signs you in without asking for the \
             password again (single sign-on across two origins).\n",
            sigil = self.sigil_url,
            a = self.app_a_url,
            b = self.app_b_url,
            user = self.credentials.username,
            password = self.credentials.password,
            dir = self.dir.display(),
            file = CREDENTIALS_FILE,
        )
    }

    /// Serves until SIGTERM / SIGINT, which stops all three servers. (An actix server starts
    /// only when its future is first polled, so the three are polled together.)
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut servers: Vec<Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>> =
            vec![Box::pin(self.sigil.run_until_stopped())];
        servers.extend(
            self.apps
                .into_iter()
                .map(|s| Box::pin(s) as Pin<Box<dyn Future<Output = _> + Send>>),
        );
        let mut running = vec![true; servers.len()];
        std::future::poll_fn(|cx| {
            for (server, running) in servers.iter_mut().zip(running.iter_mut()) {
                if *running {
                    if let Poll::Ready(result) = server.as_mut().poll(cx) {
                        *running = false;
                        result?;
                    }
                }
            }
            if running.iter().any(|r| *r) {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        })
        .await
    }
}

/// Registers the client unless it exists with the same redirect URI and settings (otherwise it
/// is replaced); returns its secret.
fn ensure_client(
    c: &mut AnyConnection,
    master: &MasterKey,
    client_id: &str,
    name: &str,
    redirect_uri: &str,
    now: i64,
) -> anyhow::Result<String> {
    if let Some(existing) = admin_clients::load(c, master, client_id)? {
        let m = &existing.metadata;
        let same = m.redirect_uris == [redirect_uri]
            && m.skip_consent
            && m.scope == CLIENT_SCOPE
            && m.token_endpoint_auth_method.as_str() == "client_secret_basic";
        match (&existing.secret, same) {
            (Some(secret), true) => return Ok(secret.expose().to_string()),
            _ => stored_clients::remove(c, client_id)?,
        }
    }
    let metadata = json!({
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": CLIENT_SCOPE,
        "skip_consent": true,
    });
    let response = admin_clients::register(
        c,
        master,
        metadata.to_string().as_bytes(),
        Some(client_id.into()),
        now,
    )
    .map_err(|e| anyhow::anyhow!("registering {client_id}: {e}"))?;
    response["client_secret"]
        .as_str()
        .map(str::to_string)
        .context("a confidential client gets a secret")
}

/// Creates the demo user when missing; keeps its password in the credentials file (a new random
/// one when the file is missing). The existing user gets the saved password when it differs.
fn ensure_user(c: &mut AnyConnection, dir: &Path, now: i64) -> anyhow::Result<DemoCredentials> {
    let file = dir.join(CREDENTIALS_FILE);
    let saved = read_credentials(&file)?;
    let credentials = saved.clone().unwrap_or_else(|| DemoCredentials {
        username: DEMO_USERNAME.into(),
        password: random::id_128(),
    });
    match stored_users::by_username(c, &credentials.username)? {
        // The printed password must work, even after `sigil user passwd demo`.
        Some(row)
            if saved.is_some() && password::verify(&credentials.password, &row.password_hash) => {}
        Some(_) => admin_users::set_password(
            c,
            &credentials.username,
            &credentials.password,
            &By::cli(),
            now,
        )
        .map_err(|e| anyhow::anyhow!("demo user: {e}"))?,
        None => {
            let new = admin_users::NewUser {
                username: credentials.username.clone(),
                email: Some("demo@example.com".into()),
                email_verified: true,
                name: Some("Demo User".into()),
                admin: false,
                claims: serde_json::Map::from_iter([
                    ("given_name".to_string(), json!("Demo")),
                    ("family_name".to_string(), json!("User")),
                    (
                        "preferred_username".to_string(),
                        json!(credentials.username),
                    ),
                ]),
            };
            admin_users::prepare(&new, &credentials.password)
                .map_err(|e| anyhow::anyhow!("demo user: {e}"))?;
            let hash = password::hash(&credentials.password);
            admin_users::create(c, new, Some(hash), 0, &By::cli(), now)
                .map_err(|e| anyhow::anyhow!("demo user: {e}"))?;
        }
    }
    if saved.is_none() {
        write_credentials(&file, &credentials)?;
    }
    Ok(credentials)
}

fn read_credentials(file: &Path) -> anyhow::Result<Option<DemoCredentials>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not valid; delete it", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

fn write_credentials(file: &Path, credentials: &DemoCredentials) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(file)
        .with_context(|| format!("writing {}", file.display()))?;
    f.write_all(serde_json::to_string_pretty(credentials)?.as_bytes())?;
    Ok(())
}
