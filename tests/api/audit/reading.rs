//! Reading the audit log over the admin API (filters, pages, 401/403), and the purge after
//! `audit.retention`.

use reqwest::Method;
use serde_json::Value;

use super::{dump, events};
use crate::admin_api::admin_token;
use crate::both_backends;
use crate::helpers::{spawn_app, Backend};
use sigil::storage::maintenance::{self, Horizon, Limits};

both_backends!(
    admin_api_audit_filters_pages_and_needs_the_admin_scope,
    events_older_than_the_retention_are_purged,
);

async fn admin_api_audit_filters_pages_and_needs_the_admin_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let get = |query: &str, token: Option<String>| {
        let url = app.url(&format!("/admin/api/audit{query}"));
        let http = app.http.clone();
        async move {
            let mut req = http.request(Method::GET, url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap()
        }
    };
    // 401 without a token, 403 with a token lacking the admin scope.
    let r = get("", None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (cid, csecret) = app.cc_client("svc");
    let t: Value = app
        .token_basic(&cid, &csecret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let r = get("", Some(t["access_token"].as_str().unwrap().into())).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );

    let token = admin_token(&app).await;
    for name in ["u1", "u2", "u3"] {
        app.add_user(name);
    }
    let r = app
        .http
        .post(app.url("/admin/api/users/u2/disable"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = |q: &'static str| {
        let token = token.clone();
        let get = &get;
        async move {
            let r = get(q, Some(token)).await;
            assert_eq!(r.status(), 200, "{q}");
            assert_eq!(r.headers()["cache-control"], "no-store");
            r.json::<Value>().await.unwrap()
        }
    };
    let everything = page("").await;
    let all = everything["events"].as_array().unwrap().clone();
    // client.added (svc, ops), user.created ×3, user.disabled.
    assert_eq!(all.len(), 6, "{everything}");
    assert_eq!(everything["next"], Value::Null, "one page holds them all");
    assert_eq!(all[0]["type"], "user.disabled");
    assert_eq!(all[0]["actor"], "ops");
    assert_eq!(all[0]["actor_kind"], "client");
    assert_eq!(all[0]["target"], "u2");
    assert_eq!(all[0]["client_address"], "127.0.0.1");

    // Pages of two: newest first, `next` leads on, the last page has none.
    let mut seen = Vec::new();
    let mut next = String::new();
    loop {
        let q = format!("?limit=2{next}");
        let p = {
            let r = get(&q, Some(token.clone())).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        };
        let events = p["events"].as_array().unwrap();
        seen.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        match p["next"].as_i64() {
            Some(before) => next = format!("&before={before}"),
            None => break,
        }
        assert!(seen.len() <= all.len(), "paging never ends");
    }
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(seen, ids);

    let created = page("?type=user.created").await;
    assert_eq!(created["events"].as_array().unwrap().len(), 3);
    let by_ops = page("?actor=ops").await;
    assert_eq!(by_ops["events"].as_array().unwrap().len(), 1);
    let on_u3 = page("?target=u3").await;
    assert_eq!(on_u3["events"][0]["type"], "user.created");
    assert_eq!(on_u3["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        page("?since=1h").await["events"].as_array().unwrap().len(),
        6
    );
    assert!(page("?until=1h").await["events"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(page("?since=4102444800").await["events"]
        .as_array()
        .unwrap()
        .is_empty());
    // Bad filters: 400 invalid_request in words.
    for bad in [
        "?type=nope",
        "?limit=0",
        "?limit=x",
        "?since=later",
        "?before=0",
        "?colour=red",
    ] {
        let r = get(bad, Some(token.clone())).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
}

async fn events_older_than_the_retention_are_purged(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    app.add_user("bob");
    assert_eq!(events(&app).await.len(), 2);
    let state = app.state.clone();
    let retention = state.settings.audit.retention.as_secs() as i64;
    assert_eq!(retention, 90 * 86_400, "the default is 90 days");
    let purge = move |state: &sigil::state::AppState| {
        let now = state.clock.now();
        maintenance::run(
            &state.db,
            || Horizon {
                now,
                idle_timeout: state.settings.sessions.idle_timeout.as_secs() as i64,
                audit_retention: retention,
            },
            Limits {
                batch_size: 1,
                max_batches: 10,
            },
            |_| true,
        )
    };
    // A day short of the retention: kept.
    state.clock.advance(retention - 86_400);
    let s = state.clone();
    tokio::task::spawn_blocking(move || purge(&s))
        .await
        .unwrap();
    assert_eq!(events(&app).await.len(), 2);
    // A fresh event now, then past the retention of the first two.
    let token = admin_token(&app).await;
    let r = app
        .http
        .post(app.url("/admin/api/users/alice/unlock"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    state.clock.advance(2 * 86_400);
    let s = state.clone();
    let outcomes = tokio::task::spawn_blocking(move || purge(&s))
        .await
        .unwrap();
    let audit = outcomes.iter().find(|o| o.table == "audit_events").unwrap();
    // alice, bob and the admin client (the CLI dates its events by the system clock, days
    // before the server's moved one), in batches of one.
    assert_eq!(*audit.result.as_ref().unwrap(), 3);
    let left = events(&app).await;
    let kinds: Vec<_> = left.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["user.unlocked"], "{}", dump(&left));
}
