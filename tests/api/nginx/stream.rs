//! Token requests through nginx from a few workers at once, each recorded with the moment it
//! started and its outcome, to tell requests in flight at a node's death from later ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::form_encode;

/// When a request started, and its status or error.
pub type Record = (Instant, Result<u16, String>);

/// Client-credentials token requests through nginx from a few workers at once, each recorded
/// with the moment it started and its outcome.
pub struct Stream {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Stream {
    pub fn start(http: reqwest::Client, url: String, (id, secret): (&str, &str)) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..4)
            .map(|_| {
                let (http, url, stop, records) =
                    (http.clone(), url.clone(), stop.clone(), records.clone());
                let (id, secret) = (form_encode(id), form_encode(secret));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let outcome = http
                            .post(&url)
                            .basic_auth(&id, Some(&secret))
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                            .map_err(|e| format!("{e:?}"));
                        records.lock().unwrap().push((started, outcome));
                    }
                })
            })
            .collect();
        Self {
            stop,
            records,
            workers,
        }
    }

    /// Waits (at most 20 s) until `n` requests that started after `since` have ended.
    pub async fn wait_for(&self, n: usize, since: Instant) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = {
                let records = self.records.lock().unwrap();
                records.iter().filter(|(t, _)| *t >= since).count()
            };
            if done >= n {
                return;
            }
            assert!(Instant::now() < deadline, "the stream stalled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        Arc::try_unwrap(self.records).unwrap().into_inner().unwrap()
    }
}
