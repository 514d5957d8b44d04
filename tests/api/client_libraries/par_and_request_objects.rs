//! openid-client builds pushed (RFC 9126) and signed (RFC 9101) authorization requests; the
//! browser signs in with the URL it built; it redeems the code and validates the ID token.

use serde_json::json;

use super::node::Script;
use crate::both_backends;
use crate::flow::{location, query, Browser, REDIRECT};
use crate::helpers::{spawn_app, Backend};

both_backends!(openid_client_pushes_and_signs_authorization_requests);

async fn openid_client_pushes_and_signs_authorization_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.add_user("alice");
    let mut rp = Script::start("par_and_request_objects", &app.issuer());

    let step = rp.expect("register").await;
    let (id, secret) = app.web_client(
        "openid-client",
        json!({"jwks": step["jwks"], "request_object_signing_alg": "ES256"}),
    );
    rp.reply(json!({"client_id": id, "client_secret": secret}))
        .await;

    for mode in ["par", "request", "par+request"] {
        let step = rp.expect("authorize").await;
        assert_eq!(step["mode"], mode);
        let url = step["url"].as_str().unwrap();
        let params = query(url);
        // What the browser carries: a pushed request is only its reference, a signed one the
        // object, never the parameters in the clear.
        assert_eq!(params["client_id"], id, "{url}");
        assert_eq!(
            params.contains_key("request_uri"),
            mode.starts_with("par"),
            "{url}"
        );
        assert_eq!(params.contains_key("request"), mode == "request", "{url}");
        assert!(!params.contains_key("redirect_uri"), "{url}");
        let browser = Browser::new();
        let r = browser.get(url).await;
        let r = app.drive(&browser, r, "alice").await;
        let callback = location(&r);
        assert!(callback.starts_with(REDIRECT), "{mode}: {callback}");
        rp.reply(json!({"callback": callback})).await;
    }

    let results = rp.finish().await;
    for mode in ["par", "request", "par+request"] {
        let r = &results[mode];
        assert_eq!(r["claims"]["sub"], alice["id"], "{mode}: {r}");
        assert_eq!(r["claims"]["aud"], id, "{mode}: {r}");
        assert_eq!(r["claims"]["email"], "alice@example.com", "{mode}: {r}");
        assert_eq!(r["token_type"].as_str().unwrap().to_lowercase(), "bearer");
        let mut scope: Vec<&str> = r["scope"].as_str().unwrap().split(" ").collect();
        scope.sort();
        assert_eq!(scope, ["email", "openid"], "{mode}: {r}");
    }
}
