//! The sign-in under attack, run by hand through `bench/attack.sh` (never in CI). Against a
//! running `sigil serve` (release), issue 10 asks for:
//!
//! 1. `idle`: the p99 of a paced discovery stream with nothing else going on.
//! 2. `attack`: ATTACKERS tasks post bogus sign-ins as fast as they can for DURATION — half of
//!    them wrong passwords for the real user's account, half unknown usernames; with
//!    `--forwarded` every bogus sign-in comes from a new address through `X-Forwarded-For`, as
//!    a botnet behind a proxy would, else all from 127.0.0.1 — while the real user (a browser
//!    that signed in before, so it carries the device cookie, from an address of its own) signs
//!    in once a second with `prompt=login`, and the paced discovery stream runs. The server must
//!    trust 127.0.0.1 as a proxy (`http.trusted_proxies`). Reports the real
//!    user's success rate (goal 100%) and latency, the attackers' answers by status, discovery
//!    p99 against idle (goal ≤ 2×), and the server's peak RSS (VmHWM, reset when the attack
//!    starts; goal ≤ idle + 64 MiB). The attackers run on a runtime of their own at nice 10
//!    (see `attackers_runtime`); the discovery stream on a thread of its own. Discovery is
//!    also measured beside argon2 alone on every core at SCHED_IDLE, with no requests: the
//!    floor under any attack that keeps the password queue full. After the attack, once the
//!    machine is quiet, the idle window is measured again: the larger of the two idle p99s over
//!    the smaller says how far two windows with no attack at all differ on this machine, and
//!    the attack's p99 is also set against both idle windows together.
//! 3. `ceiling`: argon2id hashes per second on every core of this machine (Sigil's parameters,
//!    in this process, while the server idles), then SIGNIN_WORKERS browsers, each posting the
//!    right password of its own user (`USER_PREFIX1..N`) to its login form again and again
//!    (each a password check and a new session); sign-ins per second against the argon2
//!    ceiling (goal ≥ 90%).
//!
//! ```text
//! target/release/examples/attack_bench --issuer http://127.0.0.1:3400 --client-id bench \
//!     --client-secret S --username alice --password P --attackers 500 --duration 60s --forwarded
//! ```
//!
//! Options (environment variable in brackets, then default):
//!   --issuer [ISSUER] (required)            --client-id [CLIENT_ID] bench
//!   --client-secret [CLIENT_SECRET] (required)
//!   --username [BENCH_USERNAME] bench       --password [BENCH_PASSWORD] (required)
//!   --redirect-uri [REDIRECT_URI] http://127.0.0.1:9/cb
//!   --attackers [ATTACKERS] 500             --duration [DUR] 60s
//!   --idle [IDLE] 15s                       --forwarded [FORWARDED] (flag; env 1)
//!   --discovery-clients [DISC_CLIENTS] 4    --discovery-rate [DISC_RATE] 250
//!   --signin-workers [SIGNIN_WORKERS] 8     --signin-duration [SIGNIN_DUR] 20s
//!   --user-prefix [USER_PREFIX] signer      --only [ONLY] "attack ceiling"
//!   --server-pid [SERVER_PID]               --label [LABEL] ""

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::*;

#[derive(Debug, Clone)]
struct Opts {
    issuer: String,
    client_id: String,
    client_secret: String,
    username: String,
    password: String,
    redirect_uri: String,
    attackers: usize,
    duration: Duration,
    idle: Duration,
    forwarded: bool,
    disc_clients: usize,
    disc_rate: f64,
    signin_workers: usize,
    signin_duration: Duration,
    user_prefix: String,
    only: Vec<String>,
    server_pid: Option<u32>,
    label: String,
}

