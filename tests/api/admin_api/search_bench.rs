//! The users page's search at 100,000 users (issue 12: < 50 ms p99 on SQLite and PostgreSQL),
//! through the admin API over HTTP as the console's page would ask it: the first page, a
//! username prefix, an email substring that matches a third of them, a name substring, a term
//! that matches nobody, and a later page. Ignored by default: it seeds 100,000 users.
//! Measured here (debug build, 2 cores, load ~1.5): p99 over all searches 10 ms on SQLite, 17 ms
//! on PostgreSQL (before the search read a window in username order first, a term matching a
//! third of the users took PostgreSQL's p99 to 104 ms).
//!
//! `cargo test --test api -- --ignored users_search_at_100k --nocapture`

use std::time::{Duration, Instant};

use diesel::prelude::*;
use reqwest::Method;
use sigil::storage::schema::users;
use sigil::storage::users::UserRow;
use sigil::storage::StorageError;

use super::{admin_token, call};
use crate::helpers::{spawn_app, Backend, TestApp};

const USERS: usize = 100_000;
const ROUNDS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "seeds 100,000 users; run with --ignored"]
async fn users_search_at_100k_users_sqlite() {
    run(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "seeds 100,000 users; run with --ignored"]
async fn users_search_at_100k_users_postgres() {
    run(Backend::Postgres).await
}

fn seed(app: &TestApp) {
    const SURNAMES: [&str; 8] = [
        "Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Tanaka",
    ];
    app.state
        .db
        .with_conn(|c| {
            c.transaction::<_, StorageError, _>(|c| {
                let rows: Vec<UserRow> = (0..USERS)
                    .map(|i| UserRow {
                        id: format!("u-{i:06}"),
                        username: format!("user{i:06}"),
                        email: Some(format!(
                            "person{i}@{}.example",
                            ["corp", "mail", "uni"][i % 3]
                        )),
                        email_verified: true,
                        name: Some(format!("Person {i} {}", SURNAMES[i % 8])),
                        claims: "{}".into(),
                        password_hash: String::new(),
                        is_admin: false,
                        disabled: false,
                        tokens_valid_after: 0,
                        created_at: 1,
                        updated_at: 1,
                    })
                    .collect();
                for batch in rows.chunks(1000) {
                    for row in batch {
                        sigil::storage::users::insert(c, row)?;
                    }
                }
                Ok(())
            })
        })
        .unwrap();
    let n: i64 = app
        .state
        .db
        .with_conn(|c| Ok::<_, StorageError>(users::table.count().get_result(c)?))
        .unwrap();
    assert!(n >= USERS as i64);
    // Fresh statistics, as a database in use has.
    app.state
        .db
        .with_conn(|c| {
            diesel::sql_query("ANALYZE").execute(c)?;
            Ok::<_, StorageError>(())
        })
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn run(backend: Backend) {
    let app = spawn_app(backend).await;
    let started = Instant::now();
    seed(&app);
    println!("seeded {USERS} users in {:?}", started.elapsed());
    let t = admin_token(&app).await;
    let kinds = [
        ("first page", ""),
        ("username prefix", "?q=user0731"),
        ("email substring, many", "?q=corp.exam"),
        ("name substring", "?q=kowalski"),
        ("no match", "?q=nobody-here"),
        ("second page of a search", "?q=smith&after=user050000"),
    ];
    let mut all = Vec::new();
    for (kind, query) in kinds {
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            let at = Instant::now();
            let r = call(&app, Method::GET, &format!("/users{query}"), Some(&t), None).await;
            assert_eq!(r.status(), 200, "{kind}");
            let _ = r.bytes().await.unwrap();
            times.push(at.elapsed());
        }
        times.sort();
        println!(
            "{backend:?} {kind:<28} p50 {:>7.2} ms  p99 {:>7.2} ms",
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        );
        all.extend(times);
    }
    all.sort();
    let p99 = percentile(&all, 0.99);
    println!(
        "{backend:?} all searches: p99 {:.2} ms",
        p99.as_secs_f64() * 1e3
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?} ≥ 50 ms");
}
