//! Issue 14, "Behind nginx, two nodes": contrib/nginx/sigil.conf, filled in and run by Debian's
//! nginx with a certificate the test makes, in front of two `sigil serve` processes on one
//! PostgreSQL database, issuer `https://localhost:PORT`. Everything goes through nginx: a
//! sign-in with the code flow sets `__Host-` Secure cookies; throttling counts the client's own
//! address, which the client cannot choose with `X-Forwarded-For` or `Forwarded`; a rotation by
//! `sigil keys rotate` reaches both nodes and tokens signed before and after it verify against
//! the JWKS; and once the node that signed the user in is killed (SIGKILL) in the middle of a
//! stream of token requests, every request started after the kill succeeds, single sign-on, a
//! code redemption and a refresh included.

mod proxy;
mod stream;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel::Connection;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use sigil::config::{Secret, Settings};
use sigil::crypto::master_key::MasterKey;
use sigil::storage::{login_failures, AnyConnection};

use crate::flow::{hidden, location, query, CHALLENGE, PASSWORD, REDIRECT, VERIFIER};
use crate::helpers::{form_encode, jwt_parts, sigil_command, verify_with_jwks, PgDatabase};
use crate::pg_cluster::free_port;
use crate::server_process::{register_client, ServerProcess};
use proxy::Nginx;
use stream::Stream;

/// The Sigil side of the deployment, as contrib/nginx/sigil.conf describes it, plus key and
/// sign-in timings short enough for a test.
const NODE_CONFIG: &str = r#"
[http]
trusted_proxies = ["127.0.0.1/32"]

[keys]
jwks_max_age = "1s"
refresh_interval = "200ms"

[login]
refusal_delay = "0s"
"#;

/// Two nodes behind nginx; fields drop in order: nginx and the nodes before the database.
struct Deployment {
    issuer: String,
    http_port: u16,
    nginx: Nginx,
    /// (`127.0.0.1:PORT`, the process while it runs)
    nodes: Vec<(String, Option<ServerProcess>)>,
    ca: reqwest::Certificate,
    settings: Settings,
    config: PathBuf,
    _pg: PgDatabase,
    dir: tempfile::TempDir,
}

