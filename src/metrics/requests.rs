//! Requests and their latency per route and status class. Each HTTP worker counts in its own
//! shard (an uncontended read lock and a few atomic additions per request, on cache lines no
//! other core writes); a report adds the shards up. Routes are the route table's patterns
//! (`/admin/api/keys/{kid}/retire`), and every path that matched no route is counted as
//! `unmatched`, so no one can grow the set of series by asking for new paths.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::escape;

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
pub struct Requests {
    shards: Mutex<Vec<Arc<Shard>>>,
}

impl Requests {
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

    /// The request series, sorted by route.
    pub(super) fn render(&self, out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_route_class_and_bucket() {
        let m = Requests::default();
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
        m.render(&mut out);
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
    }
}
