//! The admin API's sessions: live sessions listed (everyone's or one user's) and ended, after
//! which the browser must sign in again.

use reqwest::Method;
use serde_json::json;

use super::{admin_token, audited, call, json_of};
use crate::both_backends;
use crate::flow::{location, Browser};
use crate::helpers::{spawn_app, Backend};

both_backends!(admin_api_lists_and_ends_sessions);

async fn admin_api_lists_and_ends_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let t = admin_token(&app).await;
    let (id, _) = app.web_client("web", json!({}));
    let (earlier, later) = (Browser::new(), Browser::new());
    app.code_for(&earlier, &id, &[]).await;
    app.state.clock.advance(1);
    app.code_for(&later, &id, &[]).await;
    let page = json_of(
        call(&app, Method::GET, "/sessions", Some(&t), None).await,
        200,
    )
    .await;
    let sessions = page["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{page}");
    assert!(sessions.iter().all(|s| s["username"] == "alice"), "{page}");
    // Pages of one, newest first, with a cursor.
    let first = json_of(
        call(&app, Method::GET, "/sessions?limit=1", Some(&t), None).await,
        200,
    )
    .await;
    let next = first["next"].as_str().unwrap().to_string();
    let second = json_of(
        call(
            &app,
            Method::GET,
            &format!("/sessions?limit=1&before={next}"),
            Some(&t),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(second["sessions"].as_array().unwrap().len(), 1);
    assert!(second["next"].is_null());
    assert_ne!(first["sessions"][0]["sid"], second["sessions"][0]["sid"]);
    let mine = json_of(
        call(
            &app,
            Method::GET,
            "/sessions?username=alice",
            Some(&t),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(mine["sessions"].as_array().unwrap().len(), 2);
    for (query, status) in [
        ("?username=nobody", 404),
        ("?before=junk", 400),
        ("?limit=0", 400),
    ] {
        let r = call(
            &app,
            Method::GET,
            &format!("/sessions{query}"),
            Some(&t),
            None,
        )
        .await;
        assert_eq!(r.status(), status, "{query}");
    }
    // End the newest: the other stays; ending it again is a 404.
    let sid = first["sessions"][0]["sid"].as_str().unwrap().to_string();
    let r = call(
        &app,
        Method::DELETE,
        &format!("/sessions/{sid}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = call(
        &app,
        Method::DELETE,
        &format!("/sessions/{sid}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    let page = json_of(
        call(&app, Method::GET, "/sessions", Some(&t), None).await,
        200,
    )
    .await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    let event = audited(&app, &t, "session.ended", &sid).await;
    assert_eq!(event["details"]["username"], "alice");
    // The browser whose session ended must sign in again; the other still has single sign-on.
    let r = app.start(&later, &id, &[]).await;
    assert!(location(&r).contains("/login?"), "{}", location(&r));
    let r = app.start(&earlier, &id, &[]).await;
    assert!(!location(&r).contains("/login?"), "{}", location(&r));
}
