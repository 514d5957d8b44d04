//! The console's changes: each one's effect, its confirmation, and its audit event with the
//! admin as actor; refusals in plain words that change nothing.

use serde_json::{json, Value};

use super::{assert_done, page, post, resources, setup, signed_in, ADMIN};
use crate::audit::{assert_no_secret, events, find};
use crate::both_backends;
use crate::flow::Browser;
use crate::helpers::{Backend, TestApp};
use sigil::storage::audit::EventRow;

both_backends!(
    clients_are_registered_from_the_form_or_json_with_the_secret_shown_once_and_removed,
    keys_rotation_is_refused_while_too_early_then_forced_deliberately_and_retiring_works,
    resource_servers_are_registered_refused_when_taken_edited_and_removed,
    the_audit_log_filters_by_type_actor_and_time_and_says_what_is_wrong_with_a_filter,
);

fn client_ids(app: &TestApp) -> Vec<String> {
    let out = app.sigil(&["client", "list", "--json"], None);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_string())
        .collect()
}

/// The text of the element with id `id` in `html` (a `<code id=…>` or similar).
fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!(r#"id="{id}">"#))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start + id.len() + 6..];
    rest[..rest.find('<').unwrap()].to_string()
}

fn by_admin(e: &EventRow) {
    assert_eq!(e.actor_name.as_deref(), Some(ADMIN), "{e:?}");
    assert_eq!(e.actor_kind, "user");
    assert!(e.client_address.is_some(), "{e:?}");
}

