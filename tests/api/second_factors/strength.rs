//! Authentication strength with TOTP: `acr_values` steps a weaker session up, an essential
//! `acr` that cannot be met fails, and a `minimum_acr` client gets only that level (a user
//! without the factor is led to enrol it first).

use super::*;

both_backends!(
    acr_values_steps_up_a_weaker_session,
    essential_acr_that_cannot_be_met_fails,
    minimum_acr_clients_get_only_that_level_and_lead_to_enrolment,
);

async fn acr_values_steps_up_a_weaker_session(backend: Backend) {
    let (app, id, secret) = setup(backend, json!({})).await;
    // Asking for mfa of a user who has no second factor: the strongest they can give (pwd).
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[("acr_values", "mfa")]).await;
    let r = app.drive(&browser, r, "alice").await;
    let (first, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(first["acr"], "pwd");

    // Now alice has TOTP; her session is still a password one.
    let totp = app.add_totp("alice");
    app.state.clock.advance(40);
    let r = app.start(&browser, &id, &[]).await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(tokens(&app, &id, &secret, &r).await.0["acr"], "pwd");
    // prompt=none cannot step up.
    let r = app
        .start(
            &browser,
            &id,
            &[("acr_values", "phr mfa"), ("prompt", "none")],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "interaction_required", "{q:?}");
    // acr_values=mfa: the second step alone, no password.
    let r = app.start(&browser, &id, &[("acr_values", "phr mfa")]).await;
    let to = location(&r);
    assert_eq!(path_of(&to), "/login/factor", "{to}");
    let r = post_otp(&app, &browser, &to, &totp_at(&totp, app.now())).await;
    assert_eq!(r.status(), 303);
    let r = app.drive(&browser, r, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["acr"], "mfa");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(
        claims["sid"], first["sid"],
        "the same session, made stronger"
    );
    assert!(claims["auth_time"].as_i64() > first["auth_time"].as_i64());
    // The session remembers the stronger level.
    let r = app.start(&browser, &id, &[("prompt", "none")]).await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(tokens(&app, &id, &secret, &r).await.0["acr"], "mfa");
}

async fn essential_acr_that_cannot_be_met_fails(backend: Backend) {
    let (app, id, secret) = setup(backend, json!({})).await;
    app.add_totp("alice");
    let claims = |values: Value| {
        json!({"id_token": {"acr": {"essential": true, "values": values}}}).to_string()
    };
    // A level Sigil does not offer: refused at once.
    let browser = Browser::new();
    let r = app
        .start(
            &browser,
            &id,
            &[("claims", &claims(json!(["urn:example:loa:4"])))],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "unmet_authentication_requirements", "{q:?}");
    // Malformed claims: invalid_request.
    let r = app.start(&browser, &id, &[("claims", "{not json")]).await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");
    // phr, which alice cannot give (no passkey): refused after the password.
    let r = app
        .start(&browser, &id, &[("claims", &claims(json!(["phr"])))])
        .await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", PASSWORD)
        .await;
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    let q = query(&to);
    assert_eq!(q["error"], "unmet_authentication_requirements", "{q:?}");
    assert!(!q.contains_key("code"));
    assert_eq!(q["iss"], app.issuer());
    // mfa, which she can: the second step, then acr mfa.
    let factor = to_second_step(
        &app,
        &browser,
        &id,
        &[("claims", &claims(json!(["mfa", "phr"])))],
    )
    .await;
    let totp = app.add_totp("alice");
    let r = post_otp(&app, &browser, &factor, &totp_at(&totp, app.now())).await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(tokens(&app, &id, &secret, &r).await.0["acr"], "mfa");
    // Essential pwd for an mfa session: the ID token says one of the values asked for.
    let r = app
        .start(&browser, &id, &[("claims", &claims(json!(["pwd"])))])
        .await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(tokens(&app, &id, &secret, &r).await.0["acr"], "pwd");
}

async fn minimum_acr_clients_get_only_that_level_and_lead_to_enrolment(backend: Backend) {
    let (app, id, secret) = setup(backend, json!({"minimum_acr": "mfa"})).await;
    for bad in ["pwd", "gold", ""] {
        let out = app.sigil(
            &["client", "add", "--client-id", "bad", "--metadata", "-"],
            Some(&json!({"redirect_uris": [REDIRECT], "minimum_acr": bad}).to_string()),
        );
        assert!(!out.status.success(), "minimum_acr {bad:?} accepted");
    }
    // alice has no second factor: after her password she is asked to set one up.
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", PASSWORD)
        .await;
    let r = browser.get(&location(&r)).await;
    let to = location(&r);
    assert_eq!(path_of(&to), "/login/enrol", "{to}");
    let page = browser.get(&to).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Set up a second factor") && html.contains("/account"),
        "{html}"
    );
    // prompt=none for such a session: interaction_required, never a password-level code.
    let r = app.start(&browser, &id, &[("prompt", "none")]).await;
    assert_eq!(query(&location(&r))["error"], "interaction_required");

    // Once she has a factor, continuing leads through the second step to an mfa code.
    let totp = app.add_totp("alice");
    let request = query(&to)["request"].clone();
    let r = browser
        .get(&app.url(&format!("/authorize/resume?request={request}")))
        .await;
    let factor = location(&r);
    assert_eq!(path_of(&factor), "/login/factor", "{factor}");
    let r = post_otp(&app, &browser, &factor, &totp_at(&totp, app.now())).await;
    let r = app.drive(&browser, r, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["acr"], "mfa");
    // Another client without a minimum is happy with the same session.
    let (plain, plain_secret) = app.web_client("plain", json!({}));
    let r = app.start(&browser, &plain, &[]).await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(
        tokens(&app, &plain, &plain_secret, &r).await.0["acr"],
        "mfa"
    );
}
