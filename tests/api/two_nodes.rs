//! Two Sigil nodes on one PostgreSQL database, rotating keys on a schedule of seconds and once by
//! `sigil keys rotate`, while a client that caches the JWKS for its `Cache-Control: max-age`
//! requests tokens from both nodes in turn: not one token fails to verify, and both nodes serve
//! the same JWKS within one refresh interval of every change.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use serde_json::Value;

use crate::helpers::{
    form_encode, jwt_parts, sigil_binary, sigil_command, test_settings, verify_with_jwks, Backend,
};
use sigil::clock::Clock;
use sigil::config::{DurationSetting, Settings};
use sigil::startup::Application;
use sigil::state::AppState;
use sigil::storage::signing_keys::{self, KeyRow};

/// One running application on a port of its own.
pub struct Node {
    pub address: String,
    pub state: web::Data<AppState>,
    http: reqwest::Client,
}

/// Starts an application on `settings` (their database and master key; the issuer is left as
/// given, like nodes behind one public URL) with `clock`.
pub fn start_node(mut settings: Settings, clock: Clock) -> Node {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local address").port();
    settings.bind = format!("127.0.0.1:{port}");
    let app = Application::build_with(settings, clock, listener).expect("application builds");
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    Node {
        address: format!("http://127.0.0.1:{port}"),
        state,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
    }
}

impl Node {
    /// An endpoint from this node's discovery document, moved to this node's address.
    pub async fn endpoint(&self, name: &str) -> String {
        let doc: Value = self
            .http
            .get(format!("{}/.well-known/openid-configuration", self.address))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("discovery JSON");
        let issuer = self.state.settings.issuer_str().to_string();
        let advertised = doc[name].as_str().expect("endpoint in discovery");
        let path = advertised.strip_prefix(&issuer).expect("under the issuer");
        format!("{}{path}", self.address)
    }

    /// This node's JWKS.
    pub async fn jwks(&self) -> Value {
        let url = self.endpoint("jwks_uri").await;
        let r = self.http.get(url).send().await.expect("JWKS request");
        r.json().await.expect("JWKS JSON")
    }

    /// A client_credentials access token (HTTP Basic client authentication).
    pub async fn token(&self, token_endpoint: &str, id: &str, secret: &str) -> String {
        let r = self
            .http
            .post(token_endpoint)
            .basic_auth(form_encode(id), Some(form_encode(secret)))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        assert_eq!(r.status(), 200, "token from {}", self.address);
        let body: Value = r.json().await.expect("token JSON");
        body["access_token"].as_str().expect("access_token").into()
    }
}

