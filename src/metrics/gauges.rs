//! What stands now, read at each report: the signing keys, the database pool and the password
//! pool.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::escape;
use crate::crypto::keyring::KeySnapshot;
use crate::crypto::password::PasswordPool;
use crate::storage::PoolReport;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The published keys per algorithm and state; how long each active key has signed, beside
/// the period after which the schedule rotates it.
pub(super) fn keys(keys: &KeySnapshot, now: i64, rotation_period: u64, out: &mut String) {
    header(
        out,
        "sigil_signing_keys",
        "gauge",
        "Published signing keys, by algorithm and state.",
    );
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
    header(
        out,
        "sigil_signing_key_age_seconds",
        "gauge",
        "How long each active signing key has signed, by kid and algorithm.",
    );
    let mut active: Vec<_> = keys.active_keys().collect();
    active.sort_by_key(|k| k.alg.as_str());
    for key in active {
        let _ = writeln!(
            out,
            "sigil_signing_key_age_seconds{{kid=\"{}\",alg=\"{}\"}} {}",
            escape(&key.kid),
            key.alg.as_str(),
            (now - key.activated_at).max(0)
        );
    }
    header(
        out,
        "sigil_signing_key_rotation_period_seconds",
        "gauge",
        "keys.rotation_period: how long a key signs before the schedule rotates it.",
    );
    let _ = writeln!(
        out,
        "sigil_signing_key_rotation_period_seconds {rotation_period}"
    );
}

/// The database pool: its bound, the connections in use and idle, and the waits for one.
pub(super) fn pool(pool: &PoolReport, out: &mut String) {
    header(
        out,
        "sigil_db_connections_max",
        "gauge",
        "database.max_connections.",
    );
    let _ = writeln!(out, "sigil_db_connections_max {}", pool.max);
    header(
        out,
        "sigil_db_connections",
        "gauge",
        "Open database connections, by state.",
    );
    let _ = writeln!(
        out,
        "sigil_db_connections{{state=\"in_use\"}} {}\nsigil_db_connections{{state=\"idle\"}} {}",
        pool.in_use(),
        pool.idle
    );
    header(
        out,
        "sigil_db_connection_waits_total",
        "counter",
        "Calls that found no free connection at once and waited for one (opening one included).",
    );
    let _ = writeln!(out, "sigil_db_connection_waits_total {}", pool.waits);
    header(
        out,
        "sigil_db_connection_wait_seconds_total",
        "counter",
        "Time those calls spent waiting, in all.",
    );
    let _ = writeln!(
        out,
        "sigil_db_connection_wait_seconds_total {}",
        pool.wait_seconds
    );
    header(
        out,
        "sigil_db_connection_timeouts_total",
        "counter",
        "Waits that ended without a connection within database.acquire_timeout (answered 503).",
    );
    let _ = writeln!(out, "sigil_db_connection_timeouts_total {}", pool.timeouts);
}

/// The password pool: bounds (fixed at start), what waits and runs now, and what became of
/// the checks (hashed, refused with 503, dropped because the client had gone).
pub(super) fn passwords(pool: &PasswordPool, out: &mut String) {
    let bounds = pool.bounds();
    let stats = pool.stats();
    let mut gauge = |name: &str, help: &str, series: &[(&str, usize)]| {
        header(out, name, "gauge", help);
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
    header(
        out,
        "sigil_password_checks_total",
        "counter",
        "Password checks by outcome: hashed, rejected (pool full, 503), dropped (client gone, never hashed).",
    );
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
    fn the_password_pool_shows_its_bounds_and_outcomes() {
        let pool = PasswordPool::start(2, 64);
        let mut out = String::new();
        passwords(&pool, &mut out);
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
