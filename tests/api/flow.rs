//! A scripted browser for the sign-in flow: a cookie jar, redirects followed by hand, the
//! hidden form fields read from Sigil's pages.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";
pub const REDIRECT: &str = "https://rp.example/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// One browser: its own cookies, no automatic redirects.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Response {
        self.http.post(url).form(form).send().await.unwrap()
    }
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} answer", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The value of the attribute `name` in `html` (its first occurrence).
pub fn attribute(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("{name}: {html}"));
    let rest = &html[at + name.len() + 2..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The value of a hidden input in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// The query parameters of a redirect to the client.
pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

impl TestApp {
    /// A confidential web client with the code and refresh grants.
    pub fn web_client(&self, client_id: &str, extra: Value) -> (String, String) {
        let mut metadata = json!({
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email address phone offline_access",
            "client_name": format!("App {client_id}"),
        });
        for (k, v) in extra.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        let r = self.register_client(client_id, &metadata);
        (
            client_id.to_string(),
            r["client_secret"].as_str().unwrap_or("").to_string(),
        )
    }

    pub fn add_user(&self, username: &str) -> Value {
        let claims = self.dir.path().join(format!("{username}.claims.json"));
        std::fs::write(
            &claims,
            r#"{"given_name":"Alice","family_name":"Liddell","locale":"en-GB","phone_number":"+44 20 7946 0000",
                "address":{"street_address":"1 Rabbit Hole","locality":"Oxford","country":"GB"}}"#,
        )
        .unwrap();
        let out = self.sigil(
            &[
                "user",
                "add",
                username,
                "--email",
                &format!("{username}@example.com"),
                "--email-verified",
                "--name",
                "Alice Liddell",
                "--claims",
                claims.to_str().unwrap(),
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub async fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.endpoint("authorization_endpoint").await).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// GET /authorize with the usual parameters plus `extra` (which override).
    pub async fn start(
        &self,
        browser: &Browser,
        client_id: &str,
        extra: &[(&str, &str)],
    ) -> Response {
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            params.retain(|(p, _)| p != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        browser.get(&self.authorize_url(&params).await).await
    }

    /// Submits the login form found at `login_url`.
    pub async fn submit_login(
        &self,
        browser: &Browser,
        login_url: &str,
        username: &str,
        password: &str,
    ) -> Response {
        let page = browser.get(login_url).await;
        assert_eq!(page.status(), 200, "login page");
        let html = page.text().await.unwrap();
        let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
        browser
            .post_form(
                &self.url("/login"),
                &[
                    ("request", &request),
                    ("csrf_token", &csrf),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await
    }

    /// Follows Sigil's own redirects (login done, consent allowed when asked) until the answer
    /// leaves for the client; returns that final answer.
    pub async fn drive(&self, browser: &Browser, mut r: Response, username: &str) -> Response {
        for _ in 0..8 {
            if r.status() != StatusCode::SEE_OTHER {
                return r;
            }
            let to = location(&r);
            if !to.starts_with(&self.address) {
                return r;
            }
            r = if to.contains("/login?") {
                self.submit_login(browser, &to, username, PASSWORD).await
            } else if to.contains("/consent?") {
                let page = browser.get(&to).await;
                assert_eq!(page.status(), 200, "consent page");
                let html = page.text().await.unwrap();
                let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
                browser
                    .post_form(
                        &self.url("/consent"),
                        &[
                            ("request", &request),
                            ("csrf_token", &csrf),
                            ("decision", "allow"),
                        ],
                    )
                    .await
            } else {
                browser.get(&to).await
            };
        }
        panic!("too many redirects");
    }

    /// The whole browser part: authorize → login → consent → the code for the client.
    pub async fn code_for(
        &self,
        browser: &Browser,
        client_id: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let r = self.start(browser, client_id, extra).await;
        let r = self.drive(browser, r, "alice").await;
        assert_eq!(r.status(), 303);
        let to = location(&r);
        assert!(to.starts_with(REDIRECT), "{to}");
        let q = query(&to);
        q.get("code")
            .unwrap_or_else(|| panic!("no code in {to}"))
            .clone()
    }

    /// POST /token for a code with HTTP Basic authentication.
    pub async fn exchange(
        &self,
        id: &str,
        secret: &str,
        code: &str,
        verifier: Option<&str>,
    ) -> Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        self.token_basic(id, secret, &form).await
    }

    /// A new web client `client_id` and the tokens of one sign-in of "alice" at it (scopes
    /// openid, email, offline_access): (client id, secret, token response).
    pub async fn user_tokens(&self, client_id: &str) -> (String, String, serde_json::Value) {
        let (id, secret) = self.web_client(client_id, json!({}));
        let code = self
            .code_for(
                &Browser::new(),
                &id,
                &[("scope", "openid email offline_access")],
            )
            .await;
        let tokens = self
            .exchange(&id, &secret, &code, Some(VERIFIER))
            .await
            .json()
            .await
            .unwrap();
        (id, secret, tokens)
    }

    pub async fn userinfo(&self, access_token: &str) -> Response {
        let url = self.endpoint("userinfo_endpoint").await;
        self.http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }
}
