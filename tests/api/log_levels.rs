//! Log levels (issue 10 item 10): bad input from outside is INFO at most; ERROR means Sigil
//! itself is wrong and WARN that an operator should look. The real binary, logging JSON lines,
//! takes a garbage battery — malformed JWTs at every endpoint that reads one, bad forms, bad
//! cookies, bad credentials, malformed HTTP, a client whose `jwks_uri` host is down — and
//! must answer none of it with a 5xx nor log any of it at WARN or ERROR.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::flow::REDIRECT;
use crate::helpers::{form_encode, test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{migrate, register_client, settings_on, ServerProcess};

both_backends!(garbage_input_is_never_logged_at_warn_or_error);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compact JWTs that are wrong in every way a parser meets.
fn bad_jwts(audience: &str) -> Vec<String> {
    let claims = json!({"iss": "pk", "sub": "pk", "aud": audience, "exp": 4_000_000_000u64,
                        "jti": "j1"});
    vec![
        "a.b.c".into(),
        "....".into(),
        format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}")),
        format!(
            "{}.{}.AAAA",
            b64(br#"{"alg":"RS256","kid":"x"}"#),
            b64(br#"{"sub":1}"#)
        ),
        "x".repeat(5000),
        format!("{}.{}.sig", b64(br#"{"alg":"HS256"}"#), b64(b"[1,2]")),
        "e30.e30.e30.e30.e30".into(),
        format!(
            "{}.{}.AAAA",
            b64(br#"{"alg":"RS256","kid":"k1"}"#),
            b64(claims.to_string().as_bytes())
        ),
        format!("{}.{}.{}", b64(b"\xff\xfe"), b64(b"\x00"), b64(b"\x01")),
    ]
}

/// Raw bytes on a fresh connection; whatever comes back until the server closes.
async fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn garbage_input_is_never_logged_at_warn_or_error(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(backend, dir.path());
    let settings = settings_on(settings, free_port());
    migrate(&settings, dir.path());
    let register =
        |id: &str, metadata: Value| register_client(&settings, dir.path(), id, &metadata);
    let svc = register("svc", json!({"grant_types": ["client_credentials"]}));
    let svc_secret = svc["client_secret"].as_str().unwrap().to_string();
    // Nothing listens on this port: the client's key host is down.
    register(
        "pk",
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
               "jwks_uri": format!("http://127.0.0.1:{}/jwks", free_port())}),
    );
    register("web", json!({"redirect_uris": [REDIRECT]}));
    let server = ServerProcess::start(
        &settings,
        dir.path(),
        &[("SIGIL_OUTBOUND__ALLOW_PRIVATE_NETWORKS", "true")],
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    let mut check = |what: String, status: u16| {
        assert!(status < 500, "{what}: {status}");
        statuses.push(status);
    };
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let authorize = format!(
        "/authorize?client_id=web&redirect_uri={}&response_type=code&scope=openid",
        form_encode(REDIRECT)
    );

    for jwt in bad_jwts(&server.url("/token")) {
        let q = form_encode(&jwt);
        let r = http
            .get(server.url("/userinfo"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        check(format!("userinfo {jwt:.20}"), r.status().as_u16());
        for path in ["/introspect", "/revoke"] {
            let r = http
                .post(server.url(path))
                .basic_auth("svc", Some(&svc_secret))
                .header(form_type.0, form_type.1)
                .body(format!("token={q}"))
                .send()
                .await
                .unwrap();
            check(format!("{path} {jwt:.20}"), r.status().as_u16());
        }
        let assertion = format!(
            "grant_type=client_credentials&client_id=pk&client_assertion_type=\
             urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={q}"
        );
        let r = http
            .post(server.url("/token"))
            .header(form_type.0, form_type.1)
            .body(assertion)
            .send()
            .await
            .unwrap();
        check(format!("token assertion {jwt:.20}"), r.status().as_u16());
        for url in [
            format!("{authorize}&id_token_hint={q}"),
            format!("{authorize}&request={q}"),
            format!("/logout?id_token_hint={q}"),
        ] {
            let r = http.get(server.url(&url)).send().await.unwrap();
            check(url, r.status().as_u16());
        }
    }

    let mut bodies: Vec<Vec<u8>> = vec![
        b"%%%".to_vec(),
        b"a=1&a=2".to_vec(),
        b"\xff\xfe=\x00".to_vec(),
        format!("grant_type={}", "x".repeat(20_000)).into_bytes(),
        b"=&=&&&".to_vec(),
        b"grant_type=authorization_code&code=zzz&redirect_uri=x".to_vec(),
    ];
    bodies.push(vec![b'a'; 1 << 20]);
    for body in &bodies {
        for path in [
            "/token",
            "/login",
            "/consent",
            "/logout",
            "/authorize",
            "/introspect",
        ] {
            let r = http
                .post(server.url(path))
                .basic_auth("svc", Some("wrong"))
                .header(form_type.0, form_type.1)
                .header("cookie", "sigil_csrf=abc; sigil_session=zzz")
                .body(body.clone())
                .send()
                .await;
            // A body over the limit may be answered (413) and the connection closed while it
            // is still being sent: no status then, and no 5xx either.
            let status = r.map_or(0, |r| r.status().as_u16());
            check(
                format!("{path} form {:.20}", String::from_utf8_lossy(body)),
                status,
            );
        }
    }
    let r = http
        .post(server.url("/token"))
        .header("content-type", "text/plain")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    check("token text/plain".into(), r.status().as_u16());

    let long = format!("sigil_session={}", "x".repeat(8000));
    for cookie in [
        long.as_str(),
        "sigil_csrf=;;;;=",
        "sigil_session=AAAA; sigil_session=BBBB",
        "__Host-sigil_session=abc",
        "sigil_session=%ff%fe",
    ] {
        for path in [
            authorize.as_str(),
            "/login?request=abc",
            "/logout",
            "/authorize/resume?request=abc",
        ] {
            let r = http
                .get(server.url(path))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            check(format!("{path} cookie {cookie:.20}"), r.status().as_u16());
        }
    }

    let engine = base64::engine::general_purpose::STANDARD;
    let credentials = [
        "Basic !!!".to_string(),
        format!("Basic {}", engine.encode("nocolon")),
        format!("Basic {}", engine.encode("%zz:%zz")),
        "Bearer x".to_string(),
        format!("Basic {}", "A".repeat(10_000)),
    ];
    for authorization in &credentials {
        for path in ["/token", "/introspect", "/admin/api/users"] {
            let r = http
                .post(server.url(path))
                .header("authorization", authorization)
                .header(form_type.0, form_type.1)
                .body("grant_type=client_credentials&token=x")
                .send()
                .await
                .unwrap();
            check(format!("{path} {authorization:.20}"), r.status().as_u16());
        }
    }

    let addr = server.address.trim_start_matches("http://").to_string();
    let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000));
    for bytes in [
        b"GARBAGE\r\n\r\n".as_slice(),
        b"GET / HTTP/9.9\r\n\r\n",
        long_uri.as_bytes(),
        b"POST /token HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /healthz HTTP/1.1\r\nCookie: sigil_session=\x01\x02\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ] {
        let answer = raw(&addr, bytes).await;
        assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    }
    assert_eq!(statuses.len(), 141, "the whole battery ran");

    // The server is still well, and its log holds nothing at WARN or ERROR.
    let r = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let loud: Vec<Value> = ["ERROR", "WARN"]
        .iter()
        .flat_map(|level| server.log_lines_at(level))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    // The key host that is down was really asked (and its failure logged, at INFO).
    let down = server
        .log_lines_at("INFO")
        .into_iter()
        .filter(|l| l["message"] == "client keys unavailable")
        .count();
    assert!(down >= 1, "{}", server.log_text());
}
