//! Load generator for Sigil's browser flows, run by hand through `bench/flow.sh` (never in CI).
//! Three measurements against a running `sigil serve`:
//!
//! 1. `auth_code_flow`: the whole authorization-code flow with an existing session, per second.
//!    Each worker signs in once (authorize → login page → POST /login → resume → code; the
//!    client has `skip_consent`), then loops: GET /authorize (`prompt=none`, S256 PKCE) with its
//!    session cookie → 303 with a `code` → POST /token (`authorization_code`,
//!    client_secret_basic, `code_verifier`) → 200. Latency is that of the whole flow.
//! 2. `refresh`: each worker holds a refresh token and loops POST /token
//!    `grant_type=refresh_token`, keeping the rotated token each time.
//! 3. `discovery_under_login`: the p99 latency of GET /.well-known/openid-configuration from a
//!    steady, paced stream (DISC_CLIENTS clients at DISC_RATE req/s each), first idle, then
//!    while LOGINS workers each loop a full password sign-in (GET /authorize `prompt=login` →
//!    GET /login → POST /login, argon2id → GET /authorize/resume → 303 with a code). DESIGN.md
//!    "Performance": argon2 runs on the blocking pool and must not stall the server; the target
//!    is p99 loaded ≤ 2 × p99 idle.
//!
//! Every worker has its own `reqwest::Client` (its own cookie jar and keep-alive connection,
//! redirects not followed). Before each measurement it waits (at most QUIET_WAIT_S) until the
//! machine is idle, like `bench/run.sh`; each measurement has an unrecorded warm-up. With
//! `--server-pid` it also reports the server's CPU, its own CPU, everything else's, and the
//! server's peak RSS (VmHWM, reset through `clear_refs` when the window opens).
//!
//! Output: progress on stderr; on stdout one JSON line per measurement (they start with `{`),
//! then a table.
//!
//! ```text
//! cargo build --release --example flow_bench
//! target/release/examples/flow_bench --issuer http://127.0.0.1:3300 --client-id bench \
//!     --client-secret S --username bench --password P --duration 15s --concurrency 32
//! ```
//!
//! Options (environment variable in brackets, then default):
//!   --issuer [ISSUER] (required)          --client-id [CLIENT_ID] bench
//!   --client-secret [CLIENT_SECRET] (required)
//!   --username [BENCH_USERNAME] bench     --password [BENCH_PASSWORD] (required)
//!   --redirect-uri [REDIRECT_URI] http://127.0.0.1:9/cb
//!   --duration [DUR] 15s                  --warmup [WARMUP] 2s
//!   --concurrency [CONC] 32               --logins [LOGINS] 16
//!   --discovery-clients [DISC_CLIENTS] 4  --discovery-rate [DISC_RATE] 250 (req/s per client)
//!   --only [ONLY] "flow refresh discovery" --label [LABEL] ""  (e.g. the backend)
//!   --server-pid [SERVER_PID]             --quiet-wait [QUIET_WAIT_S] 180 (seconds; 0 = off)

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sigil::crypto::{b64url, sha256};

/// The fixed PKCE verifier of every flow (RFC 7636 appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const DISCOVERY: &str = "/.well-known/openid-configuration";

type Res<T> = Result<T, String>;

// ------------------------------------------------------------------------------------ options

