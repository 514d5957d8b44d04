//! Sign-ins per second with a TOTP second step beside password-only ones (issue 11: the second
//! step must cost < 5% extra), run by hand through `bench/factors.sh` (never in CI).
//!
//! `setup` (before the server starts, through the `sigil` library on its configuration):
//! PW_USERS users `pw1..` without a factor and TOTP_USERS users `totp1..` with a confirmed TOTP
//! factor (`sigil::factors::enrol_totp`), all with the one password BENCH_PASSWORD hashed once
//! (argon2id, the same PHC string for every user: the server still checks it in full each time),
//! in one transaction; writes `username base32-secret` lines to SECRETS. Thousands of users are
//! needed because a TOTP code counts once per user and time step (30 s; steps s-1, s and s+1
//! are accepted, and each must be later than the user's last).
//!
//! `run` (against a running `sigil serve`, release): rounds of two measurements with the same
//! WORKERS browsers, each from an address of its own (`X-Forwarded-For`, the server trusting
//! 127.0.0.1 as its proxy: one address may have only `login.max_failures` checks in flight):
//!   password  GET /authorize prompt=login → GET /login → POST /login (303 to
//!             /authorize/resume) → GET /authorize/resume → 303 to the client with a code
//!   totp      GET /authorize prompt=login → GET /login → POST /login (200: the second
//!             step's page) → POST /login/factor otp=CODE (303) → GET /authorize/resume →
//!             303 with a code
//! A worker takes the next user of its kind and signs it in up to three times in a row (a TOTP
//! user with the codes of the next free steps among s-1, s, s+1, in increasing order, each
//! claimed before the sign-in starts and valid for at least 3 s more), then moves on. Each
//! measurement: WARMUP unrecorded, then DURATION recorded (sign-ins that start and end inside);
//! rate, p50/p99 of a whole sign-in (and of the second step alone), the server's CPU (from
//! /proc/PID/stat) per sign-in, the load average. After the rounds, the ratio of the TOTP rate
//! to the password-only rate per round and over all rounds (goal ≥ 0.95).
//!
//! `once` (for the RSS check): one password sign-in of `--username`, or with `--secrets` one
//! TOTP sign-in of the first user listed there.
//!
//! ```text
//! factor_bench setup --config sigil.toml --pw-users 500 --totp-users 4000 --secrets S
//! factor_bench run --issuer http://127.0.0.1:3500 --client-secret X --secrets S \
//!     --workers 8 --duration 20s --warmup 3s --rounds 2 --server-pid PID
//! ```
//!
//! Options (environment variable in brackets, then default):
//!   --config [SIGIL_CONFIG] (setup)          --secrets [SECRETS] (required but for `once`)
//!   --pw-users [PW_USERS] 500                --totp-users [TOTP_USERS] 4000
//!   --issuer [ISSUER] (run, once)            --client-id [CLIENT_ID] bench
//!   --client-secret [CLIENT_SECRET] (run, once)  --password [BENCH_PASSWORD] (required)
//!   --redirect-uri [REDIRECT_URI] http://127.0.0.1:9/cb
//!   --workers [WORKERS] 8   --duration [DUR] 20s   --warmup [WARMUP] 3s   --rounds [ROUNDS] 2
//!   --quiet-wait [QUIET_WAIT_S] 0 (seconds to wait for a quiet machine before each measurement)
//!   --server-pid [SERVER_PID]   --label [LABEL] ""   --username [BENCH_USERNAME] pw1 (once)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Client;
use serde_json::{json, Value};
use sigil::crypto::totp;

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::*;

/// A claimed step must stay acceptable this long (the sign-in's first step comes before it).
const CODE_MARGIN_S: i64 = 3;
/// Sign-ins of one user in a row before a worker moves on (the three acceptable steps).
const IN_A_ROW: usize = 3;

struct Opts {
    mode: String,
    given: BTreeMap<String, String>,
}

