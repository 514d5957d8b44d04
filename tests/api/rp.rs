//! A relying party built with the openidconnect crate completes the whole flow: discovery →
//! authorize with PKCE and nonce → login → consent → code → tokens → ID token verified by
//! openidconnect → userinfo → refresh.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::json;

use crate::both_backends;
use crate::flow::{location, query, Browser, REDIRECT};
use crate::helpers::{spawn_app, Backend};

both_backends!(
    oidcc_openidconnect_relying_party_completes_the_flow,
    oidcc_id_token_es256_for_a_client_that_asks
);

async fn oidcc_openidconnect_relying_party_completes_the_flow(backend: Backend) {
    run_flow(backend, None).await
}

/// `id_token_signed_response_alg` is honoured (here ES256), and verified by openidconnect.
async fn oidcc_id_token_es256_for_a_client_that_asks(backend: Backend) {
    run_flow(backend, Some("ES256")).await
}

async fn run_flow(backend: Backend, alg: Option<&str>) {
    let app = spawn_app(backend).await;
    let extra = match alg {
        Some(a) => json!({ "id_token_signed_response_alg": a }),
        None => json!({}),
    };
    let (id, secret) = app.web_client("rp", extra);
    let user = app.add_user("alice");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http)
        .await
        .expect("discovery through openidconnect");
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(id),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::new();
    let first = browser.get(auth_url.as_str()).await;
    let back = app.drive(&browser, first, "alice").await;
    assert_eq!(back.status(), 303);
    let q = query(&location(&back));
    assert_eq!(q["state"], *csrf.secret());
    assert_eq!(q["iss"], app.issuer(), "RFC 9207");

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange through openidconnect");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies (signature, iss, aud, exp, nonce)");
    assert_eq!(claims.subject().as_str(), user["id"].as_str().unwrap());
    assert_eq!(claims.email().unwrap().as_str(), "alice@example.com");
    assert!(claims.auth_time().is_some());
    let expected_alg = alg.unwrap_or("RS256");
    assert_eq!(
        serde_json::to_value(id_token.signing_alg().unwrap()).unwrap(),
        expected_alg
    );
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));

    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo through openidconnect");
    assert_eq!(info.subject().as_str(), user["id"].as_str().unwrap());
    assert_eq!(info.email().unwrap().as_str(), "alice@example.com");

    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token");
    let refreshed = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh through openidconnect");
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret(),
        "rotated"
    );
}
