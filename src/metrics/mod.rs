//! `/metrics` in the Prometheus text format (version 0.0.4): requests and their latency per
//! route and status class (`requests`); what happened — sign-ins by outcome, lockouts, tokens
//! issued, replays, the introspection cache, back-channel deliveries (`events`); what stands
//! now — the signing keys and how long each has signed, the database pool, the password pool
//! (`gauges`); the rows the maintenance task purged; and build information. Counting costs
//! the hot paths no lock and no allocation. With `metrics.bind` the report is served on a
//! listener of its own (`server`) and the public listener answers 404 there.

mod events;
mod gauges;
mod requests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

pub use events::{Delivery, Events, SignIn, Token, OPAQUE};
pub use requests::Shard;

use crate::endpoints::paths;
use crate::state::AppState;

#[derive(Default)]
pub struct Metrics {
    requests: requests::Requests,
    /// Counts of what happened; an `Arc`, for counting inside database calls.
    pub events: Arc<Events>,
    /// What the maintenance task purged.
    pub purges: Purges,
}

impl Metrics {
    /// A new shard of the request counts for one worker, counted in every report.
    pub fn shard(&self) -> Arc<Shard> {
        self.requests.shard()
    }
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

/// Label values are quoted strings: backslash, quote and newline are escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole report.
pub fn report(state: &AppState) -> String {
    let mut out = String::with_capacity(8192);
    state.metrics.requests.render(&mut out);
    state.metrics.events.render(&mut out);
    let rotation_period = state.settings.keys.rotation_period.as_secs();
    gauges::keys(
        &state.keyring.current(),
        state.clock.now(),
        rotation_period,
        &mut out,
    );
    out.push_str(
        "# HELP sigil_introspection_cached_answers Introspection answers held by this node.\n",
    );
    out.push_str("# TYPE sigil_introspection_cached_answers gauge\n");
    let _ = writeln!(
        out,
        "sigil_introspection_cached_answers {}",
        state.verdicts.len()
    );
    gauges::pool(&state.db.pool_report(), &mut out);
    gauges::passwords(&state.passwords, &mut out);
    state.metrics.purges.render(&mut out);
    out.push_str("# HELP sigil_build_info Sigil's version and the commit it was built from.\n");
    out.push_str("# TYPE sigil_build_info gauge\n");
    let _ = writeln!(
        out,
        "sigil_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        escape(crate::BUILD_COMMIT)
    );
    out
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(report(&state))
}

/// `/metrics` alone on `listener` (`metrics.bind`): plain HTTP, one worker, every other path
/// 404. It takes no signals: the caller stops it when the public server stops.
pub fn server(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let shutdown = state.settings.http.shutdown_timeout.as_secs();
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route(paths::METRICS, web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(shutdown)
    .listen(listener)?
    .run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