#[derive(Debug, Clone)]
struct Opts {
    issuer: String,
    client_id: String,
    client_secret: String,
    username: String,
    password: String,
    redirect_uri: String,
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    logins: usize,
    disc_clients: usize,
    disc_rate: f64,
    only: Vec<String>,
    label: String,
    server_pid: Option<u32>,
    quiet_wait: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: flow_bench --issuer URL --client-id ID --client-secret S --username U --password P \
         [--redirect-uri URI] [--duration 15s] [--warmup 2s] [--concurrency 32] [--logins 16] \
         [--discovery-clients 4] [--discovery-rate 250] [--only 'flow refresh discovery'] \
         [--label NAME] [--server-pid PID] [--quiet-wait 180]\n\
         (each option can also come from its environment variable; see the top of examples/flow_bench.rs)"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    const KEYS: &[(&str, &str)] = &[
        ("issuer", "ISSUER"),
        ("client-id", "CLIENT_ID"),
        ("client-secret", "CLIENT_SECRET"),
        ("username", "BENCH_USERNAME"),
        ("password", "BENCH_PASSWORD"),
        ("redirect-uri", "REDIRECT_URI"),
        ("duration", "DUR"),
        ("warmup", "WARMUP"),
        ("concurrency", "CONC"),
        ("logins", "LOGINS"),
        ("discovery-clients", "DISC_CLIENTS"),
        ("discovery-rate", "DISC_RATE"),
        ("only", "ONLY"),
        ("label", "LABEL"),
        ("server-pid", "SERVER_PID"),
        ("quiet-wait", "QUIET_WAIT_S"),
    ];
    let mut given: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            usage();
        }
        let Some(name) = a.strip_prefix("--") else {
            eprintln!("unexpected argument {a:?}");
            usage()
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (name.to_string(), args.next().unwrap_or_else(|| usage())),
        };
        if !KEYS.iter().any(|(k, _)| *k == name) {
            eprintln!("unknown option --{name}");
            usage();
        }
        given.insert(name, value);
    }
    let get = |key: &str| -> Option<String> {
        given.get(key).cloned().or_else(|| {
            let env = KEYS.iter().find(|(k, _)| *k == key).expect("known key").1;
            std::env::var(env).ok().filter(|v| !v.is_empty())
        })
    };
    let required = |key: &str| {
        get(key).unwrap_or_else(|| {
            eprintln!("--{key} is required");
            usage()
        })
    };
    let duration = |key: &str, default: &str| {
        let raw = get(key).unwrap_or_else(|| default.to_string());
        humantime::parse_duration(&raw).unwrap_or_else(|e| {
            eprintln!("--{key} {raw:?}: {e}");
            usage()
        })
    };
    fn num<T: std::str::FromStr>(key: &str, raw: Option<String>, default: T) -> T {
        match raw {
            None => default,
            Some(r) => r.parse().unwrap_or_else(|_| {
                eprintln!("--{key} {r:?} is not a number");
                usage()
            }),
        }
    }
    let opts = Opts {
        issuer: required("issuer").trim_end_matches('/').to_string(),
        client_id: get("client-id").unwrap_or_else(|| "bench".into()),
        client_secret: required("client-secret"),
        username: get("username").unwrap_or_else(|| "bench".into()),
        password: required("password"),
        redirect_uri: get("redirect-uri").unwrap_or_else(|| "http://127.0.0.1:9/cb".into()),
        duration: duration("duration", "15s"),
        warmup: duration("warmup", "2s"),
        concurrency: num("concurrency", get("concurrency"), 32),
        logins: num("logins", get("logins"), 16),
        disc_clients: num("discovery-clients", get("discovery-clients"), 4),
        disc_rate: num("discovery-rate", get("discovery-rate"), 250.0),
        only: get("only")
            .unwrap_or_else(|| "flow refresh discovery".into())
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        label: get("label").unwrap_or_default(),
        server_pid: get("server-pid").map(|p| num("server-pid", Some(p), 0u32)),
        quiet_wait: num("quiet-wait", get("quiet-wait"), 180u64),
    };
    for o in &opts.only {
        if !["flow", "refresh", "discovery"].contains(&o.as_str()) {
            eprintln!("--only: unknown measurement {o:?} (flow, refresh, discovery)");
            usage();
        }
    }
    if opts.concurrency == 0
        || opts.disc_clients == 0
        || opts.disc_rate <= 0.0
        || opts.duration.is_zero()
    {
        eprintln!("concurrency, discovery clients, discovery rate and duration must be above zero");
        usage();
    }
    opts
}

// ------------------------------------------------------------------------------------ HTTP

struct Ctx {
    o: Opts,
    challenge: String,
    /// `Authorization: Basic …` of the client (RFC 6749 §2.3.1: id and secret form-encoded).
    basic: String,
    token_url: String,
}

