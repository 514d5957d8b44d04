//! A real browser: headless Chromium, driven through the W3C WebDriver protocol (chromedriver
//! over HTTP, with reqwest), signs in to the demo's App A at Sigil and then into App B on
//! another origin without seeing the password form again (SSO). Screenshots go to
//! `target/test-output/screenshots/`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `SIGIL_TEST_CHROMIUM` / `SIGIL_TEST_CHROMEDRIVER` override the
//! paths). Without them the test fails, it does not skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use sigil::config::Settings;
use sigil::demo::{Demo, DemoConfig, Site};

use crate::second_factors::totp_at;

mod console;

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_across_two_origins_in_headless_chromium() {
    // Sigil and App A on 127.0.0.1, App B on localhost: two origins (and two sites).
    let Running {
        sigil_url,
        app_a,
        app_b,
        credentials,
        browser,
        shots,
        ..
    } = run_demo("127.0.0.1", "127.0.0.1", "localhost").await;
    assert!(app_b.starts_with("http://localhost:"), "{app_b}");

    // App A: not signed in; "Sign in with Sigil" leads to Sigil's login page.
    browser.go(&app_a).await;
    browser.find("#signed-out").await;
    browser.click("#sign-in").await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{sigil_url}/login?")))
        .await;
    let username = browser.find("input[name=username]").await;
    let password = browser.find("input[name=password]").await;
    browser.type_into(&username, &credentials.username).await;
    browser.type_into(&password, &credentials.password).await;
    browser.screenshot(&shots.join("01-sigil-login.png")).await;
    browser.click("form button[type=submit]").await;

    // Back at App A, signed in (skip_consent: no consent page).
    browser
        .wait_for_url(|u| u.starts_with(&format!("{app_a}/")))
        .await;
    browser.find("#signed-in").await;
    let sub_a = browser.text("#sub").await;
    assert_eq!(browser.text("#name").await, "Demo User");
    assert_eq!(browser.text("#email").await, "demo@example.com");
    let claims_a: Value = serde_json::from_str(&browser.text("#id-token-claims").await)
        .expect("App A shows the ID token claims as JSON");
    assert_eq!(claims_a["iss"], sigil_url.as_str());
    assert_eq!(claims_a["aud"], json!(["demo-app-a"]));
    assert_eq!(claims_a["sub"], sub_a.as_str());
    browser
        .screenshot(&shots.join("02-app-a-signed-in.png"))
        .await;

    // App B, another origin: signing in goes through Sigil and comes straight back.
    browser.go(&app_b).await;
    browser.find("#signed-out").await;
    browser.click("#sign-in").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let url = browser.url().await;
        assert!(
            !url.starts_with(&format!("{sigil_url}/login")),
            "SSO failed: App B's sign-in showed Sigil's password form ({url})"
        );
        if url.starts_with(&format!("{app_b}/")) && browser.try_find("#signed-in").await.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "App B did not come back signed in within {WAIT:?}; at {url}:\n{}",
            browser.source().await
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(
        browser.try_find("input[type=password]").await.is_none(),
        "no password field on App B"
    );
    assert_eq!(browser.text("#sub").await, sub_a, "the same user");
    assert_eq!(browser.text("#email").await, "demo@example.com");
    let claims_b: Value = serde_json::from_str(&browser.text("#id-token-claims").await).unwrap();
    assert_eq!(claims_b["aud"], json!(["demo-app-b"]));
    assert_eq!(
        claims_b["auth_time"], claims_a["auth_time"],
        "one sign-in at Sigil serves both apps"
    );
    browser
        .screenshot(&shots.join("03-app-b-signed-in-by-sso.png"))
        .await;

    // The account page, through Sigil's own first-party client: single sign-on, no password.
    let account = format!("{sigil_url}/account");
    browser.go(&account).await;
    browser.wait_for_url(|u| u == account).await;
    browser.find("#factors-heading").await;
    browser.screenshot(&shots.join("04-account.png")).await;
    // An authenticator app: the QR code and the key, then its first code turns it on.
    browser
        .click("form[action='/account/totp/start'] button")
        .await;
    let key = browser.text("#totp-secret").await;
    browser.find(".qr svg").await;
    browser
        .element_screenshot(
            "section[aria-labelledby=factors-heading]",
            &shots.join("05-account-totp-setup.png"),
        )
        .await;
    let otp = browser.find("#otp").await;
    browser.type_into(&otp, &totp_at(&key, unix_now())).await;
    browser
        .click("form[action='/account/totp/confirm'] button")
        .await;
    browser.find("form[action='/account/totp/remove']").await;

    // Signed out (every cookie of 127.0.0.1, App A's too), signing in at App A takes two steps.
    browser.command("DELETE", "/cookie", None).await;
    browser.go(&app_a).await;
    browser.click("#sign-in").await;
    submit_password(&browser, &sigil_url, &credentials).await;
    // The right password is answered with the second step's page itself.
    let otp = browser.find("input[name=otp]").await;
    browser
        .screenshot(&shots.join("06-sigil-second-factor.png"))
        .await;
    // The code that turned the app on is spent; the next step's is within the drift.
    browser
        .type_into(&otp, &totp_at(&key, unix_now() + 30))
        .await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{app_a}/")))
        .await;
    browser.find("#signed-in").await;
    let claims: Value = serde_json::from_str(&browser.text("#id-token-claims").await).unwrap();
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "mfa");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A passkey in a real browser: Chromium's virtual authenticator (WebDriver, WebAuthn §11)
/// stands in for a platform authenticator with user verification. Sigil is on `localhost` (an
/// RP ID must be a domain name); App A on 127.0.0.1. The user signs in with a password, adds a
/// passkey on the account page, is signed out everywhere, and signs in at App A with the passkey
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_sign_in_at_app_a_in_headless_chromium() {
    let Running {
        sigil_url,
        app_a,
        credentials,
        browser,
        shots,
        ..
    } = run_demo("localhost", "127.0.0.1", "127.0.0.1").await;
    assert!(sigil_url.starts_with("http://localhost:"), "{sigil_url}");
    browser
        .command(
            "POST",
            "/webauthn/authenticator",
            Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
            })),
        )
        .await;

    // Signed in with the password at App A.
    browser.go(&app_a).await;
    browser.click("#sign-in").await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{sigil_url}/login?")))
        .await;
    browser.find("#passkey-button").await;
    browser
        .screenshot(&shots.join("07-sigil-login-with-passkey.png"))
        .await;
    let username = browser.find("input[name=username]").await;
    let password = browser.find("input[name=password]").await;
    browser.type_into(&username, &credentials.username).await;
    browser.type_into(&password, &credentials.password).await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{app_a}/")))
        .await;
    browser.find("#signed-in").await;

    // A passkey added on the account page.
    browser.go(&format!("{sigil_url}/account")).await;
    let name = browser.find("#passkey-name").await;
    browser.type_into(&name, "Virtual key").await;
    browser.click("#passkey-button").await;
    browser
        .wait_for_url(|u| u.contains("done=passkey-added"))
        .await;
    browser
        .find("form[action='/account/passkeys/remove']")
        .await;
    browser
        .element_screenshot(
            "section[aria-labelledby=factors-heading]",
            &shots.join("08-account-passkey-added.png"),
        )
        .await;

    // Signed out at Sigil and at App A; then the passkey alone signs in.
    browser.command("DELETE", "/cookie", None).await;
    browser.go(&app_a).await;
    browser.command("DELETE", "/cookie", None).await;
    browser.go(&app_a).await;
    browser.click("#sign-in").await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{sigil_url}/login?")))
        .await;
    browser.click("#passkey-button").await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{app_a}/")))
        .await;
    browser.find("#signed-in").await;
    let claims: Value = serde_json::from_str(&browser.text("#id-token-claims").await).unwrap();
    let amr = claims["amr"].as_array().expect("amr").clone();
    assert!(
        amr.contains(&json!("hwk")) || amr.contains(&json!("swk")),
        "{claims}"
    );
    assert!(
        amr.contains(&json!("user")) && amr.contains(&json!("mfa")),
        "{claims}"
    );
    assert!(!amr.contains(&json!("pwd")), "{claims}");
    assert_eq!(claims["acr"], "phr");
}

