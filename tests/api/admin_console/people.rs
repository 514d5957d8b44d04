//! The console's users, groups and sessions: each change's effect and its audit event with the
//! admin as actor.

use serde_json::{json, Value};

use super::{assert_done, page, post, setup, signed_in, ADMIN};
use crate::audit::{assert_no_secret, events, find};
use crate::both_backends;
use crate::flow::{hidden, location, Browser};
use crate::helpers::{Backend, TestApp};
use crate::logout::{sign_in, signed_in as rp_signed_in};
use sigil::storage::audit::EventRow;

both_backends!(
    users_are_searched_created_with_a_link_shown_once_and_changed,
    a_locked_user_is_unlocked_and_second_factors_are_reset,
    groups_are_created_given_members_renamed_and_removed,
    a_session_is_ended_from_the_sessions_page_and_its_app_signed_out,
);

fn show(app: &TestApp, username: &str) -> Value {
    let out = app.sigil(&["user", "show", username], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn by_admin<'a>(all: &'a [EventRow], kind: &str, target: &str) -> &'a EventRow {
    let e = find(all, kind);
    assert_eq!(e.actor_name.as_deref(), Some(ADMIN), "{e:?}");
    assert_eq!(e.target.as_deref(), Some(target), "{e:?}");
    e
}

fn user_page(name: &str) -> String {
    format!("/admin/users/view?username={name}")
}