impl Ctx {
    fn new(o: Opts) -> Self {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&o.client_id),
                enc(&o.client_secret)
            ))
        );
        Self {
            challenge: b64url(&sha256(VERIFIER.as_bytes())),
            basic,
            token_url: format!("{}/token", o.issuer),
            o,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.o.issuer, path)
    }

    fn authorize_url(&self, prompt: Option<&str>, state: &str) -> String {
        let mut u = url::Url::parse(&self.url("/authorize")).expect("issuer URL");
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", &self.o.client_id)
                .append_pair("redirect_uri", &self.o.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid")
                .append_pair("state", state)
                .append_pair("code_challenge", &self.challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(p) = prompt {
                q.append_pair("prompt", p);
            }
        }
        u.into()
    }
}

/// One browser: its own cookie jar and connection, no automatic redirects.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

fn location(r: &Response) -> Res<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("{} without a Location", r.status()))
}

/// Describes an unexpected answer (status, Location, start of the body).
async fn unexpected(what: &str, r: Response) -> String {
    let status = r.status();
    let loc = location(&r).unwrap_or_default();
    let body = r.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    format!("{what}: HTTP {status} location={loc:?} body={body:?}")
}

fn net(what: &str) -> impl Fn(reqwest::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn hidden(html: &str, name: &str) -> Res<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| format!("no hidden input {name} in the login page"))?
        + marker.len();
    let end = html[start..]
        .find('"')
        .ok_or("unterminated value in the login page")?
        + start;
    Ok(html[start..end].to_string())
}

/// A 303 to the client: its `code` (or the error it carries).
async fn code_from(what: &str, r: Response, redirect_uri: &str) -> Res<String> {
    if r.status() != StatusCode::SEE_OTHER {
        return Err(unexpected(what, r).await);
    }
    let to = location(&r)?;
    if !to.starts_with(redirect_uri) {
        return Err(format!(
            "{what}: 303 to {to:?}, expected the client's redirect_uri"
        ));
    }
    let q: HashMap<String, String> = url::Url::parse(&to)
        .map_err(|e| format!("{what}: bad Location {to:?}: {e}"))?
        .query_pairs()
        .into_owned()
        .collect();
    match q.get("code") {
        Some(c) => Ok(c.clone()),
        None => Err(format!("{what}: 303 to the client without a code: {to}")),
    }
}

/// The full password sign-in: authorize (no prompt, or `prompt=login`) → login page → POST
/// /login → resume → the code for the client (skip_consent: no consent page).
async fn sign_in(ctx: &Ctx, b: &Client, prompt: Option<&str>) -> Res<String> {
    let r = b
        .get(ctx.authorize_url(prompt, "signin"))
        .send()
        .await
        .map_err(net("GET /authorize"))?;
    if r.status() != StatusCode::SEE_OTHER {
        return Err(unexpected("GET /authorize (sign-in)", r).await);
    }
    let login_url = location(&r)?;
    if !login_url.contains("/login?") {
        return Err(format!(
            "GET /authorize (sign-in): 303 to {login_url:?}, expected the login page"
        ));
    }
    let page = b.get(&login_url).send().await.map_err(net("GET /login"))?;
    if page.status() != StatusCode::OK {
        return Err(unexpected("GET /login", page).await);
    }
    let html = page.text().await.map_err(net("GET /login body"))?;
    let (request, csrf) = (hidden(&html, "request")?, hidden(&html, "csrf_token")?);
    let r = b
        .post(ctx.url("/login"))
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("username", ctx.o.username.as_str()),
            ("password", ctx.o.password.as_str()),
        ])
        .send()
        .await
        .map_err(net("POST /login"))?;
    if r.status() != StatusCode::SEE_OTHER {
        return Err(unexpected("POST /login", r).await);
    }
    let resume = location(&r)?;
    if !resume.contains("/authorize/resume?") {
        return Err(format!(
            "POST /login: 303 to {resume:?}, expected /authorize/resume"
        ));
    }
    let r = b
        .get(&resume)
        .send()
        .await
        .map_err(net("GET /authorize/resume"))?;
    code_from("GET /authorize/resume", r, &ctx.o.redirect_uri).await
}