/// The demo (Sigil, App A, App B on the given hosts, ports chosen by the system) running in the
/// background, and the browser tools; the temp dir lives as long as the returned value.
struct Running {
    sigil_url: String,
    app_a: String,
    app_b: String,
    credentials: sigil::demo::DemoCredentials,
    browser: Browser,
    shots: PathBuf,
    _dir: tempfile::TempDir,
}

async fn run_demo(sigil: &str, app_a: &str, app_b: &str) -> Running {
    let chromium = tool("SIGIL_TEST_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = tool("SIGIL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::default();
    settings.http.workers = 2;
    let demo = Demo::start(DemoConfig {
        settings,
        dir: dir.path().join("demo"),
        sigil: Site::new(sigil, 0),
        app_a: Site::new(app_a, 0),
        app_b: Site::new(app_b, 0),
    })
    .await
    .expect("the demo starts");
    let running = Running {
        sigil_url: demo.sigil_url.clone(),
        app_a: demo.app_a_url.clone(),
        app_b: demo.app_b_url.clone(),
        credentials: demo.credentials.clone(),
        browser: Browser::start(&chromedriver, &chromium).await,
        shots: screenshot_dir(),
        _dir: dir,
    };
    tokio::spawn(demo.run_until_stopped());
    running
}

/// From Sigil's login page (waited for), the demo user's password, submitted.
async fn submit_password(
    browser: &Browser,
    sigil_url: &str,
    credentials: &sigil::demo::DemoCredentials,
) {
    browser
        .wait_for_url(|u| u.starts_with(&format!("{sigil_url}/login?")))
        .await;
    let username = browser.find("input[name=username]").await;
    let password = browser.find("input[name=password]").await;
    browser.type_into(&username, &credentials.username).await;
    browser.type_into(&password, &credentials.password).await;
    browser.click("form button[type=submit]").await;
}

/// The path of a required tool; panics (the test fails) when it is missing.
fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into());
    assert!(
        path.is_file(),
        "{} is missing: the browser test needs headless Chromium and chromedriver \
         (Debian: apt-get install chromium chromium-driver; or set {env})",
        path.display()
    );
    path
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/test-output/screenshots");
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromedriver with one Chromium session. Dropping it (also on panic) ends the session, so
/// that Chromium quits, and then stops chromedriver.
struct Browser {
    driver: Child,
    port: u16,
    http: reqwest::Client,
    base: String,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromedriver: &Path, chromium: &Path) -> Self {
        let port = free_port();
        // On a fresh checkout target/test-output does not exist yet; chromedriver exits when
        // it cannot open its log.
        let log = screenshot_dir()
            .parent()
            .expect("target/test-output")
            .join(format!("chromedriver-{port}.log"));
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().expect("profile dir");
        let mut browser = Self {
            driver,
            port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            profile,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = browser
                .http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await;
            if let Ok(r) = ready {
                let status: Value = r.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                browser.driver.try_wait().unwrap().is_none(),
                "chromedriver exited at start"
            );
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready in {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!(
            "--user-data-dir={}",
            browser.profile.path().display()
        )])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let r = browser.command("POST", "/session", Some(caps)).await;
        let id = r["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"));
        browser.base = format!("http://127.0.0.1:{port}/session/{id}");
        browser
    }

    /// One WebDriver command; panics on an error answer.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.try_command(method, path, body).await;
        assert!(status < 300, "WebDriver {method} {path}: {status} {value}");
        value
    }

    /// One WebDriver command: (HTTP status, the answer's `value`).
    async fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = if path == "/session" {
            format!("http://127.0.0.1:{}{path}", self.port)
        } else {
            format!("{}{path}", self.base)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url).json(&body.unwrap_or(json!({}))),
            "DELETE" => self.http.delete(url),
            other => panic!("method {other}"),
        };
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("WebDriver answers JSON");
        (status, v["value"].clone())
    }

    async fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.command("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page source and the browser console (CSP violations show there), for failures.
    async fn source(&self) -> String {
        let v = self.command("GET", "/source", None).await;
        let (_, log) = self
            .try_command("POST", "/se/log", Some(json!({"type": "browser"})))
            .await;
        let console = log
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| format!("  {} {}", e["level"], e["message"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        format!(
            "{}\n--- browser console:\n{console}",
            v.as_str().unwrap_or_default()
        )
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let (status, v) = self
            .try_command(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        (status == 200)
            .then(|| v[ELEMENT].as_str().map(str::to_string))
            .flatten()
    }

    /// Waits (bounded) for an element; returns its reference.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no {css} within {WAIT:?} at {}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_for_url(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if pred(&url) {
                return url;
            }
            if Instant::now() >= deadline {
                panic!("still at {url} after {WAIT:?}:\n{}", self.source().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.command("POST", &format!("/element/{e}/click"), None)
            .await;
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for_text(css, |_| true).await
    }

    /// The text of `css` once it satisfies `pred`. An element of a page that a posted form is
    /// replacing can go stale between being found and being read: it is then found again.
    async fn wait_for_text(&self, css: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.find(css).await;
            let (status, v) = self
                .try_command("GET", &format!("/element/{e}/text"), None)
                .await;
            // Chromedriver calls an element of a replaced page stale, or no longer finds it.
            let stale = matches!(
                v["error"].as_str(),
                Some("stale element reference" | "no such element")
            );
            assert!(
                status < 300 || stale,
                "WebDriver text of {css}: {status} {v}"
            );
            let text = v.as_str().unwrap_or_default();
            if !stale && pred(text) {
                return text.to_string();
            }
            if Instant::now() >= deadline {
                panic!("{css} is {text:?} after {WAIT:?}:\n{}", self.source().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn screenshot(&self, path: &Path) {
        self.screenshot_of("/screenshot", path).await;
    }

    /// A screenshot of the element `css` alone (scrolled into view).
    async fn element_screenshot(&self, css: &str, path: &Path) {
        let e = self.find(css).await;
        self.screenshot_of(&format!("/element/{e}/screenshot"), path)
            .await;
    }

    async fn screenshot_of(&self, endpoint: &str, path: &Path) {
        let v = self.command("GET", endpoint, None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a base64 screenshot"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Blocking, because Drop cannot await: DELETE the session (Chromium quits), then ask
        // chromedriver to shut down, then kill it if it is still there.
        if let Some(path) = self
            .base
            .strip_prefix(&format!("http://127.0.0.1:{}", self.port))
        {
            if path.starts_with("/session/") {
                raw_request(self.port, "DELETE", path);
            }
        }
        raw_request(self.port, "GET", "/shutdown");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A minimal blocking HTTP/1.1 request, for use in Drop.
fn raw_request(port: u16, method: &str, path: &str) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
}