async fn users_are_searched_created_with_a_link_shown_once_and_changed(backend: Backend) {
    let (app, totp) = setup(backend).await;
    app.add_user("alice");
    app.add_user("bob");
    let (b, _) = signed_in(&app, &totp).await;
    // Everyone `add_user` makes is called "Alice Liddell": bob is found by his name.
    let found = page(&app, &b, "/admin/users?q=bob").await;
    assert!(
        found.contains(">bob</a>") && !found.contains(">alice</a>"),
        "{found}"
    );
    // Creation: no password, a link shown once that lets the user choose one.
    let html = page(&app, &b, "/admin/users").await;
    let r = post(
        &app,
        &b,
        "/admin/users",
        &html,
        &[
            ("username", "carol"),
            ("email", "carol@example.com"),
            ("name", "Carol"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let shown = r.text().await.unwrap();
    let marker = r#"id="password-link">"#;
    let start = shown.find(marker).expect("the link") + marker.len();
    let link = shown[start..start + shown[start..].find('<').unwrap()].replace("&#x3D;", "=");
    assert!(
        link.starts_with(&format!("{}/password/set?token=", app.issuer())),
        "{link}"
    );
    assert_eq!(show(&app, "carol")["name"], "Carol");
    let later = page(&app, &b, &user_page("carol")).await;
    assert!(later.contains("a password-set link is waiting"));
    assert!(!later.contains(&link), "the link is shown once");
    let token = link.split("token=").nth(1).unwrap().to_string();
    // The link sets her password.
    let set = Browser::new();
    let form_html = set.get(&link).await.text().await.unwrap();
    let r = set
        .post_form(
            &app.url("/password/set"),
            &[
                ("csrf_token", &hidden(&form_html, "csrf_token")),
                ("token", &token),
                ("password", "carols own passphrase"),
                ("password_confirm", "carols own passphrase"),
            ],
        )
        .await;
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let all = events(&app).await;
    by_admin(&all, "user.created", "carol");
    by_admin(&all, "user.password_link_issued", "carol");
    assert_no_secret(&all, &[&token]);
    // A taken name and a bad one are refused in words.
    for (name, status) in [("carol", 409), ("has space", 400)] {
        let r = post(&app, &b, "/admin/users", &html, &[("username", name)]).await;
        assert_eq!(r.status(), status, "{name}");
        assert!(r.text().await.unwrap().contains("role=\"alert\""));
    }
    // The profile: name, admin flag, claims (a claim left out is removed).
    let r = post(
        &app,
        &b,
        "/admin/users/update",
        &later,
        &[
            ("username", "carol"),
            ("email", "carol@example.org"),
            ("email_verified", "yes"),
            ("name", "Carol C."),
            ("claims", r#"{"locale": "fr-FR"}"#),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let carol = show(&app, "carol");
    assert_eq!(
        (
            carol["name"].as_str(),
            carol["email"].as_str(),
            carol["locale"].as_str()
        ),
        (Some("Carol C."), Some("carol@example.org"), Some("fr-FR"))
    );
    let r = post(
        &app,
        &b,
        "/admin/users/update",
        &later,
        &[("username", "carol"), ("claims", "[1]")],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(show(&app, "carol")["locale"], "fr-FR", "nothing changed");
    by_admin(&events(&app).await, "user.updated", "carol");
    // Disable, enable, log out everywhere, remove: each with its event.
    for (action, done, kind) in [
        ("disable", "user-disabled", "user.disabled"),
        ("enable", "user-enabled", "user.enabled"),
        (
            "logout-everywhere",
            "user-logged-out",
            "user.logged_out_everywhere",
        ),
    ] {
        let r = post(
            &app,
            &b,
            &format!("/admin/users/{action}"),
            &later,
            &[("username", "bob")],
        )
        .await;
        assert_done(&r, "/admin/users/view", done);
        by_admin(&events(&app).await, kind, "bob");
    }
    assert_eq!(show(&app, "bob")["disabled"], false);
    assert!(show(&app, "bob")["tokens_valid_after"].as_i64().unwrap() > 0);
    let r = post(
        &app,
        &b,
        "/admin/users/disable",
        &later,
        &[("username", "bob")],
    )
    .await;
    assert_done(&r, "/admin/users/view", "user-disabled");
    assert_eq!(show(&app, "bob")["disabled"], true);
    let r = post(
        &app,
        &b,
        "/admin/users/remove",
        &later,
        &[("username", "bob")],
    )
    .await;
    assert_done(&r, "/admin/users", "user-removed");
    assert!(!app.sigil(&["user", "show", "bob"], None).status.success());
    by_admin(&events(&app).await, "user.removed", "bob");
    // An admin cannot lock themselves out; an unknown user is 404.
    for action in ["disable", "remove"] {
        let r = post(
            &app,
            &b,
            &format!("/admin/users/{action}"),
            &later,
            &[("username", ADMIN)],
        )
        .await;
        assert_eq!(r.status(), 400, "{action}");
    }
    let r = post(
        &app,
        &b,
        "/admin/users/update",
        &later,
        &[("username", ADMIN), ("claims", "{}")],
    )
    .await;
    assert_eq!(r.status(), 400, "dropping one's own admin flag");
    assert_eq!(show(&app, ADMIN)["admin"], true);
    assert_eq!(show(&app, ADMIN)["disabled"], false);
    let r = post(
        &app,
        &b,
        "/admin/users/enable",
        &later,
        &[("username", "nobody")],
    )
    .await;
    assert_eq!(r.status(), 404);
}

async fn a_locked_user_is_unlocked_and_second_factors_are_reset(backend: Backend) {
    let (app, totp) = setup(backend).await;
    app.add_user("alice");
    app.add_totp("alice");
    let (id, _) = app.web_client("rp", json!({}));
    // Signed in to the console first: the lockout below also counts this address's failures.
    let (b, _) = signed_in(&app, &totp).await;
    for _ in 0..5 {
        let other = Browser::new();
        let r = app.start(&other, &id, &[]).await;
        app.submit_login(&other, &location(&r), "alice", "wrong password")
            .await;
    }
    assert!(
        show(&app, "alice")["sign_in"]["locked_until"].is_i64(),
        "locked"
    );
    let html = page(&app, &b, &user_page("alice")).await;
    assert!(html.contains("Locked until"), "{html}");
    let r = post(
        &app,
        &b,
        "/admin/users/unlock",
        &html,
        &[("username", "alice")],
    )
    .await;
    assert_done(&r, "/admin/users/view", "user-unlocked");
    assert!(show(&app, "alice")["sign_in"]["locked_until"].is_null());
    by_admin(&events(&app).await, "user.unlocked", "alice");
    assert!(page(&app, &b, &user_page("alice"))
        .await
        .contains("not locked"));
    let r = post(
        &app,
        &b,
        "/admin/users/reset-factors",
        &html,
        &[("username", "alice")],
    )
    .await;
    assert_done(&r, "/admin/users/view", "user-factors-reset");
    assert_eq!(show(&app, "alice")["second_factors"]["totp"], false);
    by_admin(&events(&app).await, "user.factors_reset", "alice");
}

async fn groups_are_created_given_members_renamed_and_removed(backend: Backend) {
    let (app, totp) = setup(backend).await;
    app.add_user("alice");
    let (b, _) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/groups").await;
    let r = post(&app, &b, "/admin/groups", &html, &[("name", "engineering")]).await;
    assert_done(&r, "/admin/groups/view", "group-added");
    let r = post(&app, &b, "/admin/groups", &html, &[("name", "-bad")]).await;
    assert_eq!(r.status(), 400);
    let r = post(&app, &b, "/admin/groups", &html, &[("name", "engineering")]).await;
    assert_eq!(r.status(), 409);
    let group = page(&app, &b, "/admin/groups/view?name=engineering").await;
    let r = post(
        &app,
        &b,
        "/admin/groups/add-member",
        &group,
        &[("name", "engineering"), ("username", "alice")],
    )
    .await;
    assert_done(&r, "/admin/groups/view", "member-added");
    assert_eq!(show(&app, "alice")["groups"], json!(["engineering"]));
    let r = post(
        &app,
        &b,
        "/admin/groups/add-member",
        &group,
        &[("name", "engineering"), ("username", "nobody")],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post(
        &app,
        &b,
        "/admin/groups/rename",
        &group,
        &[("name", "engineering"), ("new_name", "eng")],
    )
    .await;
    assert_done(&r, "/admin/groups/view", "group-renamed");
    assert_eq!(show(&app, "alice")["groups"], json!(["eng"]));
    assert!(page(&app, &b, &user_page("alice"))
        .await
        .contains(">eng</a>"));
    let r = post(
        &app,
        &b,
        "/admin/groups/remove-member",
        &group,
        &[("name", "eng"), ("username", "alice")],
    )
    .await;
    assert_done(&r, "/admin/groups/view", "member-removed");
    assert_eq!(show(&app, "alice")["groups"], json!([]));
    let r = post(&app, &b, "/admin/groups/remove", &group, &[("name", "eng")]).await;
    assert_done(&r, "/admin/groups", "group-removed");
    assert!(!page(&app, &b, "/admin/groups").await.contains(">eng</a>"));
    let all = events(&app).await;
    by_admin(&all, "group.added", "engineering");
    for kind in [
        "group.member_added",
        "group.renamed",
        "group.member_removed",
        "group.removed",
    ] {
        let e = find(&all, kind);
        assert_eq!(e.actor_name.as_deref(), Some(ADMIN), "{kind}");
    }
}

async fn a_session_is_ended_from_the_sessions_page_and_its_app_signed_out(backend: Backend) {
    let (app, totp) = setup(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("rp", json!({}));
    let phone = Browser::new();
    sign_in(&app, &phone, &id, &secret, "alice", &[]).await;
    assert!(rp_signed_in(&app, &phone, &id).await);
    let (b, _) = signed_in(&app, &totp).await;
    let all = page(&app, &b, "/admin/sessions").await;
    assert!(
        all.contains(">alice</a>") && all.contains(">root</a>"),
        "{all}"
    );
    let hers = page(&app, &b, "/admin/sessions?username=alice").await;
    assert!(!hers.contains(">root</a>"), "{hers}");
    let sid = hidden(&hers, "sid");
    let r = post(&app, &b, "/admin/sessions/end", &hers, &[("sid", &sid)]).await;
    assert_done(&r, "/admin/sessions", "session-ended");
    assert!(!rp_signed_in(&app, &phone, &id).await, "signed out");
    by_admin(&events(&app).await, "session.ended", &sid);
    let r = post(&app, &b, "/admin/sessions/end", &hers, &[("sid", &sid)]).await;
    assert_done(&r, "/admin/sessions", "session-gone");
    let r = b.get(&app.url("/admin/sessions?username=nobody")).await;
    assert_eq!(r.status(), 404);
}
