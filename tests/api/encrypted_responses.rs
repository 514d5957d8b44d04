//! Per-client algorithms and encryption (OIDC Core §5.3.2, §10, §16.14): UserInfo as a signed
//! JWT, and ID tokens, UserInfo responses and resource servers' access tokens encrypted as nested
//! JWTs. Every encrypted token is decrypted and its inner signature verified by an independent
//! JOSE implementation — Python's jwcrypto (Debian's python3-jwcrypto, installed by
//! scripts/install-deps.sh) — for every supported alg/enc pair.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::both_backends;
use crate::client_assertion::LocalServer;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp};

both_backends!(
    userinfo_as_a_signed_jwt_for_clients_that_ask,
    encrypted_id_tokens_and_userinfo_for_every_alg_and_enc,
    encryption_metadata_is_checked_at_registration,
    access_tokens_for_a_resource_with_an_encryption_key_are_encrypted,
    encryption_keys_from_a_jwks_uri_follow_the_outbound_rules,
);

const JWE_ALGS: [&str; 5] = ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW", "A256KW", "dir"];
const JWE_ENCS: [&str; 2] = ["A256GCM", "A128CBC-HS256"];

/// Decrypts with jwcrypto, verifies the inner JWS against Sigil's JWKS (or the client secret
/// for HS256), and returns {"header", "inner_header", "claims"}.
const JWCRYPTO_CHECK: &str = r#"
import base64, hashlib, json, sys
from jwcrypto import jwe, jwk, jws
a = json.load(sys.stdin)
def oct_key(raw):
    return jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
if a.get("secret") is not None and a["alg"] in ("A256KW", "dir"):
    key = oct_key(hashlib.sha256(a["secret"].encode()).digest())
else:
    key = jwk.JWK(**a["key"])
e = jwe.JWE()
e.deserialize(a["token"], key=key)
inner = e.payload.decode()
if a["sig_alg"] is None:
    print(json.dumps({"header": e.jose_header, "inner_header": None, "claims": json.loads(inner)}))
    sys.exit(0)
s = jws.JWS()
s.deserialize(inner)
h = s.jose_header
if a["sig_alg"] == "HS256":
    vkey = oct_key(a["secret"].encode())
else:
    vkey = jwk.JWKSet.from_json(json.dumps(a["jwks"])).get_key(h["kid"])
s.verify(vkey, alg=a["sig_alg"])
print(json.dumps({"header": e.jose_header, "inner_header": h, "claims": json.loads(s.payload)}))
"#;

