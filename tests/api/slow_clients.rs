//! Slow clients (issue 10 item 10): the request head must arrive within `http.header_timeout`
//! and the body within `http.request_timeout`; past either the answer is 408 and the
//! connection is closed, whether nothing more arrives or a byte now and then, on a new
//! connection or on one kept alive after an answer. Meanwhile everyone else is served. Short deadlines (1 s) here; the reads wait far longer, so that a
//! connection left open fails the test rather than slowing it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use sigil::config::DurationSetting;

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, TestApp};

both_backends!(
    a_body_that_never_arrives_is_answered_408_and_closed,
    a_trickled_body_is_cut_off_at_the_deadline,
    a_head_that_never_finishes_is_answered_408_and_closed,
    a_next_head_trickled_on_a_kept_alive_connection_is_cut_off,
    others_are_served_while_slow_clients_hang,
);

/// Longer than any deadline here by far: an answer that has not come by then never will.
const PATIENCE: Duration = Duration::from_secs(20);

async fn app_with_short_deadlines(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.http.header_timeout = DurationSetting(Duration::from_secs(1));
        s.http.request_timeout = DurationSetting(Duration::from_secs(1));
    })
    .await
}

fn addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

/// A head that announces `length` body bytes, and the first `sent` of them.
fn head_with_partial_body(path: &str, length: usize, sent: usize) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: sigil\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .into_bytes();
    bytes.extend(std::iter::repeat_n(b'a', sent));
    bytes
}

/// Everything the server sends until it closes the connection (a reset counts as closed).
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all)
        .await
        .expect("the server closed the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

async fn a_body_that_never_arrives_is_answered_408_and_closed(backend: Backend) {
    let app = app_with_short_deadlines(backend).await;
    // Every kind of handler that reads a body: client forms, page forms, the authorization
    // endpoint's POST.
    for path in [
        "/token",
        "/revoke",
        "/introspect",
        "/login",
        "/consent",
        "/authorize",
        "/logout",
    ] {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream
            .write_all(&head_with_partial_body(path, 100, 10))
            .await
            .unwrap();
        let answer = until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}: {answer}"
        );
    }
}

async fn a_trickled_body_is_cut_off_at_the_deadline(backend: Backend) {
    let app = app_with_short_deadlines(backend).await;
    let stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = head_with_partial_body("/token", 1000, 0);
    assert_trickle_cut_off(stream, &head, "a trickled body").await;
}

async fn a_head_that_never_finishes_is_answered_408_and_closed(backend: Backend) {
    let app = app_with_short_deadlines(backend).await;
    // Nothing after the first header line.
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream
        .write_all(b"POST /token HTTP/1.1\r\nHost: sigil\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A header trickled a byte at a time: the deadline is for the whole head.
    let stream = TcpStream::connect(addr(&app)).await.unwrap();
    assert_trickle_cut_off(stream, SLOW_HEAD, "a trickled head").await;
}

/// A head whose last header never ends.
const SLOW_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: sigil\r\nX-Slow: ";

/// Writes `start`, then a byte every 100 ms (1000 would take 100 s): the server must stop
/// taking them and close, answering 408 or nothing.
async fn assert_trickle_cut_off(mut stream: TcpStream, start: &[u8], what: &str) {
    stream.write_all(start).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for sent in 0..1000 {
            if writer.write_all(b"a").await.is_err() {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        1000
    });
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, reader.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{what}: the server did not close the connection"))
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{what}: {answer}"
    );
    let sent = trickle.await.unwrap();
    assert!(sent < 1000, "{what}: read to the end");
}

/// actix bounds only a connection's first head; after an answer on a kept-alive connection the
/// next head is bounded by the keep-alive wait (5 s) plus `http.header_timeout`.
async fn a_next_head_trickled_on_a_kept_alive_connection_is_cut_off(backend: Backend) {
    let app = app_with_short_deadlines(backend).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sigil\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&first).contains("\"ok\"}") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("the first answer")
            .unwrap();
        assert!(n > 0, "closed after the first answer");
        first.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));
    assert_trickle_cut_off(stream, SLOW_HEAD, "a trickled second head").await;
}

async fn others_are_served_while_slow_clients_hang(backend: Backend) {
    let app = app_with_short_deadlines(backend).await;
    let (id, secret) = app.cc_client("svc");
    for round in 0..3 {
        // 60 connections hang: half in their head, half in their body.
        let mut hanging = Vec::new();
        for i in 0..60 {
            let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
            let bytes = if i % 2 == 0 {
                b"POST /token HTTP/1.1\r\nHost: sigil\r\n".to_vec()
            } else {
                head_with_partial_body("/token", 100, 10)
            };
            stream.write_all(&bytes).await.unwrap();
            hanging.push(stream);
        }
        // Meanwhile others are answered.
        for _ in 0..10 {
            let r = app
                .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
                .await;
            assert_eq!(r.status(), 200, "round {round}");
        }
        let discovery = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(discovery.status(), 200, "round {round}");
        // And every hanging connection is answered 408 and closed.
        for stream in &mut hanging {
            let answer = until_closed(stream).await;
            assert!(
                answer.starts_with("HTTP/1.1 408"),
                "round {round}: {answer}"
            );
        }
    }
}
