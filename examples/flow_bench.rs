//! Load generator for Sigil's browser flows, run by hand through `bench/flow.sh` and
//! `bench/growth.sh` (never in CI). Four measurements against a running `sigil serve`:
//!
//! 1. `auth_code_flow`: the whole authorization-code flow with an existing session, per second.
//!    Each worker signs in once (authorize → login page → POST /login → resume → code; the
//!    client has `skip_consent`), then loops: GET /authorize (`prompt=none`, S256 PKCE) with its
//!    session cookie → 303 with a `code` → POST /token (`authorization_code`,
//!    client_secret_basic, `code_verifier`) → 200. Latency is that of the whole flow.
//! 2. `refresh`: each worker holds a refresh token and loops POST /token
//!    `grant_type=refresh_token`, keeping the rotated token each time.
//! 3. `introspect`: each worker holds a refresh token of its own grant and loops POST
//!    /introspect (client_secret_basic) with it: a lookup of the token by its hash, its grant and
//!    its user on every request (refresh tokens are never cached, unlike access tokens).
//! 4. `discovery_under_login`: the p99 latency of GET /.well-known/openid-configuration from a
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

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::*;

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
            .unwrap_or_else(|| "flow refresh introspect discovery".into())
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        label: get("label").unwrap_or_default(),
        server_pid: get("server-pid").map(|p| num("server-pid", Some(p), 0u32)),
        quiet_wait: num("quiet-wait", get("quiet-wait"), 180u64),
    };
    for o in &opts.only {
        if !["flow", "refresh", "introspect", "discovery"].contains(&o.as_str()) {
            eprintln!("--only: unknown measurement {o:?} (flow, refresh, introspect, discovery)");
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

async fn introspect_worker(ctx: Arc<Ctx>, http: Client, rt: String, win: Window) -> Tally {
    let url = ctx.url("/introspect");
    let mut t = Tally::default();
    while Instant::now() < win.end {
        let s = Instant::now();
        let res: Res<()> = async {
            let r = http
                .post(&url)
                .header("Authorization", &ctx.basic)
                .form(&[("token", rt.as_str())])
                .send()
                .await
                .map_err(net("POST /introspect"))?;
            if r.status() != StatusCode::OK {
                return Err(unexpected("POST /introspect", r).await);
            }
            let v: Value = r.json().await.map_err(net("POST /introspect body"))?;
            if v["active"] != json!(true) {
                return Err(format!(
                    "POST /introspect: the refresh token is not active: {v}"
                ));
            }
            Ok(())
        }
        .await;
        t.record(&win, s, Instant::now(), &res);
        pause_on_error(&res).await;
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
// ------------------------------------------------------------------------------------ main

#[tokio::main]
async fn main() {
    let o = parse_opts();
    let tck = clk_tck();
    let ctx = Arc::new(Ctx::new(
        &o.issuer,
        &o.client_id,
        &o.client_secret,
        &o.redirect_uri,
        &o.username,
        &o.password,
    ));
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
    if wants("flow") || wants("refresh") || wants("introspect") {
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

    // 2. Refresh grants with rotation; 3. introspection of refresh tokens (a database read
    // every time). Each worker holds a refresh token of its own grant.
    for name in ["refresh", "introspect"] {
        if !wants(name) {
            continue;
        }
        eprintln!("== {name}: getting a refresh token per worker");
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
            "== {name}: {} workers, {:?} (+{:?} warm-up)",
            o.concurrency, o.duration, o.warmup
        );
        let win = Window::after(o.warmup, o.duration);
        let tasks: Vec<_> = browsers
            .iter()
            .zip(tokens)
            .map(|(b, rt)| {
                let (ctx, b) = (ctx.clone(), b.clone());
                if name == "refresh" {
                    tokio::spawn(refresh_worker(ctx, b, rt, win))
                } else {
                    tokio::spawn(introspect_worker(ctx, b, rt, win))
                }
            })
            .collect();
        let usage = usage_over(win, o.server_pid);
        let t = join_tallies(tasks).await;
        let mut line = base(name);
        line["workers"] = json!(o.concurrency);
        line[name] = stats(&t, secs);
        usage.await.expect("usage task").finish(tck, &mut line);
        warn_errors(name, &t);
        println!("{line}");
        lines.push(line);
    }
    drop(browsers);

    // 4. Discovery latency, idle and under password sign-ins.
    if wants("discovery") {
        let stream = format!("{} clients x {} req/s", o.disc_clients, o.disc_rate);
        wait_quiet(o.quiet_wait).await;
        eprintln!(
            "== discovery idle: {stream}, {:?} (+{:?} warm-up)",
            o.duration, o.warmup
        );
        let win = Window::after(o.warmup, o.duration);
        let usage = usage_over(win, o.server_pid);
        let idle = discovery_stream(&ctx, o.disc_clients, o.disc_rate, win).await;
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
        let loaded = discovery_stream(&ctx, o.disc_clients, o.disc_rate, win).await;
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
            Some("introspect") => row(
                "introspect (refresh tk)",
                label,
                &l["workers"],
                &l["introspect"],
                l,
            ),
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