fn jwcrypto(input: &Value) -> Value {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", JWCRYPTO_CHECK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (with python3-jwcrypto) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jwcrypto refused the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A client key pair for `alg`: (private JWK for jwcrypto, public JWK to register).
fn key_pair(alg: &str) -> (Value, Value) {
    use josekit::jwk::alg::{ec::EcCurve, ec::EcKeyPair, rsa::RsaKeyPair};
    let (private, public) = match alg {
        "RSA-OAEP-256" => {
            let k = RsaKeyPair::generate(2048).unwrap();
            (k.to_jwk_private_key(), k.to_jwk_public_key())
        }
        _ => {
            let k = EcKeyPair::generate(EcCurve::P256).unwrap();
            (k.to_jwk_private_key(), k.to_jwk_public_key())
        }
    };
    let mut public = serde_json::to_value(public.as_ref()).unwrap();
    public["use"] = "enc".into();
    public["kid"] = format!("enc-{alg}").into();
    // The full private JWK: the public members plus the private ones.
    let mut full = public.clone();
    for (k, v) in serde_json::to_value(private.as_ref())
        .unwrap()
        .as_object()
        .unwrap()
    {
        full[k] = v.clone();
    }
    (full, public)
}

async fn signed_in_tokens(app: &TestApp, id: &str, secret: &str, browser: &Browser) -> Value {
    let code = app
        .code_for(browser, id, &[("scope", "openid email")])
        .await;
    let r = app.exchange(id, secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn userinfo_as_a_signed_jwt_for_clients_that_ask(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let browser = Browser::new();
    for alg in ["ES256", "PS256", "EdDSA", "HS256"] {
        let client_id = format!("rp-{}", alg.to_lowercase());
        let (id, secret) = app.web_client(
            &client_id,
            json!({"userinfo_signed_response_alg": alg, "skip_consent": true}),
        );
        let tokens = signed_in_tokens(&app, &id, &secret, &browser).await;
        let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/jwt");
        let jwt = r.text().await.unwrap();
        let (header, claims) = jwt_parts(&jwt);
        assert_eq!(header["alg"], alg);
        if alg == "HS256" {
            use josekit::jws::HS256;
            let verifier = HS256.verifier_from_bytes(secret.as_bytes()).unwrap();
            josekit::jwt::decode_with_verifier(&jwt, &verifier).expect("HS256 with the secret");
        } else {
            verify_with_jwks(&jwt, &app.jwks().await, alg).unwrap();
        }
        assert_eq!(claims["iss"], app.issuer());
        assert_eq!(claims["aud"], id);
        assert_eq!(claims["email"], "alice@example.com");
        assert!(claims["sub"].is_string());
    }
    // Without the registration, plain JSON as before.
    let (id, secret) = app.web_client("plain", json!({"skip_consent": true}));
    let tokens = signed_in_tokens(&app, &id, &secret, &browser).await;
    let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

async fn encrypted_id_tokens_and_userinfo_for_every_alg_and_enc(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let browser = Browser::new();
    for alg in JWE_ALGS {
        for enc in JWE_ENCS {
            let (private, public) = key_pair(alg);
            let mut metadata = json!({
                "skip_consent": true,
                "id_token_signed_response_alg": "ES256",
                "id_token_encrypted_response_alg": alg,
                "id_token_encrypted_response_enc": enc,
                "userinfo_signed_response_alg": "RS256",
                "userinfo_encrypted_response_alg": alg,
                "userinfo_encrypted_response_enc": enc,
            });
            if !matches!(alg, "A256KW" | "dir") {
                metadata["jwks"] = json!({"keys": [public]});
            }
            let client_id = format!("rp-{}-{}", alg, enc)
                .to_lowercase()
                .replace('+', "-");
            let (id, secret) = app.web_client(&client_id, metadata);
            let tokens = signed_in_tokens(&app, &id, &secret, &browser).await;
            let jwks = app.jwks().await;
            let id_token = tokens["id_token"].as_str().unwrap();
            assert_eq!(id_token.split('.').count(), 5, "{alg} {enc}: a JWE");
            let opened = jwcrypto(&json!({
                "token": id_token, "alg": alg, "key": private, "secret": secret,
                "jwks": jwks, "sig_alg": "ES256",
            }));
            assert_eq!(opened["header"]["alg"], alg);
            assert_eq!(opened["header"]["enc"], enc);
            assert_eq!(opened["header"]["cty"], "JWT");
            assert_eq!(opened["claims"]["aud"], id);
            assert_eq!(opened["claims"]["iss"], app.issuer());
            assert_eq!(opened["claims"]["nonce"], "n-1");
            let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/jwt");
            let body = r.text().await.unwrap();
            let opened = jwcrypto(&json!({
                "token": body, "alg": alg, "key": private, "secret": secret,
                "jwks": jwks, "sig_alg": "RS256",
            }));
            assert_eq!(opened["claims"]["email"], "alice@example.com");
            assert_eq!(opened["claims"]["aud"], id);
        }
    }
    // Encryption without a signing alg for UserInfo: the JSON claims encrypted (OIDC
    // Registration §2), with no `cty`.
    let (private, public) = key_pair("RSA-OAEP-256");
    let (id, secret) = app.web_client(
        "rp-unsigned",
        json!({"skip_consent": true, "jwks": {"keys": [public]},
               "userinfo_encrypted_response_alg": "RSA-OAEP-256"}),
    );
    let tokens = signed_in_tokens(&app, &id, &secret, &browser).await;
    let body = app
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .text()
        .await
        .unwrap();
    let opened = jwcrypto(&json!({
        "token": body, "alg": "RSA-OAEP-256", "key": private, "secret": null,
        "jwks": null, "sig_alg": null,
    }));
    assert_eq!(
        opened["header"]["enc"], "A128CBC-HS256",
        "the registration default"
    );
    assert!(opened["header"]["cty"].is_null());
    assert_eq!(opened["claims"]["aud"], id);
    assert!(opened["claims"]["sub"].is_string());
}

async fn encryption_metadata_is_checked_at_registration(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, rsa_public) = key_pair("RSA-OAEP-256");
    let mut signing_only = rsa_public.clone();
    signing_only["use"] = "sig".into();
    let cases = [
        json!({"id_token_encrypted_response_alg": "RSA1_5", "jwks": {"keys": [rsa_public]}}),
        json!({"id_token_encrypted_response_alg": "PBES2-HS256+A128KW"}),
        json!({"id_token_encrypted_response_alg": "RSA-OAEP-256"}),
        json!({"id_token_encrypted_response_alg": "RSA-OAEP-256", "jwks": {"keys": [signing_only]}}),
        json!({"id_token_encrypted_response_enc": "A256GCM"}),
        json!({"id_token_encrypted_response_alg": "dir", "id_token_encrypted_response_enc": "A128GCM"}),
        json!({"userinfo_encrypted_response_alg": "dir", "token_endpoint_auth_method": "none"}),
        json!({"userinfo_encrypted_response_alg": "ECDH-ES", "jwks": {"keys": [rsa_public]}}),
    ];
    for (i, extra) in cases.iter().enumerate() {
        let mut metadata = json!({
            "redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code"],
        });
        for (k, v) in extra.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        let out = app.sigil(
            &[
                "client",
                "add",
                "--client-id",
                &format!("bad{i}"),
                "--metadata",
                "-",
            ],
            Some(&metadata.to_string()),
        );
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("invalid_client_metadata"), "{extra}: {said}");
    }
    let out = app.sigil(&["client", "list", "--json"], None);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Only Sigil's own clients (account page, admin console), registered at start.
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sigil-account", "sigil-admin"], "{listed}");
    // Discovery lists exactly what is supported.
    let doc = app.discovery().await;
    for name in [
        "id_token_encryption_alg_values_supported",
        "userinfo_encryption_alg_values_supported",
    ] {
        assert_eq!(doc[name], json!(JWE_ALGS), "{name}");
    }
    for name in [
        "id_token_encryption_enc_values_supported",
        "userinfo_encryption_enc_values_supported",
    ] {
        assert_eq!(doc[name], json!(JWE_ENCS), "{name}");
    }
    assert_eq!(
        doc["userinfo_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "EdDSA", "HS256"])
    );
}

async fn access_tokens_for_a_resource_with_an_encryption_key_are_encrypted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (private, public) = key_pair("ECDH-ES+A256KW");
    let api = "https://api.example/secret";
    let out = app.sigil(
        &["resource", "add", "--metadata", "-"],
        Some(
            &json!({"resource": api, "scope": "api:read",
                    "jwks": {"keys": [public]},
                    "access_token_encrypted_response_alg": "ECDH-ES+A256KW",
                    "access_token_encrypted_response_enc": "A256GCM"})
            .to_string(),
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (id, secret) = app.cc_client("svc");
    let r = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("resource", api)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(
        at.split('.').count(),
        5,
        "encrypted for the resource server"
    );
    let opened = jwcrypto(&json!({
        "token": at, "alg": "ECDH-ES+A256KW", "key": private, "secret": null,
        "jwks": app.jwks().await, "sig_alg": "RS256",
    }));
    assert_eq!(opened["inner_header"]["typ"], "at+jwt");
    assert_eq!(opened["claims"]["aud"], api);
    assert_eq!(opened["claims"]["scope"], "api:read");
}

async fn encryption_keys_from_a_jwks_uri_follow_the_outbound_rules(backend: Backend) {
    let (private, public) = key_pair("RSA-OAEP-256");
    let server = LocalServer::start(json!({"keys": [public]}).to_string());
    let metadata = json!({"skip_consent": true, "jwks_uri": server.url,
                          "id_token_encrypted_response_alg": "RSA-OAEP-256"});
    // Allowed to reach 127.0.0.1: the key set is fetched once and used.
    let app = spawn_app_with(backend, |s| s.outbound.allow_private_networks = true).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("rp", metadata.clone());
    let browser = Browser::new();
    for _ in 0..2 {
        let tokens = signed_in_tokens(&app, &id, &secret, &browser).await;
        let opened = jwcrypto(&json!({
            "token": tokens["id_token"], "alg": "RSA-OAEP-256", "key": private, "secret": null,
            "jwks": app.jwks().await, "sig_alg": "RS256",
        }));
        assert_eq!(opened["claims"]["aud"], id);
    }
    assert_eq!(server.hits(), 1, "the key set is cached");
    // By default a private address is refused: no ID token is handed out unencrypted, the
    // token request fails, and the server is never contacted.
    let strict = spawn_app(backend).await;
    strict.add_user("alice");
    let (id, secret) = strict.web_client("rp", metadata);
    let code = strict
        .code_for(&Browser::new(), &id, &[("scope", "openid")])
        .await;
    let r = strict.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "server_error");
    assert_eq!(server.hits(), 1);
}
