//! What Sigil's load generators share (`examples/flow_bench.rs`, `examples/attack_bench.rs`,
//! `examples/factor_bench.rs`): a scripted browser for the sign-in flow (the password step and
//! the second step apart, for users with a second factor), latency tallies over a recording
//! window, the CPU and memory of the server from /proc, and a paced discovery stream. Run by
//! hand, never in CI.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sigil::crypto::{b64url, sha256};

/// The fixed PKCE verifier of every flow (RFC 7636 appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const DISCOVERY: &str = "/.well-known/openid-configuration";

pub type Res<T> = Result<T, String>;

// ------------------------------------------------------------------------------------ HTTP

pub struct Ctx {
    pub issuer: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The user `sign_in` signs in as.
    pub username: String,
    pub password: String,
    pub challenge: String,
    /// `Authorization: Basic …` of the client (RFC 6749 §2.3.1: id and secret form-encoded).
    pub basic: String,
    pub token_url: String,
}

impl Ctx {
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        username: &str,
        password: &str,
    ) -> Self {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(client_id),
                enc(client_secret)
            ))
        );
        Self {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            challenge: b64url(&sha256(VERIFIER.as_bytes())),
            basic,
            token_url: format!("{issuer}/token"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    pub fn authorize_url(&self, prompt: Option<&str>, state: &str) -> String {
        let mut u = url::Url::parse(&self.url("/authorize")).expect("issuer URL");
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
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
pub fn browser() -> Client {
    browser_at(None)
}

/// A browser that says, through `X-Forwarded-For`, that it comes from `address` (the server
/// must trust the load generator's address as a proxy for that to count).
pub fn browser_at(address: Option<&str>) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(a) = address {
        headers.insert("x-forwarded-for", a.parse().expect("an address"));
    }
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("reqwest client")
}

pub fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

pub fn location(r: &Response) -> Res<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("{} without a Location", r.status()))
}

/// Describes an unexpected answer (status, Location, start of the body).
pub async fn unexpected(what: &str, r: Response) -> String {
    let status = r.status();
    let loc = location(&r).unwrap_or_default();
    let body = r.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    format!("{what}: HTTP {status} location={loc:?} body={body:?}")
}