/// GET /authorize with `prompt=none` and the session cookie → the code.
async fn silent_code(ctx: &Ctx, b: &Client, authorize_url: &str) -> Res<String> {
    let r = b
        .get(authorize_url)
        .send()
        .await
        .map_err(net("GET /authorize prompt=none"))?;
    code_from("GET /authorize prompt=none", r, &ctx.o.redirect_uri).await
}

/// POST /token with client_secret_basic; the JSON of a 200.
async fn token(ctx: &Ctx, http: &Client, form: &[(&str, &str)], what: &str) -> Res<Value> {
    let r = http
        .post(&ctx.token_url)
        .header("Authorization", &ctx.basic)
        .form(form)
        .send()
        .await
        .map_err(net(what))?;
    if r.status() != StatusCode::OK {
        return Err(unexpected(what, r).await);
    }
    let v: Value = r.json().await.map_err(net(what))?;
    if !v["access_token"].is_string() {
        return Err(format!("{what}: 200 without an access_token: {v}"));
    }
    Ok(v)
}

async fn exchange(ctx: &Ctx, http: &Client, code: &str) -> Res<Value> {
    token(
        ctx,
        http,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &ctx.o.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
        "POST /token authorization_code",
    )
    .await
}

/// A fresh refresh token for a signed-in browser (silent authorization + code exchange).
async fn new_refresh_token(ctx: &Ctx, b: &Client) -> Res<String> {
    let code = silent_code(ctx, b, &ctx.authorize_url(Some("none"), "rt")).await?;
    let v = exchange(ctx, b, &code).await?;
    v["refresh_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("the code exchange returned no refresh_token: {v}"))
}

// ------------------------------------------------------------------------------------ tallies

/// The recording window of a measurement: iterations that start and end inside it count.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn after(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + duration,
        }
    }
}

#[derive(Default)]
struct Tally {
    lat_us: Vec<u64>,
    /// For the paced discovery stream: from the scheduled send time (coordinated omission).
    sched_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn record<T>(&mut self, win: &Window, s: Instant, e: Instant, res: &Res<T>) {
        if let Err(msg) = res {
            if self.first_error.is_none() {
                self.first_error = Some(msg.clone());
            }
        }
        if s < win.start || e > win.end {
            return;
        }
        match res {
            Ok(_) => self.lat_us.push((e - s).as_micros() as u64),
            Err(_) => self.errors += 1,
        }
    }

    fn merge(mut all: Vec<Tally>) -> Tally {
        let mut t = Tally::default();
        for x in all.iter_mut() {
            t.lat_us.append(&mut x.lat_us);
            t.sched_us.append(&mut x.sched_us);
            t.errors += x.errors;
            if t.first_error.is_none() {
                t.first_error = x.first_error.take();
            }
        }
        t.lat_us.sort_unstable();
        t.sched_us.sort_unstable();
        t
    }
}

/// Nearest-rank percentile in milliseconds of sorted microseconds.
fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

fn r2(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 100.0).round() / 100.0)
    } else {
        Value::Null
    }
}

fn stats(t: &Tally, secs: f64) -> Value {
    let mut v = json!({
        "ok": t.lat_us.len(),
        "errors": t.errors,
        "per_s": r2(t.lat_us.len() as f64 / secs),
        "p50_ms": r2(pct(&t.lat_us, 50.0)),
        "p90_ms": r2(pct(&t.lat_us, 90.0)),
        "p99_ms": r2(pct(&t.lat_us, 99.0)),
        "max_ms": r2(pct(&t.lat_us, 100.0)),
    });
    if !t.sched_us.is_empty() {
        v["p99_from_schedule_ms"] = r2(pct(&t.sched_us, 99.0));
    }
    if let Some(e) = &t.first_error {
        v["first_error"] = json!(e);
    }
    v
}

