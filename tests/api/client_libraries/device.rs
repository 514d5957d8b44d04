//! openid-client runs the device authorization grant (RFC 8628): it starts a device
//! authorization and polls; the browser enters the user code on /device, signs in and allows;
//! the library's poll then gets the tokens and validates the ID token.

use serde_json::json;

use super::node::Script;
use crate::both_backends;
use crate::device::{device_client, enter_code, sign_in_and_decide};
use crate::flow::Browser;
use crate::helpers::{spawn_app_with, Backend};

both_backends!(openid_client_runs_the_device_authorization_grant);

async fn openid_client_runs_the_device_authorization_grant(backend: Backend) {
    // The library waits the interval before each poll: 1 s keeps the test short.
    let app = spawn_app_with(backend, |s| {
        s.device.interval = sigil::config::DurationSetting::from_secs(1)
    })
    .await;
    let alice = app.add_user("alice");
    let mut rp = Script::start("device", &app.issuer());

    rp.expect("register").await;
    let (id, secret) = device_client(&app, "openid-client", json!({}));
    rp.reply(json!({"client_id": id, "client_secret": secret}))
        .await;

    let step = rp.expect("device").await;
    assert_eq!(step["verification_uri"], format!("{}/device", app.issuer()));
    assert_eq!(step["interval"], 1);
    let user_code = step["user_code"].as_str().unwrap();
    let browser = Browser::new();
    let r = enter_code(&app, &browser, user_code).await;
    assert_eq!(r.status(), 303);
    let r = sign_in_and_decide(&app, &browser, r, user_code, "allow").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Return to your device"));

    let result = rp.finish().await;
    assert_eq!(result["claims"]["sub"], alice["id"], "{result}");
    assert_eq!(result["claims"]["aud"], id, "{result}");
    assert_eq!(result["claims"]["email"], "alice@example.com", "{result}");
    assert_eq!(
        result["token_type"].as_str().unwrap().to_lowercase(),
        "bearer"
    );
    assert_eq!(result["refresh_token"], true, "{result}");
    let mut scope: Vec<&str> = result["scope"].as_str().unwrap().split(' ').collect();
    scope.sort();
    assert_eq!(scope, ["email", "offline_access", "openid"], "{result}");
}