fn parse_opts() -> Opts {
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(name) = a.strip_prefix("--") else {
            eprintln!("unexpected argument {a:?} (see the top of examples/attack_bench.rs)");
            std::process::exit(2);
        };
        if name == "forwarded" {
            given.insert(name.into(), "1".into());
            continue;
        }
        let value = args.next().unwrap_or_else(|| {
            eprintln!("--{name} needs a value");
            std::process::exit(2)
        });
        given.insert(name.into(), value);
    }
    let get = |flag: &str, env: &str| given.get(flag).cloned().or_else(|| std::env::var(env).ok());
    let required = |flag: &str, env: &str| {
        get(flag, env).unwrap_or_else(|| {
            eprintln!("--{flag} (or {env}) is required");
            std::process::exit(2)
        })
    };
    let dur = |flag: &str, env: &str, default: &str| {
        let raw = get(flag, env).unwrap_or_else(|| default.into());
        humantime::parse_duration(&raw).unwrap_or_else(|e| {
            eprintln!("--{flag}: {raw:?}: {e}");
            std::process::exit(2)
        })
    };
    let num = |flag: &str, env: &str, default: f64| -> f64 {
        get(flag, env).map_or(default, |raw| {
            raw.parse().unwrap_or_else(|_| {
                eprintln!("--{flag}: {raw:?} is not a number");
                std::process::exit(2)
            })
        })
    };
    Opts {
        issuer: required("issuer", "ISSUER")
            .trim_end_matches('/')
            .to_string(),
        client_id: get("client-id", "CLIENT_ID").unwrap_or_else(|| "bench".into()),
        client_secret: required("client-secret", "CLIENT_SECRET"),
        username: get("username", "BENCH_USERNAME").unwrap_or_else(|| "bench".into()),
        password: required("password", "BENCH_PASSWORD"),
        redirect_uri: get("redirect-uri", "REDIRECT_URI")
            .unwrap_or_else(|| "http://127.0.0.1:9/cb".into()),
        attackers: num("attackers", "ATTACKERS", 500.0) as usize,
        duration: dur("duration", "DUR", "60s"),
        idle: dur("idle", "IDLE", "15s"),
        forwarded: get("forwarded", "FORWARDED").is_some_and(|v| v == "1"),
        disc_clients: num("discovery-clients", "DISC_CLIENTS", 4.0) as usize,
        disc_rate: num("discovery-rate", "DISC_RATE", 250.0),
        signin_workers: num("signin-workers", "SIGNIN_WORKERS", 8.0) as usize,
        signin_duration: dur("signin-duration", "SIGNIN_DUR", "20s"),
        user_prefix: get("user-prefix", "USER_PREFIX").unwrap_or_else(|| "signer".into()),
        only: get("only", "ONLY")
            .unwrap_or_else(|| "attack ceiling".into())
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        server_pid: get("server-pid", "SERVER_PID").and_then(|p| p.parse().ok()),
        label: get("label", "LABEL").unwrap_or_default(),
    }
}

/// The `k`-th address the attackers pretend to come from: a botnet where every request comes
/// from somewhere new, so no per-address limit ever stops it and only the bounded password
/// queue stands between it and the CPU.
fn attacker_address(k: u64) -> String {
    format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)
}

/// Answers the attackers saw, by status.
#[derive(Default)]
struct Answers {
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_transport_error: Option<String>,
    /// Forms whose parked request was gone before the attacker read it (the cap of parked
    /// requests per address evicts the oldest): such an attacker posts a stale form anyway.
    forms_lost: u64,
}

