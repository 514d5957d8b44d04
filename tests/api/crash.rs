//! Issue 10 item 11, SQLite: a `kill -9` while revocations are being written loses nothing that
//! was answered 200. The real binary serves a SQLite file; a few hundred access tokens are
//! revoked concurrently and the process is killed (SIGKILL) mid-way; restarted on the same
//! file, every token whose revocation was answered 200 is inactive at introspection, SQLite's
//! integrity check passes, and the server serves. Several rounds on the same file.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::{Connection, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};

use sigil::config::Settings;

use crate::helpers::{test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{migrate, register_client, settings_on, ServerProcess};

const TOKENS: usize = 300;
/// Revocations answered 200 before the kill.
const KILL_AFTER: usize = 100;
const CONCURRENCY: usize = 16;

struct Client {
    http: reqwest::Client,
    id: String,
    secret: String,
}

impl Client {
    async fn post(
        &self,
        base: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{base}{path}"))
            .basic_auth(&self.id, Some(&self.secret))
            .form(form)
            .send()
            .await
    }

    async fn access_token(&self, base: &str) -> String {
        let r = self
            .post(base, "/token", &[("grant_type", "client_credentials")])
            .await
            .expect("token request");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn active(&self, base: &str, token: &str) -> bool {
        let r = self
            .post(base, "/introspect", &[("token", token)])
            .await
            .expect("introspection");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["active"].as_bool().expect("active")
    }
}

#[derive(QueryableByName)]
struct IntegrityCheck {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

fn integrity_check(settings: &Settings) -> Vec<String> {
    let url = settings
        .database_url
        .expose()
        .trim_start_matches("sqlite://");
    let mut conn = diesel::SqliteConnection::establish(url).expect("open the SQLite file");
    diesel::sql_query("PRAGMA integrity_check")
        .load::<IntegrityCheck>(&mut conn)
        .expect("PRAGMA integrity_check")
        .into_iter()
        .map(|r| r.integrity_check)
        .collect()
}

/// Runs `work` over `items` with `CONCURRENCY` tasks.
async fn concurrently<T, R, F, Fut>(items: Vec<T>, work: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<R>> + Send,
{
    let queue = Arc::new(Mutex::new(VecDeque::from(items)));
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (queue, work) = (queue.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some(item) = next else { break };
                if let Some(r) = work(item).await {
                    done.push(r);
                }
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_during_revocations_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = test_settings(Backend::Sqlite, dir.path());
    let settings = settings_on(settings, free_port());
    migrate(&settings, dir.path());
    let registered = register_client(
        &settings,
        dir.path(),
        "svc",
        &json!({"grant_types": ["client_credentials"], "scope": "api:read"}),
    );
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        id: "svc".into(),
        secret: registered["client_secret"].as_str().unwrap().into(),
    });

    for round in 0..3 {
        let mut server = ServerProcess::start(&settings, dir.path(), &[]).await;
        let base = server.address.clone();
        let tokens = {
            let (client, base) = (client.clone(), base.clone());
            concurrently((0..TOKENS).collect(), move |_: usize| {
                let (client, base) = (client.clone(), base.clone());
                async move { Some(client.access_token(&base).await) }
            })
            .await
        };
        assert_eq!(tokens.len(), TOKENS);
        // A few are never revoked: they must still be live after the restart.
        let (kept, tokens) = tokens.split_at(10);
        let (kept, tokens) = (kept.to_vec(), tokens.to_vec());

        // Revocations, many at once, until the process is killed.
        let answered = Arc::new(AtomicUsize::new(0));
        let revoking = {
            let (client, answered, base) = (client.clone(), answered.clone(), base.clone());
            tokio::spawn(concurrently(tokens.clone(), move |token: String| {
                let (client, answered, base) = (client.clone(), answered.clone(), base.clone());
                async move {
                    let r = client
                        .post(&base, "/revoke", &[("token", &token)])
                        .await
                        .ok()?;
                    (r.status() == 200).then(|| {
                        answered.fetch_add(1, Ordering::SeqCst);
                        token
                    })
                }
            }))
        };
        while answered.load(Ordering::SeqCst) < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill();
        let revoked = revoking.await.unwrap();
        assert!(
            revoked.len() >= KILL_AFTER && revoked.len() < tokens.len(),
            "round {round}: the kill came mid-way ({} of {} answered 200)",
            revoked.len(),
            tokens.len()
        );

        assert_eq!(integrity_check(&settings), ["ok"], "round {round}");

        let server = ServerProcess::start(&settings, dir.path(), &[]).await;
        let base = server.address.clone();
        let still_active = {
            let (client, base) = (client.clone(), base.clone());
            concurrently(revoked.clone(), move |token: String| {
                let (client, base) = (client.clone(), base.clone());
                async move { client.active(&base, &token).await.then_some(token) }
            })
            .await
        };
        assert!(
            still_active.is_empty(),
            "round {round}: {} of {} revocations answered 200 were lost",
            still_active.len(),
            revoked.len()
        );
        for token in &kept {
            assert!(
                client.active(&base, token).await,
                "round {round}: a kept token"
            );
        }
        // And the server serves: a new token, live at introspection.
        let fresh = client.access_token(&base).await;
        assert!(client.active(&base, &fresh).await, "round {round}");
    }
}
