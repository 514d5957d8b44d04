//! `/metrics` in the Prometheus text format (version 0.0.4): requests and their latency per
//! route and status class, the published signing keys per algorithm and state, the cached
//! introspection answers, the password pool (its bounds, queue and outcomes), the rows the
//! maintenance task purged, and build information. Each HTTP worker counts in its own shard (an
//! uncontended read lock and a few atomic additions per request, on cache lines no other core
//! writes); `/metrics` adds the shards up. Routes are the route table's patterns
//! (`/admin/api/keys/{kid}/retire`), and every path that matched no route is counted as
//! `unmatched`, so no one can grow the set of series by asking for new paths.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::{web, HttpResponse};

use crate::crypto::password::PasswordPool;
use crate::state::AppState;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
struct RouteStats {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// All workers' shards.
#[derive(Default)]
pub struct Metrics {
    shards: Mutex<Vec<Arc<Shard>>>,
    /// What the maintenance task purged.
    pub purges: Purges,
}

/// Per table, the rows the maintenance task deleted and the purges that failed; and the runs
/// it finished.
#[derive(Default)]
pub struct Purges {
    /// Per table: [rows purged, purges failed].
    by_table: Mutex<BTreeMap<&'static str, [u64; 2]>>,
    runs: AtomicU64,
}

impl Purges {
    pub fn purged(&self, table: &'static str, rows: usize) {
        self.counts().entry(table).or_default()[0] += rows as u64;
    }

    pub fn failed(&self, table: &'static str) {
        self.counts().entry(table).or_default()[1] += 1;
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, [u64; 2]>> {
        self.by_table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn run_finished(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    /// Every purged table has its series from the start, at 0 until something happens.
    fn render(&self, out: &mut String) {
        let counts = self.counts();
        let series = [
            ("sigil_purged_rows_total", "Expired rows deleted, by table."),
            (
                "sigil_purge_failures_total",
                "Purges that failed (retried at the next run), by table.",
            ),
        ];
        for (i, (name, help)) in series.into_iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for table in crate::storage::maintenance::tables() {
                let n = counts.get(table).map_or(0, |c| c[i]);
                let _ = writeln!(out, "{name}{{table=\"{table}\"}} {n}");
            }
        }
        out.push_str("# HELP sigil_maintenance_runs_total Maintenance runs finished.\n");
        out.push_str("# TYPE sigil_maintenance_runs_total counter\n");
        let _ = writeln!(
            out,
            "sigil_maintenance_runs_total {}",
            self.runs.load(Ordering::Relaxed)
        );
    }
}

impl Metrics {
    /// A new shard for one worker, counted in every report.
    pub fn shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::default());
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shard.clone());
        shard
    }

    /// Every shard's counts added up, by route (sorted).
    fn totals(&self) -> BTreeMap<String, Totals> {
        let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
        for shard in self.shards.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (route, s) in shard.read().iter() {
                let t = totals.entry(route.clone()).or_default();
                for (i, n) in s.by_class.iter().enumerate() {
                    t.by_class[i] += n.load(Ordering::Relaxed);
                }
                for (i, n) in s.buckets.iter().enumerate() {
                    t.buckets[i] += n.load(Ordering::Relaxed);
                }
                t.count += s.count.load(Ordering::Relaxed);
                t.sum_micros += s.sum_micros.load(Ordering::Relaxed);
            }
        }
        totals
    }
}