/// One attacker: a login form of its own (parked request, CSRF cookie), then bogus POSTs in a
/// loop until `stop`.
async fn attacker(
    ctx: Arc<Ctx>,
    n: usize,
    b: Client,
    forwarded: bool,
    stop: Arc<AtomicBool>,
) -> Answers {
    let mut answers = Answers::default();
    let mut k = n as u64;
    let address = |k: u64| forwarded.then(|| attacker_address(k));
    let form = login_form(&ctx, &b, Some("login"), "attack").await;
    let (request, csrf) = match form {
        Ok(form) => form,
        Err(e) if e.starts_with("no hidden input") => {
            answers.forms_lost += 1;
            ("lost".to_string(), "lost".to_string())
        }
        Err(e) => {
            answers.transport_errors += 1;
            answers.first_transport_error = Some(e);
            return answers;
        }
    };
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        // Half the attackers guess the real user's password, half spray unknown usernames.
        let username = if n.is_multiple_of(2) {
            ctx.username.clone()
        } else {
            format!("nobody-{n}-{i}")
        };
        let password = format!("guess-{n}-{i}");
        let mut post = login_post(&ctx, &b, &request, &csrf, &username, &password);
        if let Some(a) = address(k) {
            post = post.header("X-Forwarded-For", a);
            k += 1 << 10;
        }
        let r = post.send().await;
        match r {
            Ok(r) => {
                *answers.by_status.entry(r.status().as_u16()).or_insert(0) += 1;
                let _ = r.bytes().await;
            }
            Err(e) => {
                answers.transport_errors += 1;
                answers
                    .first_transport_error
                    .get_or_insert_with(|| net("POST /login")(e));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    answers
}

/// The real user: a full sign-in with `prompt=login` once a second until `stop`.
async fn real_user(ctx: Arc<Ctx>, b: Client, win: Window) -> Tally {
    let mut t = Tally::default();
    let mut iv = tokio::time::interval_at(win.start.into(), Duration::from_secs(1));
    loop {
        let sched = iv.tick().await.into_std();
        if sched >= win.end {
            break;
        }
        let s = Instant::now();
        let res = sign_in(&ctx, &b, Some("login")).await;
        let e = Instant::now();
        // Every attempt counts, even one that ends after the window: the goal is its success.
        if let Err(msg) = &res {
            t.first_error.get_or_insert_with(|| msg.clone());
            t.errors += 1;
        } else {
            t.lat_us.push((e - s).as_micros() as u64);
        }
    }
    t.lat_us.sort_unstable();
    t
}

/// argon2id (Sigil's parameters) on every core of this machine for `d`: hashes per second.
fn argon2_ceiling(d: Duration) -> f64 {
    let phc = sigil::crypto::password::hash("a password");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let end = Instant::now() + d;
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let phc = phc.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < end {
                    sigil::crypto::password::verify("a password", &phc);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / d.as_secs_f64()
}

/// argon2id on every core at the lowest priority (SCHED_IDLE, as Sigil's password threads run)
/// until `stop`, with no request traffic at all: discovery measured beside it shows what hashing
/// on every spare cycle costs request latency on this machine by itself — the floor under any
/// attack that keeps the password queue full.
fn argon2_beside(stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let phc = sigil::crypto::password::hash("a password");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..cores)
        .map(|_| {
            let (phc, stop) = (phc.clone(), stop.clone());
            std::thread::spawn(move || {
                // SAFETY: sched_setscheduler reads the param we pass and changes only this thread.
                unsafe {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                }
                while !stop.load(Ordering::Relaxed) {
                    sigil::crypto::password::verify("a password", &phc);
                }
            })
        })
        .collect()
}

/// One worker of the ceiling phase: its own user and its own address (one address may have
/// only `login.max_failures` checks in flight), one login form, then the right password posted
/// again and again: each answer a 303 with a new session, i.e. one password sign-in.
async fn signer(ctx: Arc<Ctx>, n: usize, win: Window) -> Tally {
    let b = browser_at(Some(&format!("10.255.0.{n}")));
    let mut t = Tally::default();
    let form = login_form(&ctx, &b, Some("login"), "ceiling").await;
    let (request, csrf) = match form {
        Ok(f) => f,
        Err(e) => {
            t.first_error = Some(e);
            return t;
        }
    };
    while Instant::now() < win.end {
        let s = Instant::now();
        let res = async {
            let r = login_post(&ctx, &b, &request, &csrf, &ctx.username, &ctx.password)
                .send()
                .await
                .map_err(net("POST /login"))?;
            if r.status() != reqwest::StatusCode::SEE_OTHER {
                return Err(unexpected("POST /login", r).await);
            }
            Ok(())
        }
        .await;
        t.record(&win, s, Instant::now(), &res);
        pause_on_error(&res).await;
    }
    t
}

fn rss_mib(pid: Option<u32>, key: &str) -> Value {
    pid.and_then(|p| status_kb(p, key))
        .map_or(Value::Null, |kb| r2(kb as f64 / 1024.0))
}

/// The attackers' own runtime. They share this machine's two cores with the server, where on
/// the internet they would be elsewhere: their threads run at nice 10, so that they take no
/// CPU from the server, the real user or the discovery stream, yet still before Sigil's
/// password threads (SCHED_IDLE) — the attack is as strong, only the machine it runs on is
/// not counted against the server.
fn attackers_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| {
            // SAFETY: gettid has no arguments; setpriority on a thread id changes that thread
            // alone (Linux schedules threads one by one), and lowering needs no privilege.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 10);
            }
        })
        .build()
        .expect("the attackers' runtime")
}