// ------------------------------------------------------------------------------------ /proc

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in ticks.
fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) ticks of the whole machine, as bench/run.sh counts them.
fn sys_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some((busy, busy + get(3) + get(4)))
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(&format!("{key}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU and memory of the server and of this process over a window.
struct Usage {
    server_pid: Option<u32>,
    t0: Instant,
    srv0: Option<u64>,
    me0: Option<u64>,
    sys0: Option<(u64, u64)>,
}

impl Usage {
    /// Opens the window; resets the server's VmHWM to its current RSS.
    fn start(server_pid: Option<u32>) -> Self {
        if let Some(pid) = server_pid {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
        Self {
            server_pid,
            t0: Instant::now(),
            srv0: server_pid.and_then(|p| proc_ticks(&p.to_string())),
            me0: proc_ticks("self"),
            sys0: sys_ticks(),
        }
    }

    /// % of one core for the server, this load generator and everything else; peak RSS.
    fn finish(self, tck: f64, into: &mut Value) {
        let secs = self.t0.elapsed().as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let pct_of = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / tck / secs * 100.0),
            _ => None,
        };
        let me = pct_of(self.me0, proc_ticks("self"));
        into["gen_cpu_pct"] = me.map_or(Value::Null, r2);
        let Some(pid) = self.server_pid else { return };
        let srv = pct_of(self.srv0, proc_ticks(&pid.to_string()));
        into["srv_cpu_pct"] = srv.map_or(Value::Null, r2);
        if let (Some((b0, t0)), Some((b1, t1))) = (self.sys0, sys_ticks()) {
            let busy = (b1 - b0) as f64 / (t1 - t0).max(1) as f64 * 100.0 * cores;
            into["other_cpu_pct"] = r2((busy - srv.unwrap_or(0.0) - me.unwrap_or(0.0)).max(0.0));
        }
        if let Some(kb) = status_kb(pid, "VmHWM") {
            into["peak_rss_mib"] = r2(kb as f64 / 1024.0);
        }
    }
}

/// Waits (at most `max_s`) until less than 15% of the machine is busy over one second.
async fn wait_quiet(max_s: u64) {
    if max_s == 0 {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(max_s);
    loop {
        let Some((b0, t0)) = sys_ticks() else { return };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some((b1, t1)) = sys_ticks() else { return };
        let pct = (b1 - b0) * 100 / (t1 - t0).max(1);
        if pct < 15 {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!("   (machine still {pct}% busy; measuring anyway)");
            return;
        }
    }
}

// ------------------------------------------------------------------------------------ workers

/// Signs `n` browsers in (concurrently; argon2 makes this the slow part of the set-up).
async fn signed_in_browsers(ctx: &Arc<Ctx>, n: usize) -> Res<Vec<Client>> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let b = browser();
                let code = sign_in(&ctx, &b, None).await?;
                // Also proves the code exchange works before measuring.
                exchange(&ctx, &b, &code).await?;
                Ok::<_, String>(b)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.map_err(|e| format!("sign-in task: {e}"))??);
    }
    eprintln!(
        "   {n} browsers signed in in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Backs off a little after an error so a broken server is not hammered in a tight loop.
async fn pause_on_error<T>(res: &Res<T>) {
    if res.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn flow_worker(ctx: Arc<Ctx>, b: Client, win: Window, n: usize) -> Tally {
    let authorize = ctx.authorize_url(Some("none"), &format!("w{n}"));
    let mut t = Tally::default();
    while Instant::now() < win.end {
        let s = Instant::now();
        let res = async {
            let code = silent_code(&ctx, &b, &authorize).await?;
            exchange(&ctx, &b, &code).await
        }
        .await;
        t.record(&win, s, Instant::now(), &res);
        pause_on_error(&res).await;
    }
    t
}

async fn refresh_worker(ctx: Arc<Ctx>, b: Client, mut rt: String, win: Window) -> Tally {
    let mut t = Tally::default();
    while Instant::now() < win.end {
        let s = Instant::now();
        let res = token(
            &ctx,
            &b,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            "POST /token refresh_token",
        )
        .await
        .and_then(|v| {
            v["refresh_token"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("refresh answered without a new refresh_token: {v}"))
        });
        t.record(&win, s, Instant::now(), &res);
        match res {
            Ok(new) => rt = new,
            Err(_) => {
                // The old token may be spent (or its grant revoked): start a new grant.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Ok(new) = new_refresh_token(&ctx, &b).await {
                    rt = new;
                }
            }
        }
    }
    t
}

async fn login_worker(ctx: Arc<Ctx>, win: Window) -> Tally {
    let b = browser();
    let mut t = Tally::default();
    while Instant::now() < win.end {
        let s = Instant::now();
        let res = sign_in(&ctx, &b, Some("login")).await;
        t.record(&win, s, Instant::now(), &res);
        pause_on_error(&res).await;
    }
    t
}

/// One paced discovery client: a request every `period`, from `first` on, until the window ends.
async fn discovery_client(url: String, first: Instant, period: Duration, win: Window) -> Tally {
    let http = plain_client();
    let mut iv = tokio::time::interval_at(first.into(), period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut t = Tally::default();
    loop {
        let sched = iv.tick().await.into_std();
        if sched >= win.end {
            break;
        }
        let s = Instant::now();
        let res: Res<()> = async {
            let r = http.get(&url).send().await.map_err(net("GET discovery"))?;
            if r.status() != StatusCode::OK {
                return Err(unexpected("GET discovery", r).await);
            }
            r.bytes().await.map_err(net("GET discovery body"))?;
            Ok(())
        }
        .await;
        let e = Instant::now();
        if res.is_ok() && sched >= win.start && e <= win.end {
            t.sched_us.push((e - sched).as_micros() as u64);
        }
        t.record(&win, s, e, &res);
    }
    t
}

/// Runs the paced discovery stream for one window; returns the merged tally.
async fn discovery_stream(ctx: &Ctx, win: Window) -> Tally {
    let period = Duration::from_secs_f64(1.0 / ctx.o.disc_rate);
    let n = ctx.o.disc_clients;
    let now = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            // Staggered so that the clients' requests interleave into an even stream.
            let first = now + period.mul_f64(i as f64 / n as f64);
            tokio::spawn(discovery_client(ctx.url(DISCOVERY), first, period, win))
        })
        .collect();
    join_tallies(tasks).await
}