#[derive(Default)]
struct Totals {
    by_class: [u64; 5],
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

/// One worker's counts.
#[derive(Default)]
pub struct Shard {
    routes: RwLock<HashMap<String, RouteStats>>,
}

impl Shard {
    /// Counts one answered request for `path`. Most routes are static, so the path itself names
    /// the series; `pattern` (the route table's pattern, which takes a second walk through the
    /// routes) is asked only for a path not seen as a route before.
    pub fn record(
        &self,
        path: &str,
        pattern: impl FnOnce() -> Option<String>,
        status: u16,
        elapsed: Duration,
    ) {
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        let seconds = elapsed.as_secs_f64();
        let add = |s: &RouteStats| {
            s.by_class[class].fetch_add(1, Ordering::Relaxed);
            s.count.fetch_add(1, Ordering::Relaxed);
            s.sum_micros
                .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
            if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
                s.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        };
        if let Some(stats) = self.read().get(path) {
            add(stats);
            return;
        }
        let route = pattern().unwrap_or_else(|| "unmatched".to_string());
        if let Some(stats) = self.read().get(&route) {
            add(stats);
            return;
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        add(routes.entry(route).or_default());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, RouteStats>> {
        self.routes.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Metrics {
    /// The request series, sorted by route.
    fn render_requests(&self, out: &mut String) {
        let sorted = self.totals();
        out.push_str(
            "# HELP sigil_http_requests_total HTTP requests answered, by route and status class.\n",
        );
        out.push_str("# TYPE sigil_http_requests_total counter\n");
        for (route, t) in &sorted {
            for (i, class) in CLASSES.iter().enumerate() {
                let n = t.by_class[i];
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "sigil_http_requests_total{{route=\"{}\",status=\"{class}\"}} {n}",
                        escape(route)
                    );
                }
            }
        }
        out.push_str("# HELP sigil_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE sigil_http_request_duration_seconds histogram\n");
        for (route, t) in &sorted {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += t.buckets[i];
                let _ = writeln!(
                    out,
                    "sigil_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = t.sum_micros as f64 / 1e6;
            let count = t.count;
            let _ = writeln!(
                out,
                "sigil_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "sigil_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "sigil_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
    }
}

/// Label values are quoted strings: backslash, quote and newline are escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(4096);
    state.metrics.render_requests(&mut out);
    out.push_str("# HELP sigil_signing_keys Published signing keys, by algorithm and state.\n");
    out.push_str("# TYPE sigil_signing_keys gauge\n");
    let keys = state.keyring.current();
    let mut counted: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (_, key) in keys.published() {
        *counted
            .entry((key.alg.as_str(), key.state.as_str()))
            .or_default() += 1;
    }
    for ((alg, key_state), n) in counted {
        let _ = writeln!(
            out,
            "sigil_signing_keys{{alg=\"{alg}\",state=\"{key_state}\"}} {n}"
        );
    }
    out.push_str(
        "# HELP sigil_introspection_cached_answers Introspection answers held by this node.\n",
    );
    out.push_str("# TYPE sigil_introspection_cached_answers gauge\n");
    let _ = writeln!(
        out,
        "sigil_introspection_cached_answers {}",
        state.verdicts.len()
    );
    render_passwords(&state.passwords, &mut out);
    state.metrics.purges.render(&mut out);
    out.push_str("# HELP sigil_build_info Sigil's version.\n");
    out.push_str("# TYPE sigil_build_info gauge\n");
    let _ = writeln!(
        out,
        "sigil_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(out)
}

/// The password pool: bounds (fixed at start), what waits and runs now, and what became of
/// the checks (hashed, refused with 503, dropped because the client had gone).
fn render_passwords(pool: &PasswordPool, out: &mut String) {
    let bounds = pool.bounds();
    let stats = pool.stats();
    let mut gauge = |name: &str, help: &str, series: &[(&str, usize)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "sigil_password_threads",
        "Threads that hash passwords (SCHED_IDLE).",
        &[("", bounds.threads)],
    );
    gauge(
        "sigil_password_checks_limit",
        "Password checks that may wait or run at once, by lane (beyond: 503).",
        &[
            ("{lane=\"normal\"}", bounds.normal.pending),
            ("{lane=\"priority\"}", bounds.priority.pending),
        ],
    );
    gauge(
        "sigil_password_checks_address_limit",
        "Of those, the most one client address may hold, by lane.",
        &[
            ("{lane=\"normal\"}", bounds.normal.per_address),
            ("{lane=\"priority\"}", bounds.priority.per_address),
        ],
    );
    gauge(
        "sigil_password_checks_queued",
        "Password checks waiting for a thread, by lane.",
        &[
            ("{lane=\"normal\"}", stats.queued_normal),
            ("{lane=\"priority\"}", stats.queued_priority),
        ],
    );
    gauge(
        "sigil_password_checks_running",
        "Password checks being hashed now.",
        &[("", stats.running)],
    );
    out.push_str(
        "# HELP sigil_password_checks_total Password checks by outcome: hashed, rejected (pool full, 503), dropped (client gone, never hashed).\n",
    );
    out.push_str("# TYPE sigil_password_checks_total counter\n");
    for (outcome, n) in [
        ("hashed", stats.hashed),
        ("rejected", stats.rejected),
        ("dropped", stats.dropped),
    ] {
        let _ = writeln!(
            out,
            "sigil_password_checks_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_route_class_and_bucket() {
        let m = Metrics::default();
        let (a, b) = (m.shard(), m.shard());
        a.record(
            "/token",
            || Some("/token".into()),
            200,
            Duration::from_micros(300),
        );
        b.record(
            "/token",
            || Some("/token".into()),
            200,
            Duration::from_micros(300),
        );
        a.record(
            "/token",
            || unreachable!("a known route"),
            401,
            Duration::from_millis(20),
        );
        a.record("/nope", || None, 404, Duration::from_micros(10));
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains("sigil_http_requests_total{route=\"/token\",status=\"2xx\"} 2\n"));
        assert!(out.contains("sigil_http_requests_total{route=\"/token\",status=\"4xx\"} 1\n"));
        assert!(out.contains("sigil_http_requests_total{route=\"unmatched\",status=\"4xx\"} 1\n"));
        assert!(out.contains(
            "sigil_http_request_duration_seconds_bucket{route=\"/token\",le=\"0.0005\"} 2\n"
        ));
        assert!(out.contains(
            "sigil_http_request_duration_seconds_bucket{route=\"/token\",le=\"0.025\"} 3\n"
        ));
        assert!(out.contains("sigil_http_request_duration_seconds_count{route=\"/token\"} 3\n"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_password_pool_shows_its_bounds_and_outcomes() {
        let pool = PasswordPool::start(2, 64);
        let mut out = String::new();
        render_passwords(&pool, &mut out);
        for line in [
            "sigil_password_threads 2\n",
            "sigil_password_checks_limit{lane=\"normal\"} 64\n",
            "sigil_password_checks_limit{lane=\"priority\"} 16\n",
            "sigil_password_checks_address_limit{lane=\"normal\"} 16\n",
            "sigil_password_checks_address_limit{lane=\"priority\"} 4\n",
            "sigil_password_checks_queued{lane=\"normal\"} 0\n",
            "sigil_password_checks_running 0\n",
            "sigil_password_checks_total{outcome=\"hashed\"} 0\n",
            "sigil_password_checks_total{outcome=\"dropped\"} 0\n",
            "# TYPE sigil_password_checks_total counter\n",
        ] {
            assert!(out.contains(line), "{line} in\n{out}");
        }
    }
}
