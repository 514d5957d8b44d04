//! SECURITY.md 27 ("nothing an unauthenticated request creates outlives its expiry; expired rows
//! are purged on every table") and DESIGN.md "Maintenance": every table with expiring rows is
//! filled through the real endpoints, the clock moves past each lifetime, the maintenance task
//! runs (every 100 ms here), and what expired is gone while what lives stays and still works.
//! Runs are watched through `/metrics` (`sigil_maintenance_runs_total`): two more finished runs
//! mean that one whole run started after the test's last change.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};

use crate::both_backends;
use crate::client_assertion::{self, keys::ClientKey};
use crate::flow::{location, query, Browser, CHALLENGE, PASSWORD, REDIRECT};
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::instant;
use crate::keys::kids;
use crate::logout::{end_session_url, sign_in};
use crate::par::pushed;
use crate::two_nodes::start_node;
use sigil::config::{DurationSetting, Settings};
use sigil::storage::maintenance::PURGES;
use sigil::storage::{AnyConnection, StorageError};

both_backends!(
    attack27_expired_rows_are_purged_from_every_table_and_live_ones_stay,
    attack27_purging_never_lifts_a_lockout,
    attack27_a_batch_of_two_still_empties_a_table_over_runs,
    attack27_a_failing_purge_leaves_the_other_tables_purged_and_the_keys_reloading,
    attack27_nodes_purging_at_once_under_a_flood_never_error,
    attack27_every_purge_reads_by_an_index,
);

/// Every table with expiring rows.
const TABLES: [&str; 12] = [
    "auth_requests",
    "pushed_requests",
    "initial_access_tokens",
    "device_codes",
    "client_assertions",
    "revoked_tokens",
    "login_failures",
    "sessions",
    "grants",
    "authorization_codes",
    "refresh_tokens",
    "trusted_devices",
];

const OFFLINE: &[(&str, &str)] = &[("scope", "openid email offline_access")];

fn secs(n: u64) -> DurationSetting {
    DurationSetting::from_secs(n)
}

/// The maintenance task every 100 ms.
fn often(s: &mut Settings) {
    s.maintenance.interval = DurationSetting(Duration::from_millis(100));
}

