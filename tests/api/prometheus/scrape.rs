//! Debian's Prometheus and promtool against Sigil, and the real `sigil serve` reading
//! `metrics.bind` from its environment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{metrics_address, scenario, spawn_with_metrics};
use crate::helpers::{sigil_binary, test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{settings_on, ServerProcess};

fn contrib(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/prometheus")
        .join(file)
}

/// The `sigil_*` names the alert rules use.
pub fn alert_series() -> Vec<String> {
    let rules = std::fs::read_to_string(contrib("alerts.yml")).expect("alerts.yml");
    let mut names: Vec<String> = rules
        .match_indices("sigil_")
        .map(|(at, _)| {
            rules[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    names
}

/// A program Debian installs (scripts/install-deps.sh); missing, the test fails.
fn installed(program: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(program);
    assert!(
        path.exists(),
        "{} is missing: scripts/install-deps.sh installs Debian's prometheus package",
        path.display()
    );
    path
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(installed("promtool"))
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn promtool_passes_the_alert_rules_their_unit_tests_and_the_example_config() {
    let rules = contrib("alerts.yml");
    let checked = promtool(&["check", "rules", rules.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    // Each alert fires on the series it watches, and not before (alerts_test.yml).
    let tests = contrib("alerts_test.yml");
    promtool(&["test", "rules", tests.to_str().unwrap()]);
    let config = contrib("prometheus.yml");
    promtool(&["check", "config", config.to_str().unwrap()]);
}

/// `prometheus` scraping `target` every second with the alert rules loaded, its storage and
/// log in `dir`, on a free port; killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(target: &str, dir: &Path) -> Self {
        let config = dir.join("prometheus.yml");
        let rules = contrib("alerts.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: sigil\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let child = Command::new(installed("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Self {
            child,
            base: format!("http://{listen}"),
            log,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = prometheus.http.get(prometheus.url("/-/ready")).send().await {
                if r.status() == 200 {
                    return prometheus;
                }
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s:\n{}",
                prometheus.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of each series `query` returns, by its labels (without the name).
    async fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let r: Value = self
            .http
            .get(self.url("/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await
            .expect("query Prometheus")
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(r["status"], "success", "{query}: {r}");
        r["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| {
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (s["metric"].clone(), value)
            })
            .collect()
    }

    /// Queries until each returns exactly one series with its expected value, for at most
    /// 60 s (a scrape and a rule evaluation each second).
    async fn until(&self, expected: &[(String, f64)]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut wrong = Vec::new();
            for (query, want) in expected {
                let got = self.query(query).await;
                if got.len() != 1 || got[0].1 != *want {
                    wrong.push((query, want, got));
                }
            }
            if wrong.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not see {wrong:?}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_live_sigil_and_the_replay_alert_fires() {
    let app = spawn_with_metrics(Backend::Sqlite, |s| {
        s.outbound.allow_private_networks = true
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(&metrics_address(&app), data.path()).await;
    // A first scrape before anything happens: the replay alert needs the counters' 0.
    prometheus
        .until(&[
            ("up{job=\"sigil\"}".into(), 1.0),
            (
                "sigil_token_replays_total{token=\"authorization_code\"}".into(),
                0.0,
            ),
        ])
        .await;
    let expected = scenario(&app).await;
    prometheus.until(&expected).await;
    // alerts.yml, loaded by this Prometheus: a replay of each kind fires its alert at once.
    let firing = "ALERTS{alertname=\"SigilTokenReplayDetected\",alertstate=\"firing\"";
    prometheus
        .until(&[
            (format!("{firing},token=\"authorization_code\"}}"), 1.0),
            (format!("{firing},token=\"refresh_token\"}}"), 1.0),
            ("count(ALERTS{alertstate=\"firing\"})".into(), 2.0),
        ])
        .await;
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(
        public.status(),
        404,
        "/metrics is not on the public listener"
    );
}

/// `sigil serve` with `env` added: it must refuse to start; its output.
async fn refused(settings: &sigil::config::Settings, dir: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(sigil_binary())
        .arg("serve")
        .current_dir(dir)
        .env("SIGIL_DATABASE_URL", settings.database_url.expose())
        .env("SIGIL_ISSUER", settings.issuer.as_str())
        .env("SIGIL_BIND", &settings.bind)
        .env(
            "SIGIL_MASTER_KEY",
            settings.master_key.as_ref().unwrap().expose(),
        )
        .env_remove("SIGIL_CONFIG")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sigil serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sigil serve with {env:?} kept running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "sigil serve with {env:?} succeeded");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_takes_metrics_bind_from_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(Backend::Sqlite, dir.path());
    let settings = settings_on(settings, free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let server =
        ServerProcess::start(&settings, dir.path(), &[("SIGIL_METRICS__BIND", &metrics)]).await;
    let http = reqwest::Client::new();
    let public = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let r = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("\nsigil_build_info{version=\""), "{text}");
    assert!(text.contains("\nsigil_db_connections_max 8\n"), "{text}");

    // Bad values stop the start with a message that names the setting.
    let other = settings_on(settings.clone(), free_port());
    let out = refused(&other, dir.path(), &[("SIGIL_METRICS__BIND", "localhost")]).await;
    assert!(
        out.to_lowercase()
            .contains("invalid socket address syntax for key \"metrics.bind\""),
        "{out}"
    );
    let out = refused(&other, dir.path(), &[("SIGIL_METRICS__BIND", &metrics)]).await;
    assert!(out.contains(&format!("metrics.bind {metrics}")), "{out}");
    // Neither touched the running node.
    let again = http.get(format!("http://{metrics}/metrics")).send().await;
    assert_eq!(again.unwrap().status(), 200);
}
