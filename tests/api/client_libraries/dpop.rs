//! openid-client with a DPoP key (RFC 9449): it redeems a public client's code, reads UserInfo
//! and refreshes, going through Sigil's `use_dpop_nonce` retry by itself; every token it gets is
//! bound to its key.

use serde_json::json;

use super::node::Script;
use crate::both_backends;
use crate::flow::{location, Browser, REDIRECT};
use crate::helpers::{jwt_parts, spawn_app, Backend};

both_backends!(openid_client_binds_its_tokens_with_dpop);

async fn openid_client_binds_its_tokens_with_dpop(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.add_user("alice");
    let mut rp = Script::start("dpop", &app.issuer());

    rp.expect("register").await;
    let (id, _) = app.web_client(
        "openid-client-dpop",
        json!({"token_endpoint_auth_method": "none", "dpop_bound_access_tokens": true}),
    );
    rp.reply(json!({"client_id": id})).await;

    let step = rp.expect("authorize").await;
    let browser = Browser::new();
    let r = browser.get(step["url"].as_str().unwrap()).await;
    let r = app.drive(&browser, r, "alice").await;
    let callback = location(&r);
    assert!(callback.starts_with(REDIRECT), "{callback}");
    rp.reply(json!({"callback": callback})).await;

    let result = rp.finish().await;
    assert_eq!(result["sub"], alice["id"], "{result}");
    // RFC 9449 §5, §6.1: DPoP tokens, bound to one key (the library's), before and after the
    // refresh.
    assert_eq!(
        result["token_type"].as_str().unwrap().to_lowercase(),
        "dpop"
    );
    let (_, claims) = jwt_parts(result["access_token"].as_str().unwrap());
    let jkt = claims["cnf"]["jkt"].as_str().expect("cnf.jkt");
    assert_eq!(jkt.len(), 43, "a SHA-256 thumbprint");
    let refreshed = &result["refreshed"];
    assert_eq!(
        refreshed["token_type"].as_str().unwrap().to_lowercase(),
        "dpop"
    );
    let (_, claims) = jwt_parts(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], jkt);
    // UserInfo took the bound tokens with the library's proofs.
    for answer in [&result["userinfo"], &result["userinfo_after_refresh"]] {
        assert_eq!(answer["sub"], alice["id"], "{result}");
        assert_eq!(answer["email"], "alice@example.com", "{result}");
    }
}