fn distinct_ports<const N: usize>() -> [u16; N] {
    let mut ports = Vec::new();
    while ports.len() < N {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports.try_into().unwrap()
}

impl Deployment {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // nginx's workers run as another user when the test runs as root: they must reach the
        // temporary files under the prefix.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pg = PgDatabase::create();
        let [port_a, port_b, https_port, http_port] = distinct_ports();
        let issuer = format!("https://localhost:{https_port}");
        let tls = proxy::certificate(dir.path());
        let site = proxy::render(
            &proxy::site_template(),
            &[
                ("SERVER_NAME", "localhost".into()),
                ("ISSUER", issuer.clone()),
                ("HTTPS_LISTEN", format!("127.0.0.1:{https_port}")),
                ("HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
                ("TLS_CERT", tls.cert.display().to_string()),
                ("TLS_KEY", tls.key.display().to_string()),
                ("SIGIL_NODE_A", format!("127.0.0.1:{port_a}")),
                ("SIGIL_NODE_B", format!("127.0.0.1:{port_b}")),
            ],
        );
        let nginx = Nginx::start(dir.path(), &site);

        let config = dir.path().join("sigil.toml");
        std::fs::write(&config, NODE_CONFIG).unwrap();
        let mut settings = Settings {
            master_key: Some(Secret::new(MasterKey::generate().to_base64())),
            database_url: Secret::new(pg.url.clone()),
            issuer: url::Url::parse(&issuer).unwrap(),
            ..Settings::default()
        };
        let mut nodes = Vec::new();
        for port in [port_a, port_b] {
            settings.bind = format!("127.0.0.1:{port}");
            let env = [("SIGIL_CONFIG", config.to_str().unwrap())];
            let node = ServerProcess::start(&settings, dir.path(), &env).await;
            nodes.push((settings.bind.clone(), Some(node)));
        }
        let mut d = Self {
            issuer,
            http_port,
            nginx,
            nodes,
            ca: reqwest::Certificate::from_pem(&tls.ca_pem).unwrap(),
            settings,
            config,
            _pg: pg,
            dir,
        };
        let http = d.client(None, false);
        let ready = format!("{}/readyz", d.issuer);
        d.nginx.wait_ready(&http, &ready).await;
        d
    }

    /// A client that trusts the test's authority and nothing else, reaches `localhost` at
    /// 127.0.0.1 and connects from `from` (nginx then sees that address).
    fn client(&self, from: Option<IpAddr>, cookies: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca.clone())
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .cookie_store(cookies)
            .timeout(Duration::from_secs(20));
        if let Some(ip) = from {
            b = b.local_address(ip);
        }
        b.build().unwrap()
    }

    /// The `sigil` CLI with the nodes' configuration, against the shared database.
    fn sigil(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        sigil_command(&self.settings, self.dir.path(), &all, stdin)
    }

    fn add_user(&self, name: &str) {
        let email = format!("{name}@example.com");
        let out = self.sigil(
            &["user", "add", name, "--email", &email, "--password-stdin"],
            Some(PASSWORD),
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The node (`127.0.0.1:PORT`) that answered the first `method path` nginx logged from
    /// line `from` on.
    async fn answered(&self, from: usize, method: &str, path: &str) -> String {
        let is = |a: &proxy::Access| a.method == method && a.path == path;
        let log = self.nginx.logged(from, |l| l.iter().any(is)).await;
        log.into_iter().find(is).unwrap().node().to_string()
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A browser's part of the code flow: GET /authorize, then Sigil's own redirects, signing in
/// as `username` when the login page comes, until the redirect to the client. Returns the code
/// and every `Set-Cookie` Sigil sent on the way.
async fn code_flow(
    d: &Deployment,
    browser: &reqwest::Client,
    authorize: &str,
    username: &str,
) -> (String, Vec<String>) {
    let mut set_cookies = Vec::new();
    let mut r = browser.get(authorize).send().await.unwrap();
    for _ in 0..6 {
        set_cookies.extend(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string()),
        );
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
        let to = location(&r);
        if to.starts_with(REDIRECT) {
            let code = query(&to).get("code").cloned();
            return (code.unwrap_or_else(|| panic!("{to}")), set_cookies);
        }
        assert!(to.starts_with(&d.issuer), "{to} leaves the issuer");
        r = if to.contains("/login?") {
            let (request, csrf) = login_form_at(browser, &to).await;
            post_login(d, browser, &request, &csrf, username, PASSWORD, &[]).await
        } else {
            browser.get(&to).send().await.unwrap()
        };
    }
    panic!("too many redirects");
}

/// The login page at `url`: its parked request and CSRF token.
async fn login_form_at(browser: &reqwest::Client, url: &str) -> (String, String) {
    let page = browser.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    (hidden(&html, "request"), hidden(&html, "csrf_token"))
}

async fn post_login(
    d: &Deployment,
    browser: &reqwest::Client,
    request: &str,
    csrf: &str,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut post = browser.post(d.url("/login")).form(&[
        ("request", request),
        ("csrf_token", csrf),
        ("username", username),
        ("password", password),
    ]);
    for (name, value) in headers {
        post = post.header(*name, *value);
    }
    post.send().await.unwrap()
}

async fn token(
    http: &reqwest::Client,
    endpoint: &str,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
) -> Value {
    let r = http
        .post(endpoint)
        .basic_auth(form_encode(id), Some(form_encode(secret)))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "token request {form:?}");
    r.json().await.unwrap()
}

async fn redeem(http: &reqwest::Client, endpoint: &str, client: (&str, &str), code: &str) -> Value {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    token(http, endpoint, client, &form).await
}

fn kid(jwt: &str) -> String {
    jwt_parts(jwt).0["kid"].as_str().expect("kid").to_string()
}

/// `sigil keys rotate --alg RS256`, retried while the next key has not been published for
/// 2 × `jwks_max_age` yet (exit status 2); the kid it activated.
async fn rotate(d: &Deployment) -> String {
    for _ in 0..40 {
        let out = d.sigil(&["keys", "rotate", "--alg", "RS256"], None);
        if out.status.success() {
            let done: Value = serde_json::from_slice(&out.stdout).expect("rotate prints JSON");
            let rs = done
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["alg"] == "RS256");
            return rs.expect("RS256 rotated")["activated"]
                .as_str()
                .unwrap()
                .to_string();
        }
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("published for"), "{}", text(&out));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("sigil keys rotate kept refusing");
}

/// Failed sign-ins from 127.0.0.2 lock 127.0.0.2 and no other address, and no forwarding
/// header a client writes changes which address it is.
async fn throttling_sees_the_client_address(d: &Deployment, authorize: &str) {
    let (attacker_ip, user_ip) = ("127.0.0.2", "127.0.0.3");
    let mark = d.nginx.access_log().len();
    let attacker = d.client(Some(attacker_ip.parse().unwrap()), true);
    let r = attacker.get(authorize).send().await.unwrap();
    let (request, csrf) = login_form_at(&attacker, &location(&r)).await;
    // Wrong passwords for bob (login.max_failures is 5): bob and this address are locked.
    for _ in 0..5 {
        let r = post_login(d, &attacker, &request, &csrf, "bob", "wrong", &[]).await;
        assert_eq!(r.status(), 401);
    }
    // Alice's right password from the attacker's address is refused, whatever it claims.
    for headers in [
        vec![],
        vec![("X-Forwarded-For", "198.51.100.9")],
        vec![("Forwarded", "for=198.51.100.9")],
        vec![("X-Forwarded-For", user_ip), ("Forwarded", "for=127.0.0.3")],
    ] {
        let r = post_login(d, &attacker, &request, &csrf, "alice", PASSWORD, &headers).await;
        assert_eq!(r.status(), 429, "{headers:?}");
        assert!(r.headers().contains_key("retry-after"));
    }
    // From another address Alice signs in, even when it names the locked one.
    let user = d.client(Some(user_ip.parse().unwrap()), true);
    let r = user.get(authorize).send().await.unwrap();
    let (request, csrf) = login_form_at(&user, &location(&r)).await;
    let headers = [
        ("X-Forwarded-For", attacker_ip),
        ("Forwarded", "for=127.0.0.2"),
    ];
    let r = post_login(d, &user, &request, &csrf, "alice", PASSWORD, &headers).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);

    // nginx saw both addresses.
    d.nginx
        .logged(mark, |log| {
            [(attacker_ip, 429), (user_ip, 303)]
                .iter()
                .all(|(ip, status)| {
                    log.iter()
                        .any(|a| a.client == *ip && a.path == "/login" && a.status == *status)
                })
        })
        .await;
    // What the nodes counted, in the shared database: the attacker's address, not nginx's
    // (127.0.0.1), not the user's, not an address a client wrote.
    let mut db = AnyConnection::establish(d.settings.database_url.expose()).unwrap();
    let mut count = |ip: &str| login_failures::get(&mut db, &format!("ip:{ip}")).unwrap();
    let locked = count(attacker_ip).expect("the attacker's address is counted");
    assert!(locked.failures >= 5 && locked.lockouts >= 1, "{locked:?}");
    for ip in ["127.0.0.1", user_ip, "198.51.100.9"] {
        if let Some(row) = count(ip) {
            assert_eq!((row.failures, row.lockouts), (0, 0), "{row:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_behind_nginx_sign_in_rotate_throttle_and_survive_a_sigkill() {
    let mut d = Deployment::start().await;
    let rp_metadata = json!({
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid email offline_access",
        "skip_consent": true,
    });
    let rp_secret = register_client(&d.settings, d.dir.path(), "rp", &rp_metadata)["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let rp = ("rp", rp_secret.as_str());
    let svc_metadata = json!({"grant_types": ["client_credentials"], "scope": "api:read"});
    let svc_secret = register_client(&d.settings, d.dir.path(), "svc", &svc_metadata)
        ["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let svc = ("svc", svc_secret.as_str());
    d.add_user("alice");
    d.add_user("bob");
    let http = d.client(None, false);
    let issuer = d.issuer.clone();

    // Plain HTTP only redirects to the issuer.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let path = "/.well-known/openid-configuration";
    let r = plain
        .get(format!("http://127.0.0.1:{}{path}", d.http_port))
        .header("Host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(location(&r), format!("{issuer}{path}"));

    // Discovery over TLS names the configured issuer; HSTS comes from nginx.
    let r = http.get(format!("{issuer}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["issuer"], issuer.as_str());
    let endpoint = |name: &str| {
        let url = doc[name].as_str().unwrap().to_string();
        assert!(url.starts_with(&issuer), "{name}: {url}");
        url
    };
    let (token_url, jwks_url) = (endpoint("token_endpoint"), endpoint("jwks_uri"));
    let userinfo_url = endpoint("userinfo_endpoint");
    let authorization_endpoint = endpoint("authorization_endpoint");
    let authorize = |state: &str| {
        let mut url = url::Url::parse(&authorization_endpoint).unwrap();
        url.query_pairs_mut().extend_pairs([
            ("client_id", "rp"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid email offline_access"),
            ("state", state),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        url.to_string()
    };
    // A sign-in with the code flow: every cookie is `__Host-` and Secure.
    let browser = d.client(None, true);
    let mark = d.nginx.access_log().len();
    let (code, set_cookies) = code_flow(&d, &browser, &authorize("s1"), "alice").await;
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with("__Host-sigil_session=")),
        "{set_cookies:?}"
    );
    for cookie in &set_cookies {
        let attributes: Vec<String> = cookie
            .split(';')
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        assert!(attributes.contains(&"secure".into()), "{cookie}");
        assert!(attributes.contains(&"path=/".into()), "{cookie}");
        assert!(!attributes.iter().any(|a| a.starts_with("domain=")));
    }
    let signed_in_at = d.answered(mark, "POST", "/login").await;
    let first = redeem(&http, &token_url, rp, &code).await;
    let id_token = first["id_token"].as_str().unwrap().to_string();
    let access_token = first["access_token"].as_str().unwrap().to_string();
    let refresh_token = first["refresh_token"].as_str().unwrap().to_string();

    throttling_sees_the_client_address(&d, &authorize("s2")).await;

    // A key rotation by the CLI reaches both nodes; old and new tokens verify.
    let old_kid = kid(&id_token);
    let new_kid = rotate(&d).await;
    assert_ne!(old_kid, new_kid);
    let cc = [("grant_type", "client_credentials")];
    let (mut in_a_row, mut asked, mark) = (0, 0, d.nginx.access_log().len());
    for _ in 0..100 {
        let t = token(&http, &token_url, svc, &cc).await;
        asked += 1;
        let signed_by = kid(t["access_token"].as_str().unwrap());
        in_a_row = if signed_by == new_kid {
            in_a_row + 1
        } else {
            0
        };
        if in_a_row == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(in_a_row, 4, "the nodes did not sign with {new_kid}");
    let is_token = |a: &proxy::Access| a.method == "POST" && a.path == "/token";
    let last_four: Vec<String> = d
        .nginx
        .logged(mark, |l| l.iter().filter(|a| is_token(a)).count() == asked)
        .await
        .iter()
        .rev()
        .filter(|a| is_token(a))
        .take(4)
        .map(|a| a.node().to_string())
        .collect();
    for (node, _) in &d.nodes {
        assert!(
            last_four.contains(node),
            "{node} answered none of {last_four:?}"
        );
    }
    let new_token = token(&http, &token_url, svc, &cc).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(kid(&new_token), new_kid);
    for _ in 0..2 {
        // Twice: round robin asks each node once.
        let jwks: Value = http
            .get(&jwks_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for jwt in [&id_token, &access_token, &new_token] {
            verify_with_jwks(jwt, &jwks, "RS256").unwrap_or_else(|e| panic!("{e}: {jwks}"));
        }
    }

    // SIGKILL the node that signed Alice in, in the middle of a stream of requests.
    let stream = Stream::start(http.clone(), token_url.clone(), svc);
    stream.wait_for(40, Instant::now()).await;
    let victim = d
        .nodes
        .iter()
        .position(|(a, _)| *a == signed_in_at)
        .unwrap();
    d.nodes[victim].1.take().expect("running").kill();
    let killed_at = Instant::now();
    let survivor = d.nodes[1 - victim].0.clone();

    // Single sign-on from the survivor: straight back to the client with a code.
    let mark = d.nginx.access_log().len();
    let r = browser.get(authorize("s3")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "no single sign-on: {to}");
    assert_eq!(d.answered(mark, "GET", "/authorize").await, survivor);
    // Its code is redeemed, the refresh token from before the kill is used, and the new
    // access token reads userinfo.
    let redeemed = redeem(&http, &token_url, rp, &query(&to)["code"]).await;
    assert!(redeemed["id_token"].is_string());
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token),
    ];
    let refreshed = token(&http, &token_url, rp, &refresh).await;
    let r = http
        .get(&userinfo_url)
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let claims: Value = r.json().await.unwrap();
    assert_eq!(claims["email"], "alice@example.com");

    stream.wait_for(40, killed_at).await;
    let records = stream.stop().await;
    let (before, after): (Vec<_>, Vec<_>) = records.iter().partition(|(t, _)| *t < killed_at);
    let failed_after: Vec<_> = after.iter().filter(|(_, o)| *o != Ok(200)).collect();
    assert!(
        failed_after.is_empty(),
        "{} of {} requests started after the kill failed: {failed_after:?}",
        failed_after.len(),
        after.len()
    );
    // nginx met the dead node (requests in flight there failed, or a connection was refused)
    // and took it out of rotation.
    let dead = &d.nodes[victim].0;
    let log = d.nginx.error_log();
    assert!(
        log.lines().any(
            |l| l.contains("upstream server temporarily disabled") && l.contains(dead.as_str())
        ),
        "{log}"
    );
    let failed_before = before.iter().filter(|(_, o)| *o != Ok(200)).count();
    eprintln!(
        "{} requests before the kill ({failed_before} failed: in flight on the killed node), {} \
         after (none failed)",
        before.len(),
        after.len()
    );
}