#[tokio::main]
async fn main() {
    let o = parse_opts();
    let ctx = Arc::new(Ctx::new(
        &o.issuer,
        &o.client_id,
        &o.client_secret,
        &o.redirect_uri,
        &o.username,
        &o.password,
    ));
    let wants = |m: &str| o.only.iter().any(|x| x == m);
    let tck = clk_tck();

    if wants("attack") {
        // The real user's browser signs in once before: it carries the device cookie. It comes
        // from an address of its own, never one of the attackers'.
        let user_browser = browser_at(Some("10.254.0.1"));
        if let Err(e) = sign_in(&ctx, &user_browser, None).await {
            eprintln!("FAIL: the real user cannot sign in before the attack: {e}");
            std::process::exit(1);
        }
        wait_quiet(60).await;
        eprintln!(
            "== idle: discovery {}x{}/s for {:?}",
            o.disc_clients, o.disc_rate, o.idle
        );
        let win = Window::after(Duration::from_secs(1), o.idle);
        let usage = usage_over(win, o.server_pid);
        let idle = discovery_stream_apart(ctx.clone(), o.disc_clients, o.disc_rate, win).await;
        let mut idle_v = stats(&idle, o.idle.as_secs_f64());
        usage.await.expect("usage task").finish(tck, &mut idle_v);
        let rss_before = rss_mib(o.server_pid, "VmRSS");

        eprintln!("== beside hashing: discovery while argon2 runs on every core at SCHED_IDLE");
        let stop_hashing = Arc::new(AtomicBool::new(false));
        let hashing = argon2_beside(stop_hashing.clone());
        let win = Window::after(Duration::from_secs(1), o.idle);
        let beside = discovery_stream_apart(ctx.clone(), o.disc_clients, o.disc_rate, win).await;
        stop_hashing.store(true, Ordering::Relaxed);
        hashing
            .into_iter()
            .for_each(|t| t.join().expect("hashing thread"));
        let beside_v = stats(&beside, o.idle.as_secs_f64());
        wait_quiet(60).await;

        eprintln!(
            "== attack: {} attackers ({}) for {:?}, the real user once a second",
            o.attackers,
            if o.forwarded {
                "one address each, X-Forwarded-For"
            } else {
                "one address"
            },
            o.duration
        );
        let stop = Arc::new(AtomicBool::new(false));
        // Each attacker's client is built before any is let go: building one loads the TLS
        // roots (milliseconds of CPU), which would otherwise stall the connections of those
        // already started past the server's header deadline.
        let browsers: Vec<Client> = (0..o.attackers)
            .map(|n| browser_at(o.forwarded.then(|| attacker_address(n as u64)).as_deref()))
            .collect();
        let attack_runtime = attackers_runtime();
        let attackers: Vec<_> = browsers
            .into_iter()
            .enumerate()
            .map(|(n, b)| {
                attack_runtime.spawn(attacker(ctx.clone(), n, b, o.forwarded, stop.clone()))
            })
            .collect();
        // The attackers fetch their forms first; measure once they are all posting.
        let win = Window::after(Duration::from_secs(5), o.duration);
        let usage = usage_over(win, o.server_pid);
        let user = tokio::spawn(real_user(ctx.clone(), user_browser, win));
        let loaded = discovery_stream_apart(ctx.clone(), o.disc_clients, o.disc_rate, win).await;
        let user = user.await.expect("real user task");
        let mut loaded_v = stats(&loaded, o.duration.as_secs_f64());
        usage.await.expect("usage task").finish(tck, &mut loaded_v);
        stop.store(true, Ordering::Relaxed);
        let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
        let mut transport = 0;
        let mut first_transport_error = None;
        let mut forms_lost = 0;
        for a in attackers {
            let a = a.await.expect("attacker task");
            for (s, n) in a.by_status {
                *by_status.entry(s).or_insert(0) += n;
            }
            transport += a.transport_errors;
            forms_lost += a.forms_lost;
            first_transport_error = first_transport_error.or(a.first_transport_error);
        }
        // Dropping a runtime blocks, which an async context may not do.
        attack_runtime.shutdown_background();
        let rss_after = rss_mib(o.server_pid, "VmRSS");

        // The same idle measure again once the machine is quiet: how far the p99 of one idle
        // window is from another's on this machine, with no attack in either.
        wait_quiet(60).await;
        eprintln!("== idle again: discovery for {:?}", o.idle);
        let win = Window::after(Duration::from_secs(1), o.idle);
        let again = discovery_stream_apart(ctx.clone(), o.disc_clients, o.disc_rate, win).await;
        let again_v = stats(&again, o.idle.as_secs_f64());
        let again_p99 = pct(&again.lat_us, 99.0);
        let idle_p99 = pct(&idle.lat_us, 99.0);
        let mut both: Vec<u64> = idle.lat_us.iter().chain(&again.lat_us).copied().collect();
        both.sort_unstable();

        let attempts = user.lat_us.len() as u64 + user.errors;
        let ratio = pct(&loaded.lat_us, 99.0) / idle_p99;
        let line = json!({
            "name": "attack",
            "label": o.label,
            "attackers": o.attackers,
            "forwarded": o.forwarded,
            "duration_s": o.duration.as_secs_f64(),
            "attack_answers": by_status,
            "attack_per_s": r2(by_status.values().sum::<u64>() as f64 / o.duration.as_secs_f64()),
            "attack_transport_errors": transport,
            "attack_first_transport_error": first_transport_error,
            "attack_forms_lost": forms_lost,
            "real_user": {
                "attempts": attempts,
                "ok": user.lat_us.len(),
                "success_pct": r2(user.lat_us.len() as f64 * 100.0 / attempts.max(1) as f64),
                "p50_ms": r2(pct(&user.lat_us, 50.0)),
                "p99_ms": r2(pct(&user.lat_us, 99.0)),
                "max_ms": r2(pct(&user.lat_us, 100.0)),
                "first_error": user.first_error,
            },
            "discovery_idle": idle_v,
            "discovery_attack": loaded_v,
            "discovery_beside_hashing": beside_v,
            "discovery_beside_hashing_p99_ratio": r2(pct(&beside.lat_us, 99.0) / pct(&idle.lat_us, 99.0)),
            "discovery_p99_ratio": r2(ratio),
            "discovery_idle_again": again_v,
            "idle_again_p99_ratio": r2(again_p99.max(idle_p99) / again_p99.min(idle_p99)),
            "discovery_p99_ratio_both_idle": r2(pct(&loaded.lat_us, 99.0) / pct(&both, 99.0)),
            "rss_before_mib": rss_before,
            "rss_after_mib": rss_after,
        });
        println!("{line}");
    }

    if wants("ceiling") {
        wait_quiet(60).await;
        eprintln!("== argon2 ceiling: every core, 10 s");
        let ceiling = tokio::task::spawn_blocking(|| argon2_ceiling(Duration::from_secs(10)))
            .await
            .expect("ceiling thread");
        wait_quiet(60).await;
        eprintln!(
            "== sign-ins: {} workers, own users {}1..{}, {:?}",
            o.signin_workers, o.user_prefix, o.signin_workers, o.signin_duration
        );
        let win = Window::after(Duration::from_secs(2), o.signin_duration);
        let usage = usage_over(win, o.server_pid);
        let workers: Vec<_> = (1..=o.signin_workers)
            .map(|n| {
                let c = Ctx::new(
                    &o.issuer,
                    &o.client_id,
                    &o.client_secret,
                    &o.redirect_uri,
                    &format!("{}{n}", o.user_prefix),
                    &o.password,
                );
                tokio::spawn(signer(Arc::new(c), n, win))
            })
            .collect();
        let t = join_tallies(workers).await;
        let mut v = stats(&t, o.signin_duration.as_secs_f64());
        usage.await.expect("usage task").finish(tck, &mut v);
        let per_s = t.lat_us.len() as f64 / o.signin_duration.as_secs_f64();
        let line = json!({
            "name": "ceiling",
            "label": o.label,
            "argon2_hashes_per_s_all_cores": r2(ceiling),
            "signins": v,
            "signins_per_s": r2(per_s),
            "of_ceiling_pct": r2(per_s * 100.0 / ceiling),
        });
        println!("{line}");
    }
}