impl Opts {
    fn parse() -> Self {
        let mut args = std::env::args().skip(1);
        let mode = args.next().unwrap_or_default();
        if !["setup", "run", "once"].contains(&mode.as_str()) {
            eprintln!("usage: factor_bench setup|run|once --option value … (see the top of examples/factor_bench.rs)");
            std::process::exit(2);
        }
        let mut given = BTreeMap::new();
        while let Some(a) = args.next() {
            let Some(name) = a.strip_prefix("--") else {
                eprintln!("unexpected argument {a:?}");
                std::process::exit(2);
            };
            let value = args.next().unwrap_or_else(|| {
                eprintln!("--{name} needs a value");
                std::process::exit(2)
            });
            given.insert(name.to_string(), value);
        }
        Self { mode, given }
    }

    fn get(&self, flag: &str, env: &str) -> Option<String> {
        self.given
            .get(flag)
            .cloned()
            .or_else(|| std::env::var(env).ok())
    }

    fn required(&self, flag: &str, env: &str) -> String {
        self.get(flag, env).unwrap_or_else(|| {
            eprintln!("--{flag} (or {env}) is required");
            std::process::exit(2)
        })
    }

    fn or(&self, flag: &str, env: &str, default: &str) -> String {
        self.get(flag, env).unwrap_or_else(|| default.into())
    }

    fn num(&self, flag: &str, env: &str, default: u64) -> u64 {
        self.get(flag, env).map_or(default, |raw| {
            raw.parse().unwrap_or_else(|_| {
                eprintln!("--{flag}: {raw:?} is not a whole number");
                std::process::exit(2)
            })
        })
    }

    fn dur(&self, flag: &str, env: &str, default: &str) -> Duration {
        let raw = self.or(flag, env, default);
        humantime::parse_duration(&raw).unwrap_or_else(|e| {
            eprintln!("--{flag}: {raw:?}: {e}");
            std::process::exit(2)
        })
    }