/// Runs `sql` in the test's own database.
fn exec(app: &TestApp, sql: &str) {
    app.state
        .db
        .with_conn(|c| c.batch_execute(sql).map_err(StorageError::from))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `SELECT COUNT(*) FROM table WHERE filter` in the test's own database.
fn count(app: &TestApp, table: &str, filter: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}");
    app.state
        .db
        .with_conn(|c| {
            diesel::sql_query(&sql)
                .get_result::<Count>(c)
                .map_err(StorageError::from)
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// Every table's row count.
fn counts(app: &TestApp) -> BTreeMap<&'static str, i64> {
    TABLES.map(|t| (t, count(app, t, "1 = 1"))).into()
}

/// The rows DESIGN.md "Maintenance" says must be gone at `now`: the test's own reading of it,
/// not the purge's statements.
fn expired(table: &str, now: i64, idle: i64) -> String {
    match table {
        "sessions" => format!(
            "expires_at <= {now} OR ended_at IS NOT NULL OR last_seen_at <= {}",
            now - idle
        ),
        // Past the window, and not locked.
        "login_failures" => format!("expires_at <= {now} AND locked_until <= {now}"),
        _ => format!("expires_at <= {now}"),
    }
}

/// A series' value in the `/metrics` of the node at `address` (0 when absent).
async fn metric(address: &str, series: &str) -> u64 {
    let body = reqwest::get(format!("{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn purged(table: &str) -> String {
    format!("sigil_purged_rows_total{{table=\"{table}\"}}")
}

fn failures(table: &str) -> String {
    format!("sigil_purge_failures_total{{table=\"{table}\"}}")
}

/// Waits (at most 10 s) until `n` more maintenance runs have finished at `address`.
async fn runs(address: &str, n: u64) {
    let series = "sigil_maintenance_runs_total";
    let start = metric(address, series).await;
    for _ in 0..200 {
        if metric(address, series).await >= start + n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} maintenance runs did not finish within 10 s at {address}");
}

/// Starts an authorization for "live" in `browser` and leaves it at the login page (a parked
/// request); returns the login page's URL.
async fn park(app: &TestApp, browser: &Browser) -> String {
    let r = app.start(browser, "live", &[]).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.contains("/login?"), "{to}");
    to
}

/// An abandoned sign-in: parked, one wrong password, never finished.
async fn abandon(app: &TestApp, browser: &Browser) {
    let login = park(app, browser).await;
    let r = app
        .submit_login(browser, &login, "alice", "wrong password")
        .await;
    assert_eq!(r.status(), 401);
}

/// Logs `browser` out through the confirmation page (RP-Initiated Logout 1.0 §2).
async fn log_out(app: &TestApp, browser: &Browser) {
    let url = end_session_url(app, &[]).await;
    let page = browser.get(&url).await;
    assert_eq!(page.status(), 200);
    let csrf = crate::flow::hidden(&page.text().await.unwrap(), "csrf_token");
    let r = browser
        .http
        .post(&url)
        .header("Origin", "null")
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("csrf_token", csrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You are signed out"));
}

async fn refresh(app: &TestApp, client: &(String, String), token: &Value) -> reqwest::Response {
    let token = token.as_str().expect("a refresh token");
    app.token_basic(
        &client.0,
        &client.1,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// RFC 7009 revocation of `token` by `client`.
async fn revoke(app: &TestApp, client: &(String, String), token: &Value) {
    let url = app.endpoint("revocation_endpoint").await;
    let r = app
        .http
        .post(url)
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token.as_str().expect("a token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A `client_secret_jwt` client "jwt" (RFC 7523): each of its token requests stores its
/// assertion's id until the assertion expires.
fn jwt_client(app: &TestApp) -> ClientKey {
    let r = client_assertion::register(
        app,
        "jwt",
        json!({"token_endpoint_auth_method": "client_secret_jwt"}),
    );
    ClientKey::hmac(r["client_secret"].as_str().unwrap())
}

async fn assertion(app: &TestApp, key: &ClientKey) {
    let claims = client_assertion::claims(app, "jwt").await;
    let (status, body) = client_assertion::token(app, &key.sign(&claims)).await;
    assert_eq!(status, 200, "{body}");
}

/// An initial access token for dynamic registration (RFC 7591), as `sigil client
/// initial-token` issues it, good for `ttl` seconds.
fn initial_token(app: &TestApp, ttl: u64) {
    let now = app.state.clock.now();
    app.state
        .db
        .with_conn(|c| {
            sigil::admin::registration::issue_initial_token(c, ttl, &sigil::audit::By::cli(), now)
        })
        .unwrap();
}

/// A trusted browser for `user_id` until `expires_at`. Written directly: on this branch no
/// endpoint creates them yet (the device cookie does, with the brute-force work).
fn device(app: &TestApp, user_id: &str, expires_at: i64) {
    let now = app.state.clock.now();
    let hash = uuid::Uuid::new_v4().simple();
    exec(
        app,
        &format!(
            "INSERT INTO trusted_devices (device_hash, user_id, created_at, expires_at) \
             VALUES ('{hash}', '{user_id}', {now}, {expires_at})"
        ),
    );
}

async fn attack27_expired_rows_are_purged_from_every_table_and_live_ones_stay(backend: Backend) {
    let idle = 1800;
    let app = spawn_app_with(backend, |s| {
        often(s);
        s.login.request_ttl = secs(300);
        s.sessions.idle_timeout = secs(idle as u64);
        s.sessions.lifetime = secs(3600);
        s.tokens.refresh_ttl = secs(950);
    })
    .await;
    let alice = app.add_user("alice")["id"].as_str().unwrap().to_string();
    let [live, unredeemed, spent] =
        ["live", "unredeemed", "spent"].map(|c| app.web_client(c, json!({})));
    let key = jwt_client(&app);
    let tv = crate::device::device_client(&app, "tv", json!({}));

    // At t0: a browser that stays signed in, with a grant and refresh token that will expire; a
    // sign-in whose code is never redeemed (its browser then idles); a sign-in whose access token
    // is revoked and whose browser logs out; an abandoned sign-in with a wrong password; a client
    // assertion; a trusted browser about to expire.
    let a = Browser::new();
    sign_in(&app, &a, &live.0, &live.1, "alice", OFFLINE).await;
    app.code_for(&Browser::new(), &unredeemed.0, &[]).await;
    let c = Browser::new();
    let tokens = sign_in(&app, &c, &spent.0, &spent.1, "alice", OFFLINE).await;
    revoke(&app, &spent, &tokens["access_token"]).await;
    log_out(&app, &c).await;
    abandon(&app, &Browser::new()).await;
    pushed(&app, &live.0, &live.1, &[]).await;
    crate::device::started(&app, &tv).await;
    assertion(&app, &key).await;
    device(&app, &alice, app.state.clock.now() + 10);
    initial_token(&app, 10);

    // At t0 + 1000 s the first browser is used again (its idle time starts over) for a second
    // grant, whose refresh token rotates 900 s later; another browser signs in and logs out.
    app.state.clock.advance(1000);
    let second = sign_in(&app, &a, &live.0, &live.1, "alice", OFFLINE).await;
    let e = Browser::new();
    let login = park(&app, &e).await;
    let mut r = app.submit_login(&e, &login, "alice", PASSWORD).await;
    while !location(&r).contains("/consent?") {
        assert!(
            location(&r).starts_with(&app.address),
            "signed in, not consented"
        );
        r = e.get(&location(&r)).await;
    }
    log_out(&app, &e).await;
    app.state.clock.advance(900);
    let r = refresh(&app, &live, &second["refresh_token"]).await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();

    // 50 s later every lifetime above has passed but the first browser's session, the second
    // grant and the rotated refresh token; the logged-out session is neither idle nor old.
    app.state.clock.advance(50);
    let now = app.state.clock.now();
    runs(&app.address, 2).await;
    for table in TABLES {
        let left = count(&app, table, &expired(table, now, idle));
        assert_eq!(left, 0, "expired rows left in {table}");
        assert!(
            metric(&app.address, &purged(table)).await > 0,
            "{table} had expired rows to purge"
        );
    }
    for (client, grants) in [("live", 1), ("unredeemed", 0), ("spent", 0)] {
        let left = count(&app, "grants", &format!("client_id = '{client}'"));
        assert_eq!(left, grants, "grants of {client}");
    }
    assert_eq!(
        count(&app, "sessions", "1 = 1"),
        1,
        "the idle and the ended session went"
    );

    // What lives still works: the browser is signed in, the rotated refresh token refreshes.
    let r = app
        .start(&a, "live", &[("prompt", "none"), OFFLINE[0]])
        .await;
    assert!(query(&location(&r)).contains_key("code"), "still signed in");
    let r = refresh(&app, &live, &rotated["refresh_token"]).await;
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();

    // Live rows in every table, made now, outlast further runs.
    abandon(&app, &Browser::new()).await;
    pushed(&app, &live.0, &live.1, &[]).await;
    crate::device::started(&app, &tv).await;
    assertion(&app, &key).await;
    revoke(&app, &live, &fresh["access_token"]).await;
    device(&app, &alice, now + 1_000_000);
    initial_token(&app, 3600);
    let before = counts(&app);
    for (table, n) in &before {
        assert!(*n > 0, "a live row in {table}");
    }
    runs(&app.address, 2).await;
    assert_eq!(counts(&app), before, "live rows stay");
    for table in TABLES {
        assert_eq!(metric(&app.address, &failures(table)).await, 0, "{table}");
    }
}

async fn attack27_purging_never_lifts_a_lockout(backend: Backend) {
    let app = spawn_app_with(backend, often).await;
    app.add_user("alice");
    app.web_client("live", json!({}));
    let attacker = Browser::new();
    for _ in 0..4 {
        abandon(&app, &attacker).await;
    }
    // The fifth failure, still within the first one's window (15 min), locks the account and
    // the address for a window from now.
    app.state.clock.advance(800);
    abandon(&app, &attacker).await;
    // Past the first failure's window, inside the lockout: whatever the rows' expiry says, the
    // purge keeps them, and the right password from a fresh browser is still refused.
    app.state.clock.advance(200);
    runs(&app.address, 2).await;
    let browser = Browser::new();
    let login = park(&app, &browser).await;
    let r = app.submit_login(&browser, &login, "alice", PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // Long after the lockout its rows go, and the right password signs in.
    app.state.clock.advance(2000);
    runs(&app.address, 2).await;
    assert_eq!(count(&app, "login_failures", "1 = 1"), 0);
    let login = park(&app, &browser).await;
    let r = app.submit_login(&browser, &login, "alice", PASSWORD).await;
    assert_eq!(r.status(), 303);
}

async fn attack27_a_batch_of_two_still_empties_a_table_over_runs(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        often(s);
        s.maintenance.batch_size = 2;
        s.login.request_ttl = secs(60);
    })
    .await;
    app.web_client("live", json!({}));
    for _ in 0..10 {
        park(&app, &Browser::new()).await;
    }
    assert_eq!(count(&app, "auth_requests", "1 = 1"), 10);
    app.state.clock.advance(61);
    let browser = Browser::new();
    let login = park(&app, &browser).await;
    runs(&app.address, 2).await;
    assert_eq!(
        count(&app, "auth_requests", "1 = 1"),
        1,
        "only the live one"
    );
    assert_eq!(metric(&app.address, &purged("auth_requests")).await, 10);
    assert_eq!(browser.get(&login).await.status(), 200, "its login page");
}

async fn attack27_a_failing_purge_leaves_the_other_tables_purged_and_the_keys_reloading(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        often(s);
        s.login.request_ttl = secs(60);
    })
    .await;
    app.add_user("alice");
    app.web_client("live", json!({}));
    // Rows for purges before the broken one and after it.
    park(&app, &Browser::new()).await;
    let browser = Browser::new();
    app.code_for(&browser, "live", &[]).await;
    log_out(&app, &browser).await;
    exec(&app, "DROP TABLE client_assertions");
    app.state.clock.advance(2000);
    runs(&app.address, 2).await;
    for table in ["auth_requests", "sessions", "grants", "authorization_codes"] {
        assert_eq!(count(&app, table, "1 = 1"), 0, "{table} was purged");
    }
    assert!(
        metric(&app.address, &failures("client_assertions")).await >= 2,
        "the broken purge failed at every run"
    );
    for table in TABLES.iter().filter(|t| **t != "client_assertions") {
        assert_eq!(metric(&app.address, &failures(table)).await, 0, "{table}");
    }

    // The keys still reload: a rotation by the CLI reaches the JWKS.
    let before = kids(&app.jwks().await);
    let out = app.sigil(&["keys", "rotate", "--force"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.wait_for_jwks(|jwks| kids(jwks) != before).await;

    // With the table back, the next runs purge it again.
    let expired = app.state.clock.now() - 1;
    exec(
        &app,
        &format!(
            "CREATE TABLE client_assertions (client_id TEXT NOT NULL, jti_hash TEXT NOT NULL, \
             expires_at BIGINT NOT NULL, PRIMARY KEY (client_id, jti_hash)); \
             CREATE INDEX client_assertions_expiry ON client_assertions (expires_at); \
             INSERT INTO client_assertions VALUES ('live', 'x', {expired})"
        ),
    );
    runs(&app.address, 2).await;
    assert_eq!(count(&app, "client_assertions", "1 = 1"), 0);
    assert_eq!(metric(&app.address, &purged("client_assertions")).await, 1);
}

async fn attack27_nodes_purging_at_once_under_a_flood_never_error(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        often(s);
        s.maintenance.batch_size = 2;
        s.login.request_ttl = secs(60);
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    app.web_client("live", json!({}));
    let other = start_node(app.settings.clone(), app.state.clock.clone());
    let nodes = [app.address.clone(), other.address.clone()];
    let authorize = app
        .authorize_url(&[
            ("client_id", "live"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let path = authorize.strip_prefix(&app.address).unwrap();
    let rounds = 4;
    for round in 0..rounds {
        // 40 abandoned authorizations released at once, each from its own address behind the
        // proxy, while both nodes purge the previous round's.
        let node = &nodes[round % 2];
        let requests = (0..40)
            .map(|i| {
                let from = format!("10.0.{round}.{i}");
                let url = format!("{node}{path}");
                instant::request("GET", &url, &[("X-Forwarded-For", &from)], "")
            })
            .collect();
        let answers = instant::fire(node.strip_prefix("http://").unwrap(), requests).await;
        assert_eq!(
            instant::by_status(&answers),
            BTreeMap::from([(303, 40)]),
            "round {round}"
        );
        app.state.clock.advance(61);
    }
    for node in &nodes {
        runs(node, 2).await;
    }
    assert_eq!(count(&app, "auth_requests", "1 = 1"), 0);
    let mut deleted = 0;
    for node in &nodes {
        deleted += metric(node, &purged("auth_requests")).await;
        for table in TABLES {
            assert_eq!(metric(node, &failures(table)).await, 0, "{table} at {node}");
        }
    }
    assert_eq!(
        deleted,
        40 * rounds as u64,
        "each row deleted once, by one node"
    );
}

/// The query plan of `sql`, one line per step: SQLite's `EXPLAIN QUERY PLAN`; PostgreSQL's
/// `EXPLAIN` with sequential scans ruled out unless nothing else can answer (its tables are
/// empty here, and for an empty table reading it whole is cheapest).
fn plan(conn: &mut AnyConnection, sql: &str) -> Result<Vec<String>, StorageError> {
    #[derive(diesel::QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let sql = sql.replace("$1", "1000000").replace("$2", "1000");
    Ok(match conn {
        AnyConnection::Sqlite(_) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<Step>(conn)?
            .into_iter()
            .map(|s| s.detail)
            .collect(),
        AnyConnection::Postgresql(_) => conn.transaction(|conn| {
            conn.batch_execute("SET LOCAL enable_seqscan = off")?;
            Ok::<_, StorageError>(
                diesel::sql_query(format!("EXPLAIN {sql}"))
                    .load::<Line>(conn)?
                    .into_iter()
                    .map(|l| l.line)
                    .collect(),
            )
        })?,
    })
}

async fn attack27_every_purge_reads_by_an_index(backend: Backend) {
    let app = spawn_app(backend).await;
    app.state
        .db
        .with_conn(|conn| -> Result<(), StorageError> {
            for purge in &PURGES {
                let sql = purge.statement(conn);
                let steps = plan(conn, &sql)?;
                println!("{sql}\n  {}", steps.join("\n  "));
                // SQLite: SEARCH (a key or an index range), never SCAN (every row or entry).
                // PostgreSQL: no Seq Scan, every index scan bounded by an Index Cond, and the
                // delete itself a Tid Scan of the batch's rows.
                let unbounded: Vec<_> = steps
                    .iter()
                    .enumerate()
                    .filter(|(i, step)| {
                        let bounded = || {
                            steps
                                .get(i + 1)
                                .is_some_and(|next| next.trim_start().starts_with("Index Cond"))
                        };
                        step.starts_with("SCAN ")
                            || step.contains("Seq Scan")
                            || (step.contains("Index Scan") || step.contains("Index Only Scan"))
                                && !bounded()
                    })
                    .collect();
                assert!(unbounded.is_empty(), "{}: {unbounded:?}", purge.table);
                let by_index = |s: &String| s.contains(" INDEX ") || s.contains("Index Cond");
                let by_row = |s: &String| s.contains("(rowid=?)") || s.contains("Tid Scan");
                assert!(steps.iter().any(by_index), "{steps:?}");
                assert!(steps.iter().any(by_row), "{steps:?}");
            }
            Ok(())
        })
        .unwrap();
}