async fn clients_are_registered_from_the_form_or_json_with_the_secret_shown_once_and_removed(
    backend: Backend,
) {
    let (app, totp) = setup(backend).await;
    let (b, _) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/clients").await;
    // The form's common fields.
    let r = post(
        &app,
        &b,
        "/admin/clients",
        &html,
        &[
            ("client_id", "shop"),
            ("client_name", "The Shop"),
            ("redirect_uris", "https://shop.example/callback\r\n"),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("scope", "openid email"),
            ("refresh_token", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let shown = r.text().await.unwrap();
    let secret = text_of(&shown, "client-secret");
    assert!(secret.len() >= 43, "{secret}");
    assert!(shown.contains("shown only this once"), "{shown}");
    let out = app.sigil(&["client", "show", "shop"], None);
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(client["client_name"], "The Shop");
    assert_eq!(
        client["redirect_uris"],
        json!(["https://shop.example/callback"])
    );
    assert_eq!(
        client["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    // Its page later shows the metadata, never the secret.
    let later = page(&app, &b, "/admin/clients/view?client_id=shop").await;
    assert!(later.contains("https://shop.example/callback"));
    assert!(!later.contains(&secret), "the secret is shown once only");
    // Pasted RFC 7591 JSON: a service whose secret works at the token endpoint.
    let metadata = json!({"grant_types": ["client_credentials"], "scope": "reports"}).to_string();
    let r = post(
        &app,
        &b,
        "/admin/clients",
        &html,
        &[("client_id", "svc"), ("metadata", &metadata)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let svc_secret = text_of(&r.text().await.unwrap(), "client-secret");
    let token = app
        .token_basic("svc", &svc_secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status(), 200, "the shown secret is the client's");
    // Refusals in words, nothing registered: bad metadata, a taken id, not JSON.
    for (form, status, words) in [
        (
            vec![
                ("client_id", "bad"),
                ("metadata", r#"{"redirect_uris": ["not a uri"]}"#),
            ],
            400,
            "was not registered",
        ),
        (
            vec![
                ("client_id", "shop"),
                ("metadata", r#"{"redirect_uris": ["https://x.example/cb"]}"#),
            ],
            409,
            "already",
        ),
        (
            vec![("client_id", "bad2"), ("metadata", "{nope")],
            400,
            "not JSON",
        ),
    ] {
        let r = post(&app, &b, "/admin/clients", &html, &form).await;
        assert_eq!(r.status(), status, "{form:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains(words), "{form:?}: {body}");
        assert!(body.contains("role=\"alert\""));
    }
    let ids = client_ids(&app);
    assert!(ids.contains(&"shop".to_string()) && !ids.iter().any(|i| i.starts_with("bad")));
    let all = events(&app).await;
    let added = find(&all, "client.added");
    by_admin(added);
    assert_eq!(added.target.as_deref(), Some("svc"));
    assert_no_secret(&all, &[&secret, &svc_secret]);
    // Removal, from the client's page.
    let r = post(
        &app,
        &b,
        "/admin/clients/remove",
        &later,
        &[("client_id", "shop")],
    )
    .await;
    assert_done(&r, "/admin/clients", "client-removed");
    assert!(!client_ids(&app).contains(&"shop".to_string()));
    let all = events(&app).await;
    let removed = find(&all, "client.removed");
    by_admin(removed);
    assert_eq!(removed.target.as_deref(), Some("shop"));
    // Gone, and Sigil's own clients cannot be removed here.
    let r = post(
        &app,
        &b,
        "/admin/clients/remove",
        &later,
        &[("client_id", "shop")],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post(
        &app,
        &b,
        "/admin/clients/remove",
        &later,
        &[("client_id", "sigil-admin")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(client_ids(&app).contains(&"sigil-admin".to_string()));
}

/// Each algorithm's keys by state, from `sigil keys list --json`.
fn key_states(app: &TestApp) -> Vec<(String, String)> {
    let out = app.sigil(&["keys", "list", "--json"], None);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut states: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().into(),
                k["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    states.sort();
    states
}

async fn keys_rotation_is_refused_while_too_early_then_forced_deliberately_and_retiring_works(
    backend: Backend,
) {
    let (app, totp) = setup(backend).await;
    let (b, _) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/keys").await;
    assert!(
        html.contains("2 × <code>keys.jwks_max_age</code>"),
        "the rule is shown"
    );
    assert!(html.contains("scheduled rotation due"));
    let before = key_states(&app);
    // The next keys were made at start: too early.
    let r = post(&app, &b, "/admin/keys/rotate", &html, &[("alg", "ES256")]).await;
    assert_eq!(r.status(), 409);
    let refused = r.text().await.unwrap();
    assert!(
        refused.contains("not been published long enough"),
        "{refused}"
    );
    assert!(refused.contains(r#"id="force-rotate""#), "force is offered");
    assert_eq!(key_states(&app), before, "nothing rotated");
    assert!(events(&app)
        .await
        .iter()
        .all(|e| e.event_type != "keys.rotated"));
    // The deliberate second step: the force form.
    let r = post(
        &app,
        &b,
        "/admin/keys/rotate",
        &refused,
        &[("alg", "ES256"), ("force", "yes")],
    )
    .await;
    assert_done(&r, "/admin/keys", "keys-rotated");
    let after = key_states(&app);
    assert_ne!(after, before);
    let all = events(&app).await;
    let rotated = find(&all, "keys.rotated");
    by_admin(rotated);
    let details: Value = serde_json::from_str(&rotated.details).unwrap();
    assert_eq!(
        (details["alg"].as_str(), details["forced"].as_bool()),
        (Some("ES256"), Some(true))
    );
    // A retiring key is retired from its row's form; an unknown one is refused in words.
    let retiring = after
        .iter()
        .find(|(_, s)| s == "retiring")
        .unwrap()
        .0
        .clone();
    let html = page(&app, &b, "/admin/keys").await;
    let r = post(&app, &b, "/admin/keys/retire", &html, &[("kid", &retiring)]).await;
    assert_done(&r, "/admin/keys", "key-retired");
    assert!(key_states(&app).contains(&(retiring.clone(), "retired".into())));
    by_admin(find(&events(&app).await, "keys.retired"));
    let r = post(
        &app,
        &b,
        "/admin/keys/retire",
        &html,
        &[("kid", "no-such-key")],
    )
    .await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("No key"));
    // An active key cannot be retired.
    let active = key_states(&app)
        .into_iter()
        .find(|(_, s)| s == "active")
        .unwrap()
        .0;
    let r = post(&app, &b, "/admin/keys/retire", &html, &[("kid", &active)]).await;
    assert_eq!(r.status(), 409);
}

async fn resource_servers_are_registered_refused_when_taken_edited_and_removed(backend: Backend) {
    let (app, totp) = setup(backend).await;
    let (b, _) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/resources").await;
    let form = [
        ("resource", "https://api.example/"),
        ("scope", "orders:read orders:write"),
    ];
    let r = post(&app, &b, "/admin/resources", &html, &form).await;
    assert_done(&r, "/admin/resources", "resource-added");
    let shown = page(&app, &b, "/admin/resources?done=resource-added").await;
    assert!(shown.contains("The resource server was registered."));
    assert!(shown.contains("</code></td><td>orders:read orders:write</td>"));
    let r = post(&app, &b, "/admin/resources", &html, &form).await;
    assert_eq!(r.status(), 409, "already registered");
    let r = post(
        &app,
        &b,
        "/admin/resources",
        &html,
        &[("resource", "relative/path"), ("scope", "a")],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("was not registered"));
    assert_eq!(resources(&app).await, ["https://api.example/"]);
    let all = events(&app).await;
    let added = find(&all, "resource.added");
    by_admin(added);
    assert_eq!(added.target.as_deref(), Some("https://api.example/"));

    // Edited as JSON: the scope changes; a new URI or bad JSON is refused and changes nothing.
    let edit =
        |metadata: &'static str| [("resource", "https://api.example/"), ("metadata", metadata)];
    for (metadata, why) in [
        (
            r#"{"resource": "https://other.example/", "scope": "x"}"#,
            "another URI",
        ),
        ("not json", "not JSON"),
    ] {
        let r = post(&app, &b, "/admin/resources/update", &shown, &edit(metadata)).await;
        assert_eq!(r.status(), 400, "{why}");
        assert!(r.text().await.unwrap().contains("was not changed"), "{why}");
    }
    let r = post(
        &app,
        &b,
        "/admin/resources/update",
        &shown,
        &edit(r#"{"resource": "https://api.example/", "scope": "orders:read", "access_token_ttl": "10m"}"#),
    )
    .await;
    assert_done(&r, "/admin/resources", "resource-updated");
    let shown = page(&app, &b, "/admin/resources?done=resource-updated").await;
    assert!(shown.contains("The resource server was changed."));
    assert!(
        shown.contains("</code></td><td>orders:read</td>"),
        "the new scope shows: {shown}"
    );
    let out = app.sigil(&["resource", "list", "--json"], None);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["scope"], "orders:read");
    by_admin(find(&events(&app).await, "resource.updated"));

    let r = post(
        &app,
        &b,
        "/admin/resources/remove",
        &shown,
        &[("resource", "https://api.example/")],
    )
    .await;
    assert_done(&r, "/admin/resources", "resource-removed");
    assert!(resources(&app).await.is_empty());
    by_admin(find(&events(&app).await, "resource.removed"));
}

async fn the_audit_log_filters_by_type_actor_and_time_and_says_what_is_wrong_with_a_filter(
    backend: Backend,
) {
    let (app, totp) = setup(backend).await;
    app.add_user("alice");
    let (b, _): (Browser, String) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/audit").await;
    assert!(
        html.contains("user.created") && html.contains("console.signed_in"),
        "{html}"
    );
    let only = page(&app, &b, "/admin/audit?type=user.created").await;
    assert!(only.contains(r#"<td class="target">alice</td>"#), "{only}");
    assert!(!only.contains("<code>console.signed_in</code>"), "{only}");
    let by_root = page(&app, &b, &format!("/admin/audit?actor={ADMIN}")).await;
    assert!(by_root.contains("<code>console.signed_in</code>"));
    assert!(!by_root.contains("<code>user.created</code>"));
    let future = page(&app, &b, "/admin/audit?since=2999-01-01T00:00:00Z").await;
    assert!(future.contains("No events."), "{future}");
    // The selected type stays selected.
    assert!(only.contains(r#"value="user.created" selected"#), "{only}");
    for bad in [
        "/admin/audit?type=user.nope",
        "/admin/audit?since=soon",
        "/admin/audit?what=1",
    ] {
        let r = b.get(&app.url(bad)).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.text().await.unwrap().contains("role=\"alert\""), "{bad}");
    }
}