/// One JWKS answer: body, ETag, and how long a client may keep it.
struct Fetched {
    body: String,
    etag: String,
    max_age: Duration,
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Fetched {
    let r = http.get(url).send().await.expect("JWKS request");
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let max_age = header("cache-control")
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age=")?.parse().ok())
        .map(Duration::from_secs)
        .expect("Cache-Control: max-age on the JWKS");
    let etag = header("etag");
    let body = r.text().await.expect("JWKS body");
    Fetched {
        body,
        etag,
        max_age,
    }
}

/// A relying party's JWKS cache: refetched only once its max-age has run out, never because a
/// token names an unknown `kid`.
struct JwksCache {
    jwks: Value,
    expires: Instant,
    fetches: usize,
}

impl JwksCache {
    async fn get(
        cache: &mut Option<JwksCache>,
        http: &reqwest::Client,
        urls: &[String; 2],
    ) -> Value {
        if let Some(c) = cache.as_ref().filter(|c| Instant::now() < c.expires) {
            return c.jwks.clone();
        }
        let fetches = cache.as_ref().map_or(0, |c| c.fetches) + 1;
        let asked = Instant::now();
        let fetched = fetch_jwks(http, &urls[fetches % 2]).await;
        let jwks: Value = serde_json::from_str(&fetched.body).expect("JWKS JSON");
        *cache = Some(JwksCache {
            jwks: jwks.clone(),
            expires: asked + fetched.max_age,
            fetches,
        });
        jwks
    }
}

/// How the two nodes' JWKS compared while the test ran.
#[derive(Debug, Default)]
struct Agreement {
    /// Distinct JWKS bodies seen.
    versions: Vec<String>,
    /// The longest time the nodes served different JWKS (or ETags).
    longest_disagreement: Duration,
    /// Polls of both nodes.
    polls: usize,
}

/// Polls both nodes' JWKS until `stop`, timing every stretch in which they differ.
async fn watch(urls: [String; 2], stop: Arc<AtomicBool>) -> Agreement {
    let http = reqwest::Client::new();
    let mut seen = Agreement::default();
    let mut differing_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let (a, b) = tokio::join!(fetch_jwks(&http, &urls[0]), fetch_jwks(&http, &urls[1]));
        seen.polls += 1;
        for body in [&a.body, &b.body] {
            if !seen.versions.contains(body) {
                seen.versions.push(body.clone());
            }
        }
        if a.body == b.body && a.etag == b.etag {
            if let Some(since) = differing_since.take() {
                seen.longest_disagreement = seen.longest_disagreement.max(since.elapsed());
            }
        } else {
            differing_since.get_or_insert_with(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(since) = differing_since {
        seen.longest_disagreement = seen.longest_disagreement.max(since.elapsed());
    }
    seen
}

/// `sigil keys rotate` with the test's short key periods, as an operator with the same
/// configuration as the nodes would run it.
fn cli_rotate(settings: &Settings, cwd: &std::path::Path) -> Output {
    let mut cmd = Command::new(sigil_binary());
    cmd.args(["keys", "rotate"])
        .current_dir(cwd)
        .env("SIGIL_DATABASE_URL", settings.database_url.expose())
        .env("SIGIL_ISSUER", settings.issuer.as_str())
        .env(
            "SIGIL_MASTER_KEY",
            settings.master_key.as_ref().expect("master key").expose(),
        )
        .env(
            "SIGIL_KEYS__JWKS_MAX_AGE",
            settings.keys.jwks_max_age.to_string(),
        )
        .env(
            "SIGIL_KEYS__REFRESH_INTERVAL",
            settings.keys.refresh_interval.to_string(),
        )
        .env_remove("SIGIL_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.output().expect("run sigil keys rotate")
}

/// Runs `sigil keys rotate` once the next keys have been published for 2 × max-age after the
/// first scheduled rotation; retries while the CLI refuses because a scheduled rotation just
/// replaced the next key. Returns the RS256 key it activated.
async fn rotate_by_cli(node: Arc<Node>, settings: Settings, cwd: std::path::PathBuf) -> String {
    let min_publication = 2 * settings.keys.jwks_max_age.0;
    loop {
        let rows = rs256_keys(&node).await;
        let activations = rows.iter().filter(|k| k.activated_at.is_some()).count();
        if activations >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(min_publication + Duration::from_millis(500)).await;
    for _ in 0..10 {
        let (s, dir) = (settings.clone(), cwd.clone());
        let out = tokio::task::spawn_blocking(move || cli_rotate(&s, &dir))
            .await
            .unwrap();
        if out.status.success() {
            let done: Value = serde_json::from_slice(&out.stdout).expect("rotate prints JSON");
            let rs = done
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["alg"] == "RS256")
                .expect("RS256 rotated");
            return rs["activated"].as_str().unwrap().to_string();
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("published for"), "{stderr}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("sigil keys rotate kept refusing");
}

async fn serves(node: &Node, kid: &str) -> bool {
    node.jwks().await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["kid"] == kid)
}

async fn rs256_keys(node: &Node) -> Vec<KeyRow> {
    let mut rows = node
        .state
        .db
        .run(signing_keys::all)
        .await
        .expect("read signing keys");
    rows.retain(|k| k.alg == "RS256");
    rows.sort_by_key(|k| k.activated_at);
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_rotate_on_schedule_and_by_cli_without_a_failed_verification() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut settings, _pg) = test_settings(Backend::Postgres, dir.path());
    // Nodes behind one public URL; the test talks to each node's own address.
    settings.issuer = url::Url::parse("http://localhost:8443").unwrap();
    settings.keys.jwks_max_age = DurationSetting::from_secs(3);
    settings.keys.refresh_interval = DurationSetting(Duration::from_millis(250));
    settings.keys.rotation_period = DurationSetting::from_secs(8);
    settings
        .validate()
        .expect("the short periods pass the production rules of validate()");

    let nodes = [
        Arc::new(start_node(settings.clone(), Clock::system())),
        Arc::new(start_node(settings.clone(), Clock::system())),
    ];
    let out = sigil_command(
        &settings,
        dir.path(),
        &["client", "add", "--client-id", "svc", "--metadata", "-"],
        Some(r#"{"grant_types":["client_credentials"],"scope":"api:read"}"#),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = serde_json::from_slice::<Value>(&out.stdout).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let token_urls = [
        nodes[0].endpoint("token_endpoint").await,
        nodes[1].endpoint("token_endpoint").await,
    ];
    let jwks_urls = [
        nodes[0].endpoint("jwks_uri").await,
        nodes[1].endpoint("jwks_uri").await,
    ];

    let stop = Arc::new(AtomicBool::new(false));
    // Unix second the watcher starts in: on a loaded machine the nodes' first scheduled rotation
    // can come before it, and a change the watcher never had the chance to see is not counted.
    let watching_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let watcher = tokio::spawn(watch(jwks_urls.clone(), stop.clone()));
    let cli = tokio::spawn(rotate_by_cli(
        nodes[0].clone(),
        settings.clone(),
        dir.path().to_path_buf(),
    ));

    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut cache: Option<JwksCache> = None;
    let (mut verified, mut failures) = (0usize, Vec::new());
    let mut kids = Vec::new();
    loop {
        for (i, node) in nodes.iter().enumerate() {
            let token = node.token(&token_urls[i], "svc", &secret).await;
            let jwks = JwksCache::get(&mut cache, &http, &jwks_urls).await;
            let kid = jwt_parts(&token).0["kid"].as_str().unwrap().to_string();
            match verify_with_jwks(&token, &jwks, "RS256") {
                Ok(()) => verified += 1,
                Err(e) => failures.push(format!("node {i}, kid {kid}: {e}")),
            }
            if !kids.contains(&kid) {
                kids.push(kid);
            }
        }
        let rows = rs256_keys(&nodes[0]).await;
        let rotations = rows.iter().filter(|k| k.activated_at.is_some()).count() - 1;
        let ran = started.elapsed();
        if ran >= Duration::from_secs(20) && rotations >= 3 && cli.is_finished() {
            // Keep going until both nodes publish the latest change.
            let newest = rows.iter().find(|k| k.state == "next").expect("a next key");
            if serves(&nodes[0], &newest.kid).await && serves(&nodes[1], &newest.kid).await {
                break;
            }
        }
        assert!(
            ran < Duration::from_secs(60),
            "after 60 s only {rotations} rotations"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let agreement = watcher.await.unwrap();
    let by_cli = cli.await.unwrap();

    assert!(
        failures.is_empty(),
        "{} of {} tokens failed: {failures:?}",
        failures.len(),
        verified + failures.len()
    );
    assert!(
        cache.as_ref().unwrap().fetches > 5,
        "the client refetched the JWKS as its max-age ran out"
    );

    // Every activation was made once: scheduled ones a full rotation period after the one
    // before, and the CLI's at least 2 × max-age after it (it refuses earlier).
    let activated: Vec<(i64, String)> = rs256_keys(&nodes[0])
        .await
        .into_iter()
        .filter_map(|k| Some((k.activated_at?, k.kid)))
        .collect();
    let scheduled = activated[1..]
        .iter()
        .filter(|(_, kid)| *kid != by_cli)
        .count();
    assert!(scheduled >= 2, "scheduled rotations: {activated:?}");
    assert!(activated.iter().any(|(_, kid)| *kid == by_cli));
    for pair in activated.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        let least = if pair[1].1 == by_cli { 6 } else { 8 };
        assert!(gap >= least, "two activations {gap} s apart: {activated:?}");
    }
    // Tokens were signed by every key that was active during the run, and by no other.
    for kid in &kids {
        assert!(
            activated.iter().any(|(_, k)| k == kid),
            "{kid} signed but never active"
        );
    }
    assert!(kids.len() >= 3, "tokens from {} keys", kids.len());

    // Both nodes served the same JWKS, ETag included, within one refresh interval of every
    // change, plus the time one refresh takes and the watcher's polling — with room for a
    // loaded CI machine running other tests beside this one (measured here: 67–249 ms).
    let watched = activated
        .iter()
        .filter(|(at, _)| *at > watching_from)
        .count();
    assert!(watched >= 2, "activations while watched: {activated:?}");
    assert!(
        agreement.versions.len() > watched,
        "the watcher saw {} JWKS versions for {watched} activations while it watched",
        agreement.versions.len()
    );
    let bound = settings.keys.refresh_interval.0 + Duration::from_millis(1500);
    assert!(
        agreement.longest_disagreement <= bound,
        "the nodes disagreed for {:?} (bound {bound:?}, {} polls)",
        agreement.longest_disagreement,
        agreement.polls
    );
    eprintln!(
        "{verified} tokens verified from {} keys; {} JWKS fetches; {} JWKS versions; longest \
         disagreement {:?}",
        kids.len(),
        cache.unwrap().fetches,
        agreement.versions.len(),
        agreement.longest_disagreement
    );
}