pub fn net(what: &str) -> impl Fn(reqwest::Error) -> String + '_ {
    move |e| {
        // reqwest's own message hides the cause (reset, refused, timeout): add the chain.
        let mut text = format!("{what}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}

pub fn hidden(html: &str, name: &str) -> Res<String> {
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
pub async fn code_from(what: &str, r: Response, redirect_uri: &str) -> Res<String> {
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

/// A login form of its own for browser `b`: GET /authorize (its 303 to the login page), then
/// that page's hidden `request` and `csrf_token`. No checks beyond finding them: the attack
/// bench tells a form lost to the cap on parked requests ("no hidden input …") from an error.
pub async fn login_form(
    ctx: &Ctx,
    b: &Client,
    prompt: Option<&str>,
    state: &str,
) -> Res<(String, String)> {
    let r = b
        .get(ctx.authorize_url(prompt, state))
        .send()
        .await
        .map_err(net("GET /authorize"))?;
    let html = b
        .get(location(&r)?)
        .send()
        .await
        .map_err(net("GET /login"))?
        .text()
        .await
        .map_err(net("GET /login body"))?;
    Ok((hidden(&html, "request")?, hidden(&html, "csrf_token")?))
}

/// The POST of a login form (`request`, `csrf_token`) with these credentials, to send.
pub fn login_post(
    ctx: &Ctx,
    b: &Client,
    request: &str,
    csrf: &str,
    username: &str,
    password: &str,
) -> reqwest::RequestBuilder {
    b.post(ctx.url("/login")).form(&[
        ("request", request),
        ("csrf_token", csrf),
        ("username", username),
        ("password", password),
    ])
}

/// The full password sign-in: authorize (no prompt, or `prompt=login`) → login page → POST
/// /login → resume → the code for the client (skip_consent: no consent page).
pub async fn sign_in(ctx: &Ctx, b: &Client, prompt: Option<&str>) -> Res<String> {
    match password_step(ctx, b, prompt, &ctx.username, &ctx.password).await? {
        Next::Resume(resume) => resume_code(ctx, b, &resume).await,
        Next::SecondStep { .. } => Err("POST /login: a second step, expected none".into()),
    }
}

/// Where the right password leads.
pub enum Next {
    /// 303 to `/authorize/resume` (the user holds no second factor).
    Resume(String),
    /// The second step's page, which the POST answers with (200): its form's request id and
    /// CSRF token.
    SecondStep { request: String, csrf: String },
}

/// The first step of a sign-in as `username`: authorize (no prompt, or `prompt=login`) → login
/// page → POST /login; the Location of its 303 (`/authorize/resume`), or for a user with a
/// second factor the second step's page it answers with.
pub async fn password_step(
    ctx: &Ctx,
    b: &Client,
    prompt: Option<&str>,
    username: &str,
    password: &str,
) -> Res<Next> {
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
    let r = login_post(ctx, b, &request, &csrf, username, password)
        .send()
        .await
        .map_err(net("POST /login"))?;
    match r.status() {
        StatusCode::SEE_OTHER => {
            let resume = location(&r)?;
            if !resume.contains("/authorize/resume?") {
                return Err(format!(
                    "POST /login: 303 to {resume:?}, expected /authorize/resume"
                ));
            }
            Ok(Next::Resume(resume))
        }
        StatusCode::OK => {
            let html = r.text().await.map_err(net("POST /login body"))?;
            if !html.contains("/login/factor") {
                return Err(format!("POST /login: 200 without the second step: {html}"));
            }
            Ok(Next::SecondStep {
                request: hidden(&html, "request")?,
                csrf: hidden(&html, "csrf_token")?,
            })
        }
        _ => Err(unexpected("POST /login", r).await),
    }
}

/// The second step after the password: POST /login/factor with `otp` from the page the password
/// was answered with; the Location of the 303 (`/authorize/resume`).
pub async fn factor_step(ctx: &Ctx, b: &Client, next: &Next, otp: &str) -> Res<String> {
    let Next::SecondStep { request, csrf } = next else {
        return Err("POST /login: no second step, expected /login/factor's page".into());
    };
    let r = b
        .post(ctx.url("/login/factor"))
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("otp", otp),
        ])
        .send()
        .await
        .map_err(net("POST /login/factor"))?;
    if r.status() != StatusCode::SEE_OTHER {
        return Err(unexpected("POST /login/factor", r).await);
    }
    let resume = location(&r)?;
    if !resume.contains("/authorize/resume?") {
        return Err(format!(
            "POST /login/factor: 303 to {resume:?}, expected /authorize/resume"
        ));
    }
    Ok(resume)
}

/// GET /authorize/resume after a sign-in → the code for the client.
pub async fn resume_code(ctx: &Ctx, b: &Client, resume: &str) -> Res<String> {
    let r = b
        .get(resume)
        .send()
        .await
        .map_err(net("GET /authorize/resume"))?;
    code_from("GET /authorize/resume", r, &ctx.redirect_uri).await
}

/// GET /authorize with `prompt=none` and the session cookie → the code.
pub async fn silent_code(ctx: &Ctx, b: &Client, authorize_url: &str) -> Res<String> {
    let r = b
        .get(authorize_url)
        .send()
        .await
        .map_err(net("GET /authorize prompt=none"))?;
    code_from("GET /authorize prompt=none", r, &ctx.redirect_uri).await
}

/// POST /token with client_secret_basic; the JSON of a 200.
pub async fn token(ctx: &Ctx, http: &Client, form: &[(&str, &str)], what: &str) -> Res<Value> {
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

pub async fn exchange(ctx: &Ctx, http: &Client, code: &str) -> Res<Value> {
    token(
        ctx,
        http,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &ctx.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
        "POST /token authorization_code",
    )
    .await
}

/// A fresh refresh token for a signed-in browser (silent authorization + code exchange).
pub async fn new_refresh_token(ctx: &Ctx, b: &Client) -> Res<String> {
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
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn after(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + duration,
        }
    }
}

#[derive(Default)]
pub struct Tally {
    pub lat_us: Vec<u64>,
    /// For the paced discovery stream: from the scheduled send time (coordinated omission).
    pub sched_us: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn record<T>(&mut self, win: &Window, s: Instant, e: Instant, res: &Res<T>) {
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

    pub fn merge(mut all: Vec<Tally>) -> Tally {
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
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

pub fn r2(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 100.0).round() / 100.0)
    } else {
        Value::Null
    }
}

pub fn stats(t: &Tally, secs: f64) -> Value {
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

pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in ticks.
pub fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) ticks of the whole machine, as bench/run.sh counts them.
pub fn sys_ticks() -> Option<(u64, u64)> {
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

pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(&format!("{key}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU and memory of the server and of this process over a window.
pub struct Usage {
    server_pid: Option<u32>,
    t0: Instant,
    srv0: Option<u64>,
    me0: Option<u64>,
    sys0: Option<(u64, u64)>,
}

impl Usage {
    /// Opens the window; resets the server's VmHWM to its current RSS.
    pub fn start(server_pid: Option<u32>) -> Self {
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
    pub fn finish(self, tck: f64, into: &mut Value) {
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
pub async fn wait_quiet(max_s: u64) {
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

/// Signs `n` browsers in, a few at a time: argon2 makes this the slow part of the set-up, and
/// one account from one address may have only `login.max_failures` (default 5) checks in
/// flight.
pub async fn signed_in_browsers(ctx: &Arc<Ctx>, n: usize) -> Res<Vec<Client>> {
    const AT_ONCE: usize = 4;
    let started = Instant::now();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let tasks: Vec<_> = (0..AT_ONCE.min(n - out.len()))
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
        for t in tasks {
            out.push(t.await.map_err(|e| format!("sign-in task: {e}"))??);
        }
    }
    eprintln!(
        "   {n} browsers signed in in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Backs off a little after an error so a broken server is not hammered in a tight loop.
pub async fn pause_on_error<T>(res: &Res<T>) {
    if res.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn discovery_client(url: String, first: Instant, period: Duration, win: Window) -> Tally {
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
pub async fn discovery_stream(ctx: &Ctx, clients: usize, rate: f64, win: Window) -> Tally {
    let period = Duration::from_secs_f64(1.0 / rate);
    let n = clients;
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

/// [`discovery_stream`] on a thread and runtime of its own, so that the load generator's other
/// tasks (hundreds of attackers, say) never delay its sends or the reading of its answers: what
/// it measures is the server.
pub async fn discovery_stream_apart(
    ctx: Arc<Ctx>,
    clients: usize,
    rate: f64,
    win: Window,
) -> Tally {
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the discovery stream")
            .block_on(discovery_stream(&ctx, clients, rate, win))
    });
    tokio::task::spawn_blocking(move || thread.join().expect("discovery stream thread"))
        .await
        .expect("discovery stream join")
}

pub async fn join_tallies(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.expect("worker task"));
    }
    Tally::merge(all)
}

// ------------------------------------------------------------------------------------ main

pub fn warn_errors(name: &str, t: &Tally) {
    if t.errors > 0 || t.first_error.is_some() {
        eprintln!(
            "   WARNING {name}: {} errors in the window; first error: {}",
            t.errors,
            t.first_error.as_deref().unwrap_or("-")
        );
    }
}

/// Measures CPU and RSS over exactly the recording window, in its own task.
pub fn usage_over(win: Window, pid: Option<u32>) -> tokio::task::JoinHandle<Usage> {
    tokio::spawn(async move {
        tokio::time::sleep_until(win.start.into()).await;
        let u = Usage::start(pid);
        tokio::time::sleep_until(win.end.into()).await;
        u
    })
}
