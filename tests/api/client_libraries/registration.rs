//! openid-client registers a client at `/register` (RFC 7591) with an initial access token from
//! Sigil (`registration.mode = token`), then signs in with it: the browser follows the URL the
//! library built, and the library redeems the code (client_secret_post with the issued secret)
//! and validates the ID token.

use serde_json::json;

use super::node::Script;
use crate::both_backends;
use crate::flow::{location, Browser, REDIRECT};
use crate::helpers::{spawn_app_with, Backend};
use sigil::admin::registration::issue_initial_token;
use sigil::audit::By;
use sigil::config::RegistrationMode;

both_backends!(openid_client_registers_dynamically_and_signs_in);

async fn openid_client_registers_dynamically_and_signs_in(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.registration.mode = RegistrationMode::Token).await;
    let alice = app.add_user("alice");
    let mut rp = Script::start("registration", &app.issuer());

    rp.expect("token").await;
    let now = app.state.clock.now();
    let issued = app
        .state
        .db
        .with_conn(|c| issue_initial_token(c, 300, &By::cli(), now))
        .unwrap();
    rp.reply(json!({"initial_access_token": issued["initial_access_token"]}))
        .await;

    let step = rp.expect("authorize").await;
    let id = step["client_id"].as_str().unwrap().to_string();
    let browser = Browser::new();
    let r = browser.get(step["url"].as_str().unwrap()).await;
    let r = app.drive(&browser, r, "alice").await;
    let callback = location(&r);
    assert!(callback.starts_with(REDIRECT), "{callback}");
    rp.reply(json!({"callback": callback})).await;

    let result = rp.finish().await;
    assert_eq!(result["client_id"], id);
    assert_eq!(
        result["registration_client_uri"],
        format!("{}/register/{id}", app.issuer())
    );
    assert_eq!(result["has_registration_access_token"], true);
    assert_eq!(result["has_client_secret"], true);
    assert_eq!(result["claims"]["sub"], alice["id"], "{result}");
    assert_eq!(result["claims"]["aud"], id.as_str(), "{result}");
    assert_eq!(result["claims"]["email"], "alice@example.com");
    assert_eq!(
        result["token_type"].as_str().unwrap().to_lowercase(),
        "bearer"
    );
}