async fn join_tallies(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.expect("worker task"));
    }
    Tally::merge(all)
}

// ------------------------------------------------------------------------------------ main

fn warn_errors(name: &str, t: &Tally) {
    if t.errors > 0 || t.first_error.is_some() {
        eprintln!(
            "   WARNING {name}: {} errors in the window; first error: {}",
            t.errors,
            t.first_error.as_deref().unwrap_or("-")
        );
    }
}

#[tokio::main]
async fn main() {
    let o = parse_opts();
    let tck = clk_tck();
    let ctx = Arc::new(Ctx::new(o.clone()));
    let secs = o.duration.as_secs_f64();
    let wants = |m: &str| o.only.iter().any(|x| x == m);
    let mut lines: Vec<Value> = Vec::new();
    let base = |name: &str| {
        json!({
            "name": name,
            "label": o.label,
            "issuer": o.issuer,
            "duration_s": secs,
            "warmup_s": o.warmup.as_secs_f64(),
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    };

    // Fail early and clearly when the server is not there.
    match plain_client().get(ctx.url(DISCOVERY)).send().await {
        Ok(r) if r.status() == StatusCode::OK => {}
        Ok(r) => {
            eprintln!("FAIL: {}", unexpected("GET discovery", r).await);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("FAIL: GET {}{DISCOVERY}: {e}", o.issuer);
            std::process::exit(1);
        }
    }

    let mut browsers: Vec<Client> = Vec::new();
    if wants("flow") || wants("refresh") {
        eprintln!("== set-up: signing {} browsers in", o.concurrency);
        browsers = match signed_in_browsers(&ctx, o.concurrency).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("FAIL: sign-in before measuring: {e}");
                std::process::exit(1);
            }
        };
    }

    // 1. The authorization-code flow with a session.
    if wants("flow") {
        wait_quiet(o.quiet_wait).await;
        eprintln!(
            "== auth_code_flow: {} workers, {:?} (+{:?} warm-up)",
            o.concurrency, o.duration, o.warmup
        );
        let win = Window::after(o.warmup, o.duration);
        let tasks: Vec<_> = browsers
            .iter()
            .enumerate()
            .map(|(i, b)| tokio::spawn(flow_worker(ctx.clone(), b.clone(), win, i)))
            .collect();
        let usage = usage_over(win, o.server_pid);
        let t = join_tallies(tasks).await;
        let mut line = base("auth_code_flow");
        line["workers"] = json!(o.concurrency);
        line["flow"] = stats(&t, secs);
        usage.await.expect("usage task").finish(tck, &mut line);
        warn_errors("auth_code_flow", &t);
        println!("{line}");
        lines.push(line);
    }

    // 2. Refresh grants with rotation.
    if wants("refresh") {
        eprintln!("== refresh: getting a refresh token per worker");
        let mut tokens = Vec::new();
        for b in &browsers {
            match new_refresh_token(&ctx, b).await {
                Ok(rt) => tokens.push(rt),
                Err(e) => {
                    eprintln!("FAIL: refresh token before measuring: {e}");
                    std::process::exit(1);
                }
            }
        }
        wait_quiet(o.quiet_wait).await;
        eprintln!(
            "== refresh: {} workers, {:?} (+{:?} warm-up)",
            o.concurrency, o.duration, o.warmup
        );
        let win = Window::after(o.warmup, o.duration);
        let tasks: Vec<_> = browsers
            .iter()
            .zip(tokens)
            .map(|(b, rt)| tokio::spawn(refresh_worker(ctx.clone(), b.clone(), rt, win)))
            .collect();
        let usage = usage_over(win, o.server_pid);
        let t = join_tallies(tasks).await;
        let mut line = base("refresh");
        line["workers"] = json!(o.concurrency);
        line["refresh"] = stats(&t, secs);
        usage.await.expect("usage task").finish(tck, &mut line);
        warn_errors("refresh", &t);
        println!("{line}");
        lines.push(line);
    }
    drop(browsers);

    // 3. Discovery latency, idle and under password sign-ins.
    if wants("discovery") {
        let stream = format!("{} clients x {} req/s", o.disc_clients, o.disc_rate);
        wait_quiet(o.quiet_wait).await;
        eprintln!(
            "== discovery idle: {stream}, {:?} (+{:?} warm-up)",
            o.duration, o.warmup
        );
        let win = Window::after(o.warmup, o.duration);
        let usage = usage_over(win, o.server_pid);
        let idle = discovery_stream(&ctx, win).await;
        let mut idle_v = stats(&idle, secs);
        usage.await.expect("usage task").finish(tck, &mut idle_v);
        warn_errors("discovery idle", &idle);

        wait_quiet(o.quiet_wait).await;
        eprintln!(
            "== discovery under load: {stream} while {} workers loop password sign-ins, {:?} (+{:?} warm-up)",
            o.logins, o.duration, o.warmup
        );
        let win = Window::after(o.warmup, o.duration);
        let logins: Vec<_> = (0..o.logins)
            .map(|_| tokio::spawn(login_worker(ctx.clone(), win)))
            .collect();
        let usage = usage_over(win, o.server_pid);
        let loaded = discovery_stream(&ctx, win).await;
        let logins = join_tallies(logins).await;
        let mut loaded_v = stats(&loaded, secs);
        usage.await.expect("usage task").finish(tck, &mut loaded_v);
        warn_errors("discovery loaded", &loaded);
        warn_errors("logins", &logins);

        let mut line = base("discovery_under_login");
        line["discovery_clients"] = json!(o.disc_clients);
        line["discovery_rate_per_client"] = json!(o.disc_rate);
        line["login_workers"] = json!(o.logins);
        let ratio = pct(&loaded.lat_us, 99.0) / pct(&idle.lat_us, 99.0);
        let ratio_sched = pct(&loaded.sched_us, 99.0) / pct(&idle.sched_us, 99.0);
        line["idle"] = idle_v;
        line["loaded"] = loaded_v;
        line["logins"] = stats(&logins, secs);
        line["p99_ratio"] = r2(ratio);
        line["p99_from_schedule_ratio"] = r2(ratio_sched);
        line["target_met"] = json!(ratio.is_finite() && ratio <= 2.0);
        println!("{line}");
        lines.push(line);
    }

    print!("{}", table(&lines));
}

