//! A small relying party built with the openidconnect crate: authorization code flow with PKCE
//! S256, `state` and `nonce` kept server-side under the app's own HttpOnly session cookie, the
//! code exchanged with client_secret_basic, and the ID token verified by openidconnect
//! (signature from the JWKS, iss, aud, exp, nonce, at_hash). Tokens stay on the server; the
//! browser holds only an opaque session id.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Server;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::pages::{html, see_other, view, ErrorPage, HomePage, UserView};
use crate::crypto::random;

/// The client `from_provider_metadata` returns: authorization endpoint set, token and userinfo
/// endpoints as discovery found them.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in that has not come back within this long is forgotten.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// A local session unused this long ends.
const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, Clone)]
pub struct RpConfig {
    /// Shown on the pages, e.g. "App A".
    pub name: String,
    /// The app's own origin, e.g. `http://127.0.0.1:8081`; the redirect URI is `{base_url}/callback`.
    pub base_url: String,
    /// Sigil's issuer; endpoints and keys come from its discovery document.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The app's session cookie (distinct per app: cookies are shared across ports of a host).
    pub cookie_name: String,
    /// Other demo apps to link to.
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub url: String,
}

impl Peer {
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
        }
    }
}

pub struct RelyingParty {
    config: RpConfig,
    redirect_url: RedirectUrl,
    issuer: IssuerUrl,
    /// The openidconnect HTTP client: redirects off (OAuth endpoints must not redirect).
    http: reqwest::Client,
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    last_seen: Instant,
    pending: Option<Pending>,
    user: Option<SignedIn>,
}

/// What the callback needs to finish the sign-in this browser started.
struct Pending {
    started: Instant,
    state: String,
    nonce: String,
    pkce_verifier: String,
}

struct SignedIn {
    view: UserView,
    // Kept server-side only (a real app would call APIs / userinfo with them).
    _id_token: String,
    _access_token: String,
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl RelyingParty {
    pub fn new(config: RpConfig) -> anyhow::Result<Self> {
        Ok(Self {
            redirect_url: RedirectUrl::new(format!("{}/callback", config.base_url))?,
            issuer: IssuerUrl::new(config.issuer.clone())?,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(15))
                .build()?,
            sessions: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// Starts the app's HTTP server on `listener`.
    pub fn serve(self, listener: TcpListener) -> anyhow::Result<Server> {
        let data = web::Data::new(self);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "no-referrer"))
                        .add(("Content-Security-Policy", CSP))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .route("/", web::get().to(home))
                .route("/login", web::get().to(login))
                .route("/callback", web::get().to(callback))
                .route("/logout", web::post().to(logout))
        })
        .workers(2)
        .listen(listener)?
        .run();
        Ok(server)
    }

    /// Discovery (and the JWKS) on every sign-in, so that key rotation at Sigil never leaves
    /// the demo with stale keys.
    async fn client(&self) -> anyhow::Result<DiscoveredClient> {
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| anyhow::anyhow!("discovery at {}: {}", self.issuer.as_str(), chain(&e)))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect_url.clone()))
    }

    fn cookie(&self, value: String) -> Cookie<'static> {
        Cookie::build(self.config.cookie_name.clone(), value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .finish()
    }

    fn session_id(&self, req: &HttpRequest) -> Option<String> {
        req.cookie(&self.config.cookie_name)
            .map(|c| c.value().to_string())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map usable.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, status: StatusCode, title: &str, message: &str) -> HttpResponse {
        let page = ErrorPage {
            app_name: &self.config.name,
            base_url: &self.config.base_url,
            title,
            message,
        };
        html(status, &page)
    }
}

/// An error with its sources, for the error page.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn home(req: HttpRequest, rp: web::Data<RelyingParty>) -> HttpResponse {
    let user = rp.session_id(&req).and_then(|id| {
        let mut sessions = rp.sessions();
        let session = sessions.get_mut(&id)?;
        session.last_seen = Instant::now();
        session.user.as_ref().map(|u| u.view.clone())
    });
    let page = HomePage {
        app_name: &rp.config.name,
        base_url: &rp.config.base_url,
        issuer: &rp.config.issuer,
        user,
        peers: &rp.config.peers,
    };
    html(StatusCode::OK, &page)
}

