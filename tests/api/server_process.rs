//! The real `sigil serve` in a child process, configured through `SIGIL_*` variables like an
//! operator would, on a free port, its logs written as JSON lines to a file; killed (SIGKILL)
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use sigil::config::Settings;

use crate::helpers::{sigil_binary, sigil_command};

pub struct ServerProcess {
    child: Option<Child>,
    pub address: String,
    log: PathBuf,
}

/// Settings for a server process on `port`: the issuer names it.
pub fn settings_on(mut settings: Settings, port: u16) -> Settings {
    settings.bind = format!("127.0.0.1:{port}");
    settings.issuer = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    settings
}

/// `sigil migrate` on `settings`' database, as an operator runs it before the first command.
pub fn migrate(settings: &Settings, dir: &Path) {
    let out = sigil_command(settings, dir, &["migrate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registers a client with the CLI against `settings`' database; the RFC 7591 response.
pub fn register_client(settings: &Settings, dir: &Path, id: &str, metadata: &Value) -> Value {
    let out = sigil_command(
        settings,
        dir,
        &["client", "add", "--client-id", id, "--metadata", "-"],
        Some(&metadata.to_string()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client add prints JSON")
}

/// `sigil serve` on `settings.bind`, logging JSON at INFO, with `env` added (and no proxy or
/// `RUST_LOG` from the test's own environment); not started yet.
pub fn serve_command(settings: &Settings, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(sigil_binary());
    cmd.arg("serve")
        .current_dir(dir)
        .env("SIGIL_DATABASE_URL", settings.database_url.expose())
        .env("SIGIL_ISSUER", settings.issuer.as_str())
        .env("SIGIL_BIND", &settings.bind)
        .env("SIGIL_HTTP__WORKERS", "2")
        .env("SIGIL_LOG__FORMAT", "json")
        .env("SIGIL_LOG__LEVEL", "info");
    for name in [
        "SIGIL_CONFIG",
        "RUST_LOG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ] {
        cmd.env_remove(name);
    }
    if let Some(k) = &settings.master_key {
        cmd.env("SIGIL_MASTER_KEY", k.expose());
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

impl ServerProcess {
    /// Starts [`serve_command`], then waits until `/healthz` answers.
    pub async fn start(settings: &Settings, dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
        let child = serve_command(settings, dir, env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start sigil serve");
        let server = Self {
            child: Some(child),
            address: format!("http://{}", settings.bind),
            log,
        };
        server.wait_ready().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(self.url("/healthz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "sigil serve did not answer within 30 s:\n{}",
            self.log_text()
        );
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines at `level` (`ERROR`, `WARN`, ...).
    pub fn log_lines_at(&self, level: &str) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["level"] == level)
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