    fn ctx(&self, username: &str) -> Ctx {
        Ctx::new(
            self.required("issuer", "ISSUER").trim_end_matches('/'),
            &self.or("client-id", "CLIENT_ID", "bench"),
            &self.required("client-secret", "CLIENT_SECRET"),
            &self.or("redirect-uri", "REDIRECT_URI", "http://127.0.0.1:9/cb"),
            username,
            &self.required("password", "BENCH_PASSWORD"),
        )
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

// ------------------------------------------------------------------------------------ setup

fn setup(o: &Opts) -> anyhow::Result<()> {
    let config = PathBuf::from(o.required("config", "SIGIL_CONFIG"));
    let secrets_path = o.required("secrets", "SECRETS");
    let password = o.required("password", "BENCH_PASSWORD");
    let (pw_users, totp_users) = (
        o.num("pw-users", "PW_USERS", 500),
        o.num("totp-users", "TOTP_USERS", 4000),
    );
    let settings = sigil::config::Settings::load(Some(config.as_path()))?;
    let core = sigil::bootstrap::Core::open_for_command(&settings)?;
    let started = Instant::now();
    let phc = sigil::crypto::password::hash(&password);
    let now = unix_now();
    let user = |name: String| sigil::admin::users::NewUser {
        username: name,
        ..Default::default()
    };
    let lines = core.db.with_conn(|conn| {
        use diesel::Connection;
        conn.transaction::<_, anyhow::Error, _>(|conn| {
            for n in 1..=pw_users {
                sigil::admin::users::insert(conn, user(format!("pw{n}")), phc.clone(), now)?;
            }
            let mut lines = String::new();
            for n in 1..=totp_users {
                let name = format!("totp{n}");
                let row = sigil::admin::users::insert(conn, user(name.clone()), phc.clone(), now)?;
                let secret = sigil::factors::enrol_totp(conn, &core.master, &row.id, true, now)?;
                lines.push_str(&format!("{name} {}\n", totp::encode_secret(&secret)));
            }
            Ok(lines)
        })
    })?;
    std::fs::write(&secrets_path, lines)?;
    eprintln!(
        "   {pw_users} password-only users and {totp_users} TOTP users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ------------------------------------------------------------------------------------ users

/// The TOTP users and, per user, the last step the bench has used (the server's own rule:
/// each code once, steps strictly increasing).
struct TotpUsers {
    names: Vec<String>,
    secrets: Vec<Vec<u8>>,
    last: Vec<AtomicI64>,
    next: AtomicUsize,
    /// Users passed over because none of their steps was free.
    skipped: AtomicU64,
}

impl TotpUsers {
    fn read(path: &str) -> anyhow::Result<Self> {
        let (mut names, mut secrets) = (Vec::new(), Vec::new());
        for line in std::fs::read_to_string(path)?.lines() {
            let Some((name, secret)) = line.split_once(' ') else {
                continue;
            };
            names.push(name.to_string());
            secrets.push(data_encoding::BASE32_NOPAD.decode(secret.as_bytes())?);
        }
        anyhow::ensure!(!names.is_empty(), "no users in {path}");
        let last = names.iter().map(|_| AtomicI64::new(i64::MIN)).collect();
        Ok(Self {
            names,
            secrets,
            last,
            next: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// User `i`'s next free step among those the server accepts from now until
    /// `CODE_MARGIN_S` seconds on, after `last`.
    fn free_step(last: i64) -> Option<i64> {
        let now = unix_now();
        let lowest = totp::step_of(now + CODE_MARGIN_S) - totp::DRIFT;
        let highest = totp::step_of(now) + totp::DRIFT;
        let step = last.saturating_add(1).max(lowest);
        (step <= highest).then_some(step)
    }

    /// Claims user `i`'s next free step; its code.
    fn claim(&self, i: usize) -> Option<String> {
        let mut claimed = None;
        let _ = self.last[i].fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            claimed = Self::free_step(last);
            claimed
        });
        claimed.map(|step| totp::code_at(&self.secrets[i], step))
    }

    /// The next user (round robin over all of them) with a free step.
    fn take(&self) -> Option<usize> {
        for _ in 0..self.names.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.names.len();
            if Self::free_step(self.last[i].load(Ordering::SeqCst)).is_some() {
                return Some(i);
            }
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

// ------------------------------------------------------------------------------------ workers

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Password,
    Totp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Password => "password",
            Kind::Totp => "totp",
        }
    }
}

struct Shared {
    ctx: Ctx,
    password: String,
    pw_users: usize,
    pw_next: AtomicUsize,
    totp: TotpUsers,
    /// Times a TOTP worker found no user with a free step (the pool is too small).
    stalls: AtomicU64,
}

/// One sign-in of the kind's user `i`; when the second step alone (TOTP) started and ended.
async fn one_sign_in(
    sh: &Shared,
    b: &Client,
    kind: Kind,
    i: usize,
    otp: Option<&str>,
) -> Res<Option<(Instant, Instant)>> {
    let ctx = &sh.ctx;
    let username = match kind {
        Kind::Password => format!("pw{}", i + 1),
        Kind::Totp => sh.totp.names[i].clone(),
    };
    let next = password_step(ctx, b, Some("login"), &username, &sh.password).await?;
    let (resume, second) = match (kind, otp, next) {
        (Kind::Totp, Some(code), next) => {
            let s = Instant::now();
            let resume = factor_step(ctx, b, &next, code).await?;
            (resume, Some((s, Instant::now())))
        }
        (_, _, Next::Resume(resume)) => (resume, None),
        (_, _, Next::SecondStep { .. }) => {
            return Err(format!(
                "{} sign-in of {username}: a second step, expected /authorize/resume",
                kind.name()
            ))
        }
    };
    resume_code(ctx, b, &resume).await?;
    Ok(second)
}

/// One browser signing users of `kind` in until the window ends: each user up to `IN_A_ROW`
/// times, then the next.
async fn worker(sh: Arc<Shared>, b: Client, kind: Kind, win: Window) -> (Tally, Tally) {
    let (mut t, mut second) = (Tally::default(), Tally::default());
    'users: while Instant::now() < win.end {
        let i = match kind {
            Kind::Password => sh.pw_next.fetch_add(1, Ordering::Relaxed) % sh.pw_users,
            Kind::Totp => match sh.totp.take() {
                Some(i) => i,
                None => {
                    sh.stalls.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'users;
                }
            },
        };
        for _ in 0..IN_A_ROW {
            if Instant::now() >= win.end {
                break 'users;
            }
            let otp = match kind {
                Kind::Password => None,
                Kind::Totp => match sh.totp.claim(i) {
                    Some(code) => Some(code),
                    None => continue 'users,
                },
            };
            let s = Instant::now();
            let res = one_sign_in(&sh, &b, kind, i, otp.as_deref()).await;
            let e = Instant::now();
            if let Ok(Some((s2, e2))) = &res {
                second.record(&win, *s2, *e2, &Ok::<(), String>(()));
            }
            t.record(&win, s, e, &res);
            pause_on_error(&res).await;
        }
    }
    (t, second)
}

fn loadavg() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map_or(Value::Null, |s| {
            json!(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        })
}

/// What every measurement shares.
struct Plan {
    warmup: Duration,
    duration: Duration,
    pid: Option<u32>,
    label: String,
}

/// One measurement: `browsers` sign in users of `kind` for the window; its JSON line.
async fn measure(
    sh: &Arc<Shared>,
    browsers: &[Client],
    kind: Kind,
    plan: &Plan,
    round: u64,
) -> Value {
    let Plan {
        warmup,
        duration,
        pid,
        ref label,
    } = *plan;
    let tck = clk_tck();
    let load_before = loadavg();
    let stalls0 = sh.stalls.load(Ordering::Relaxed);
    let win = Window::after(warmup, duration);
    let usage = usage_over(win, pid);
    let tasks: Vec<_> = browsers
        .iter()
        .map(|b| tokio::spawn(worker(sh.clone(), b.clone(), kind, win)))
        .collect();
    let (mut all, mut seconds) = (Vec::new(), Vec::new());
    for task in tasks {
        let (t, s) = task.await.expect("worker task");
        all.push(t);
        seconds.push(s);
    }
    let (t, second) = (Tally::merge(all), Tally::merge(seconds));
    let secs = duration.as_secs_f64();
    let mut v = stats(&t, secs);
    usage.await.expect("usage task").finish(tck, &mut v);
    let per_s = t.lat_us.len() as f64 / secs;
    // % of one core over the window → milliseconds of server CPU per sign-in.
    if let Some(cpu) = v["srv_cpu_pct"].as_f64() {
        v["srv_cpu_ms_per_signin"] = r2(cpu / 100.0 * 1000.0 / per_s);
    }
    let mut line = json!({
        "name": kind.name(),
        "label": label,
        "round": round,
        "workers": browsers.len(),
        "duration_s": secs,
        "signins": v,
        "per_s": r2(per_s),
        "load_before": load_before,
        "load_after": loadavg(),
    });
    if kind == Kind::Totp {
        line["second_step"] = stats(&second, secs);
        line["stalls"] = json!(sh.stalls.load(Ordering::Relaxed) - stalls0);
        line["users_skipped_total"] = json!(sh.totp.skipped.load(Ordering::Relaxed));
    }
    warn_errors(kind.name(), &t);
    line
}

async fn run(o: &Opts) -> anyhow::Result<()> {
    let workers = o.num("workers", "WORKERS", 8) as usize;
    let rounds = o.num("rounds", "ROUNDS", 2);
    let (warmup, duration) = (
        o.dur("warmup", "WARMUP", "3s"),
        o.dur("duration", "DUR", "20s"),
    );
    let quiet = o.num("quiet-wait", "QUIET_WAIT_S", 0);
    let plan = Plan {
        warmup,
        duration,
        pid: o
            .get("server-pid", "SERVER_PID")
            .and_then(|p| p.parse().ok()),
        label: o.or("label", "LABEL", ""),
    };
    let sh = Arc::new(Shared {
        ctx: o.ctx(""),
        password: o.required("password", "BENCH_PASSWORD"),
        pw_users: o.num("pw-users", "PW_USERS", 500) as usize,
        pw_next: AtomicUsize::new(0),
        totp: TotpUsers::read(&o.required("secrets", "SECRETS"))?,
        stalls: AtomicU64::new(0),
    });
    let browsers: Vec<Client> = (1..=workers)
        .map(|n| browser_at(Some(&format!("10.253.{}.{}", n / 256, n % 256))))
        .collect();
    // Both kinds work before anything is measured.
    for kind in [Kind::Password, Kind::Totp] {
        let i = match kind {
            Kind::Password => sh.pw_next.fetch_add(1, Ordering::Relaxed) % sh.pw_users,
            Kind::Totp => sh.totp.take().expect("a TOTP user"),
        };
        let otp = (kind == Kind::Totp).then(|| sh.totp.claim(i).expect("a free step"));
        if let Err(e) = one_sign_in(&sh, &browsers[0], kind, i, otp.as_deref()).await {
            anyhow::bail!("a {} sign-in fails before measuring: {e}", kind.name());
        }
    }
    let (mut pw_total, mut totp_total) = (0.0, 0.0);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let mut rates = [0.0; 2];
        for (k, kind) in [Kind::Password, Kind::Totp].into_iter().enumerate() {
            wait_quiet(quiet).await;
            eprintln!(
                "== round {round}: {} sign-ins, {workers} browsers, {warmup:?} warm-up + {duration:?}",
                kind.name()
            );
            let line = measure(&sh, &browsers, kind, &plan, round).await;
            rates[k] = line["per_s"].as_f64().unwrap_or(f64::NAN);
            println!("{line}");
        }
        pw_total += rates[0];
        totp_total += rates[1];
        ratios.push(r2(rates[1] / rates[0]));
    }
    let ratio = totp_total / pw_total;
    println!(
        "{}",
        json!({
            "name": "summary",
            "label": plan.label,
            "rounds": rounds,
            "password_per_s_mean": r2(pw_total / rounds as f64),
            "totp_per_s_mean": r2(totp_total / rounds as f64),
            "totp_over_password_per_round": ratios,
            "totp_over_password": r2(ratio),
            "extra_cost_pct": r2((1.0 / ratio - 1.0) * 100.0),
            "goal_met": ratio >= 0.95,
        })
    );
    Ok(())
}

/// One sign-in, for the RSS check.
async fn once(o: &Opts) -> anyhow::Result<()> {
    let b = browser();
    match o.get("secrets", "SECRETS") {
        Some(path) => {
            let users = TotpUsers::read(&path)?;
            let ctx = o.ctx(&users.names[0]);
            let next = password_step(&ctx, &b, Some("login"), &ctx.username, &ctx.password)
                .await
                .map_err(anyhow::Error::msg)?;
            let code = users.claim(0).expect("a fresh user has a free step");
            let resume = factor_step(&ctx, &b, &next, &code)
                .await
                .map_err(anyhow::Error::msg)?;
            resume_code(&ctx, &b, &resume)
                .await
                .map_err(anyhow::Error::msg)?;
        }
        None => {
            let ctx = o.ctx(&o.or("username", "BENCH_USERNAME", "pw1"));
            sign_in(&ctx, &b, Some("login"))
                .await
                .map_err(anyhow::Error::msg)?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let o = Opts::parse();
    let res = match o.mode.as_str() {
        "setup" => setup(&o),
        "run" => run(&o).await,
        _ => once(&o).await,
    };
    if let Err(e) = res {
        eprintln!("FAIL: {e:#}");
        std::process::exit(1);
    }
}