/// Starts the code flow: PKCE S256, state and nonce stored under the session cookie.
async fn login(req: HttpRequest, rp: web::Data<RelyingParty>) -> HttpResponse {
    let client = match rp.client().await {
        Ok(c) => c,
        Err(e) => {
            return rp.error(
                StatusCode::BAD_GATEWAY,
                "Sigil is not reachable",
                &format!("{e:#}"),
            )
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let pending = Pending {
        started: Instant::now(),
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    };
    let id = {
        let mut sessions = rp.sessions();
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
        let existing = rp.session_id(&req).filter(|id| sessions.contains_key(id));
        let id = existing.unwrap_or_else(random::secret_256);
        let session = sessions.entry(id.clone()).or_insert_with(|| Session {
            last_seen: now,
            pending: None,
            user: None,
        });
        session.last_seen = now;
        session.pending = Some(pending);
        id
    };
    see_other(url.as_str()).cookie(rp.cookie(id)).finish()
}

/// The redirect back from Sigil: state, iss, code exchange and ID token verification.
async fn callback(
    req: HttpRequest,
    rp: web::Data<RelyingParty>,
    params: web::Query<CallbackParams>,
) -> HttpResponse {
    let bad = |m: &str| rp.error(StatusCode::BAD_REQUEST, "Sign-in failed", m);
    let Some(sid) = rp.session_id(&req) else {
        return bad("This browser has no sign-in in progress here (no session cookie).");
    };
    // Single use: the pending sign-in is taken out whatever happens next.
    let pending = rp
        .sessions()
        .get_mut(&sid)
        .and_then(|s| s.pending.take())
        .filter(|p| p.started.elapsed() < PENDING_TTL);
    let Some(pending) = pending else {
        return bad("No sign-in is in progress for this browser, or it took too long.");
    };
    let state_ok = params
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    if !state_ok {
        return bad("The state parameter does not match the sign-in this browser started.");
    }
    // RFC 9207: the response must come from the issuer this app sent the user to.
    if params.iss.as_deref() != Some(rp.config.issuer.as_str()) {
        return bad("The response's iss parameter is not Sigil's issuer.");
    }
    if let Some(error) = &params.error {
        let description = params.error_description.as_deref().unwrap_or("");
        return bad(&format!("Sigil answered {error}: {description}"));
    }
    let Some(code) = params.code.clone() else {
        return bad("The response has no code.");
    };
    let user = match finish(&rp, code, pending).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), app = %rp.config.name, "demo sign-in failed");
            return rp.error(StatusCode::BAD_GATEWAY, "Sign-in failed", &format!("{e:#}"));
        }
    };
    // A new session id at sign-in (no fixation).
    let new_id = random::secret_256();
    {
        let mut sessions = rp.sessions();
        sessions.remove(&sid);
        sessions.insert(
            new_id.clone(),
            Session {
                last_seen: Instant::now(),
                pending: None,
                user: Some(user),
            },
        );
    }
    see_other("/").cookie(rp.cookie(new_id)).finish()
}

async fn finish(rp: &RelyingParty, code: String, pending: Pending) -> anyhow::Result<SignedIn> {
    let client = rp.client().await?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
        .request_async(&rp.http)
        .await
        .map_err(|e| anyhow::anyhow!("code exchange: {}", chain(&e)))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| anyhow::anyhow!("the token response has no ID token"))?;
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &Nonce::new(pending.nonce))
        .map_err(|e| anyhow::anyhow!("ID token: {}", chain(&e)))?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token.signing_alg()?;
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            alg,
            id_token.signing_key(&verifier)?,
        )?;
        anyhow::ensure!(&actual == expected, "ID token: at_hash does not match");
    }
    let raw = id_token.to_string();
    Ok(SignedIn {
        view: view(&raw, claims)?,
        _id_token: raw,
        _access_token: tokens.access_token().secret().clone(),
    })
}

/// Ends this app's local session only; the session at Sigil (SSO) stays.
async fn logout(req: HttpRequest, rp: web::Data<RelyingParty>) -> HttpResponse {
    if let Some(id) = rp.session_id(&req) {
        rp.sessions().remove(&id);
    }
    let mut removal = rp.cookie(String::new());
    removal.make_removal();
    see_other("/").cookie(removal).finish()
}