/// Measures CPU and RSS over exactly the recording window, in its own task.
fn usage_over(win: Window, pid: Option<u32>) -> tokio::task::JoinHandle<Usage> {
    tokio::spawn(async move {
        tokio::time::sleep_until(win.start.into()).await;
        let u = Usage::start(pid);
        tokio::time::sleep_until(win.end.into()).await;
        u
    })
}

fn table(lines: &[Value]) -> String {
    let mut out = String::new();
    let f = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| {:<24} | {:<8} | {:>8} | {:>10} | {:>8} | {:>8} | {:>8} | {:>6} | {:>8} | {:>8} | {:>10} | {:>8} |",
        "measurement", "label", "workers", "per s", "p50 ms", "p99 ms", "max ms", "errors",
        "srv CPU%", "gen CPU%", "other CPU%", "peak MiB"
    );
    let widths = [26, 10, 10, 12, 10, 10, 10, 8, 10, 10, 12, 10];
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    let mut row = |name: &str, label: &Value, workers: &Value, s: &Value, cpu: &Value| {
        let _ = writeln!(
            out,
            "| {:<24} | {:<8} | {:>8} | {:>10} | {:>8} | {:>8} | {:>8} | {:>6} | {:>8} | {:>8} | {:>10} | {:>8} |",
            name,
            label.as_str().unwrap_or(""),
            f(workers),
            f(&s["per_s"]),
            f(&s["p50_ms"]),
            f(&s["p99_ms"]),
            f(&s["max_ms"]),
            f(&s["errors"]),
            f(&cpu["srv_cpu_pct"]),
            f(&cpu["gen_cpu_pct"]),
            f(&cpu["other_cpu_pct"]),
            f(&cpu["peak_rss_mib"]),
        );
    };
    let mut notes = Vec::new();
    for l in lines {
        let label = &l["label"];
        match l["name"].as_str() {
            Some("auth_code_flow") => row(
                "auth_code_flow (flows)",
                label,
                &l["workers"],
                &l["flow"],
                l,
            ),
            Some("refresh") => row("refresh (grants)", label, &l["workers"], &l["refresh"], l),
            Some("discovery_under_login") => {
                let w = json!(l["discovery_clients"]);
                row("discovery idle", label, &w, &l["idle"], &l["idle"]);
                row("discovery + logins", label, &w, &l["loaded"], &l["loaded"]);
                row(
                    "  logins (concurrent)",
                    label,
                    &l["login_workers"],
                    &l["logins"],
                    &Value::Null,
                );
                notes.push(format!(
                    "{}discovery p99: idle {} ms, during {} sign-ins {} ms, ratio {} (target <= 2: {}); from the schedule: {} -> {} ms, ratio {}",
                    label.as_str().map(|s| if s.is_empty() { String::new() } else { format!("[{s}] ") }).unwrap_or_default(),
                    f(&l["idle"]["p99_ms"]),
                    f(&l["login_workers"]),
                    f(&l["loaded"]["p99_ms"]),
                    f(&l["p99_ratio"]),
                    if l["target_met"] == json!(true) { "met" } else { "NOT met" },
                    f(&l["idle"]["p99_from_schedule_ms"]),
                    f(&l["loaded"]["p99_from_schedule_ms"]),
                    f(&l["p99_from_schedule_ratio"]),
                ));
            }
            _ => {}
        }
    }
    let _ = writeln!(out, "(latency = one whole flow / one refresh / one discovery GET / one whole sign-in; CPU% = % of one core over the window; gen = this load generator)");
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    out
}
