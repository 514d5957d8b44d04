//! The login page: GET shows the form, POST checks the password and answers 303 with a fresh
//! session. The check takes its brute-force slots first (`throttle`), then waits its turn on the
//! bounded password pool (argon2id; unknown users verify a dummy hash so answer and timing
//! match a wrong password; a browser that signed in to the account before goes first).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::flow::{self, Parked};
use super::second_factor::{self, Offer};
use super::{client_address, cookies, forms, session, strength, throttle};
use crate::audit;
use crate::crypto::password::{Busy, Lane, MAX_PASSWORD_BYTES};
use crate::crypto::random;
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::{csp_with_form_target, login_csp, render_with_csp};
use crate::endpoints::paths;
use crate::factors;
use crate::metrics::SignIn;
use crate::oauth::authorize_request::AuthorizationRequest;
use crate::oauth::client_metadata::Client;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::users::UserRow;
use crate::storage::{self, auth_requests, devices, users, AnyConnection, StorageError};
use crate::web::strength::Acr;

/// The one message for every failed sign-in (SECURITY.md attack 19).
pub const FAILED: &str = "Incorrect username or password.";
/// When the password pool is full (DESIGN.md "Limits"): 503 with this `Retry-After`.
pub const BUSY_RETRY_AFTER: i64 = 5;
const BUSY: &str = "Too many sign-ins at once. Try again in a few seconds.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client_name: &'a str,
    request_id: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    error: Option<String>,
    /// Whether to offer "Sign in with a passkey" (passkeys are on).
    passkeys: bool,
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let at = match forms::page_request(&req, &state).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let hint = at.parked.request.login_hint.as_deref().unwrap_or("");
    login_page(
        &state,
        StatusCode::OK,
        &at.client,
        &at.parked,
        &at.csrf,
        hint,
        None,
    )
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    client: &Client,
    parked: &Parked,
    csrf_token: &str,
    username: &str,
    error: Option<String>,
) -> HttpResponse {
    let page = LoginPage {
        client_name: client.display_name(),
        request_id: &parked.id,
        csrf_token,
        username,
        error,
        passkeys: state.webauthn.is_some(),
    };
    // The passkey button's script, only where there is a button.
    let csp = if page.passkeys {
        login_csp(&parked.request.redirect_uri)
    } else {
        csp_with_form_target(&parked.request.redirect_uri)
    };
    render_with_csp(status, &page, &csp)
}

/// A finished sign-in: the values of the new session and device cookies.
pub struct SignedIn {
    pub session: String,
    pub device: String,
}

enum Outcome {
    SignedIn(SignedIn),
    /// The password was right; a second factor must follow: the answer is its page.
    SecondStep {
        offer: Offer,
        username: String,
    },
    /// The request asks for an `acr` this user cannot give.
    Unmet(OAuthError),
    Failed,
    /// A key is locked or full: 429 after this many seconds, whatever the password.
    Locked(i64),
    /// The password pool is full: 503.
    Busy,
}

impl Outcome {
    /// Its label in `sigil_sign_ins_total`.
    fn counted(&self) -> SignIn {
        match self {
            Self::SignedIn(_) => SignIn::Ok,
            Self::SecondStep { .. } => SignIn::SecondFactorNeeded,
            Self::Unmet(_) => SignIn::Unmet,
            Self::Failed => SignIn::WrongPassword,
            Self::Locked(_) => SignIn::Locked,
            Self::Busy => SignIn::Busy,
        }
    }
}

/// One sign-in attempt, as the form and the browser's cookies gave it.
struct Attempt {
    username: String,
    password: String,
    /// The client address's throttle bucket.
    address: String,
    /// The browser's current session cookie, ended by the new one.
    previous: Option<String>,
    /// The browser's device cookie.
    device: Option<String>,
    /// Where the browser signs in from (kept with its session).
    origin: session::Origin,
    /// The parked request signed in for (the hash of its id), and what it needs.
    parked_hash: String,
    request: AuthorizationRequest,
    minimum_acr: Option<Acr>,
}

/// POST /login. Every answer but a sign-in waits `login.refusal_delay` first (bounded by the
/// tarpit): a flood that waits for its answers — wrong passwords, locked or busy answers,
/// stale or forged forms alike — is slowed to one attempt per connection and delay.
pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    // Boxed: freed when done, not kept through the wait (see `held_unless`).
    let response = Box::pin(answer(&req, &body, &state)).await;
    held_unless(&state, body, response, onwards).await
}

/// Whether an answer of the password, second-step and device forms leads on: a redirect
/// onwards, or the next step's page (200: no refusal of these forms is a 200).
pub fn onwards(status: StatusCode) -> bool {
    matches!(status, StatusCode::SEE_OTHER | StatusCode::OK)
}

/// The tarpit for the sign-in forms (password, second step, passkeys, device code): every
/// answer that does not `pass` waits `login.refusal_delay` first, so a flood that waits for its
/// answers — wrong passwords or codes, locked or busy answers, stale or forged forms alike — is
/// slowed to one attempt per connection and delay.
///
/// A held refusal keeps its connection, its request and its answer, and nothing else: the
/// request `body` is dropped here before the wait (actix reads a body into at least 8 KiB), and
/// callers box the future that worked the answer out (freed once done, where inline it would
/// stay part of the handler's future through the wait). Each saves about 6–8 KiB per waiting
/// refusal, some 7 MiB of the memory a flood of 500 connections holds.
pub async fn held_unless(
    state: &AppState,
    body: web::Bytes,
    response: HttpResponse,
    pass: fn(StatusCode) -> bool,
) -> HttpResponse {
    drop(body);
    if !pass(response.status()) {
        state
            .tarpit
            .hold(state.settings.login.refusal_delay.0)
            .await;
    }
    response
}

async fn answer(req: &HttpRequest, body: &[u8], state: &web::Data<AppState>) -> HttpResponse {
    let (params, parked) = match forms::check(req, state, body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let client = match known_client(state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let username = params.get("username").unwrap_or("").to_string();
    let attempt = Attempt {
        username: username.clone(),
        password: params.get("password").unwrap_or("").to_string(),
        address: client_address::of(req, &state.settings.http.trusted_proxies).throttle_bucket(),
        origin: session::Origin::of(
            req,
            client_address::of(req, &state.settings.http.trusted_proxies).to_string(),
        ),
        previous: cookies::read(req, &state.settings, cookies::SESSION),
        device: cookies::read(req, &state.settings, cookies::DEVICE),
        parked_hash: flow::hash(&parked.id),
        request: parked.request.clone(),
        minimum_acr: client.metadata.minimum_acr,
    };
    let outcome = sign_in(state, attempt).await;
    if let Ok(outcome) = &outcome {
        state.metrics.events.sign_in(outcome.counted());
    }
    let csrf = params.get("csrf_token").unwrap_or("");
    let refusal = |status, message: String, wait: i64| {
        let mut response = login_page(
            state,
            status,
            &client,
            &parked,
            csrf,
            &username,
            Some(message),
        );
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(wait.max(1)),
        );
        response
    };
    match outcome {
        Ok(Outcome::SignedIn(signed_in)) => to_resume(state, &parked.id, signed_in),
        Ok(Outcome::SecondStep { offer, username }) => {
            second_factor::first_page(&client, &parked, csrf, &username, offer)
        }
        Ok(Outcome::Unmet(e)) => flow::reply(state, &parked.request.reply_to(), Err(e)),
        Ok(Outcome::Failed) => login_page(
            state,
            StatusCode::UNAUTHORIZED,
            &client,
            &parked,
            csrf,
            &username,
            Some(FAILED.to_string()),
        ),
        // SECURITY.md attack 22: the same answer whatever the password (RFC 6585 §4).
        Ok(Outcome::Locked(wait)) => {
            let minutes = (wait + 59) / 60;
            refusal(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed sign-ins. Try again in {minutes} minute(s)."),
                wait,
            )
        }
        // SECURITY.md attack 23 (RFC 9110 §15.6.4: 503 with Retry-After).
        Ok(Outcome::Busy) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            BUSY.to_string(),
            BUSY_RETRY_AFTER,
        ),
        Err(e) => page(&OAuthError::from(e)),
    }
}

/// 303 back to `/authorize/resume` for the parked request `id`, with the new session and
/// device cookies (SECURITY.md attack 16: 303, so the browser follows with GET and drops the
/// body).
pub fn to_resume(state: &AppState, id: &str, signed_in: SignedIn) -> HttpResponse {
    let mut response = HttpResponse::SeeOther();
    response
        .insert_header(("Location", resume_url(state, id)))
        .insert_header(("Cache-Control", "no-store"));
    for cookie in signed_in_cookies(state, signed_in) {
        response.cookie(cookie);
    }
    response.finish()
}

/// `/authorize/resume` for the parked request `id`.
pub fn resume_url(state: &AppState, id: &str) -> String {
    let mut location =
        url::Url::parse(&state.settings.endpoint_url(paths::AUTHORIZE_RESUME)).expect("issuer URL");
    location.query_pairs_mut().append_pair("request", id);
    location.into()
}

/// The session cookie and the (renewed) device cookie of a finished sign-in.
pub fn signed_in_cookies(
    state: &AppState,
    signed_in: SignedIn,
) -> [actix_web::cookie::Cookie<'static>; 2] {
    [
        cookies::build(&state.settings, cookies::SESSION, signed_in.session),
        cookies::lasting(
            &state.settings,
            cookies::DEVICE,
            signed_in.device,
            devices::LIFETIME,
        ),
    ]
}

/// How a sign-in ends, inside the caller's database call: its throttle slots freed, a new
/// device id for the browser (nothing an attacker planted in it becomes trusted; it carries the
/// browser's earlier trust), the session started (ending `previous`), and the parked request
/// `parked_hash` told that this sign-in was made for it (only this one satisfies its
/// `prompt=login` / `max_age`, SECURITY.md 26).
pub struct Completion<'a> {
    pub reservation: &'a throttle::Reservation,
    pub user: UserRow,
    pub device_hash: Option<&'a str>,
    pub previous: Option<&'a str>,
    pub amr: Vec<String>,
    pub origin: &'a session::Origin,
    pub parked_hash: &'a str,
}

pub fn complete(
    conn: &mut AnyConnection,
    c: Completion<'_>,
    now: i64,
    lifetime: i64,
) -> Result<SignedIn, StorageError> {
    // One transaction (its first statement a write, so SQLite takes the write lock at once and
    // never finds its snapshot stale): one commit instead of one per statement, and no half
    // sign-in — slots freed but no session — if the database goes away in between.
    storage::atomically(conn, |conn| {
        throttle::succeeded(conn, c.reservation)?;
        // The audit event: one INSERT on this same connection, no lookup (the user is at hand).
        audit::Event::new(
            audit::EventType::SigninSucceeded,
            audit::Actor::user(&c.user),
        )
        .target(c.user.username.as_str())
        .from(&c.origin.client_address)
        .details(serde_json::json!({ "amr": c.amr }))
        .record(conn, now)?;
        let device = random::secret_256();
        devices::renew(
            conn,
            c.device_hash,
            &session::hash_id(&device),
            &c.user.id,
            now,
        )?;
        let (session, started) =
            session::start(conn, c.user, c.previous, now, lifetime, c.amr, c.origin)?;
        auth_requests::finish_second_step(conn, c.parked_hash, &started.sid)?;
        Ok(SignedIn { session, device })
    })
}

/// A password check that holds its slots (`throttle::reserve`).
pub enum Verified {
    /// Whether it matched; the slots, for the outcome.
    Checked(bool, throttle::Reservation),
    /// The password pool was full: the check never ran and its slots were given back.
    Busy,
}

/// Checks `password` against `phc` (`None`: the dummy hash) on the pool in `lane` for the
/// client bucket `address`, holding `reservation`. A password over the limit is refused like a
/// wrong one, never hashed (DESIGN.md "Limits"). If the client goes away while this waits, the
/// future is dropped and the pool skips the check; its slots stay taken (an abandoned attempt
/// is still an attempt).
pub async fn verify_reserved(
    state: &AppState,
    reservation: throttle::Reservation,
    password: String,
    phc: Option<String>,
    lane: Lane,
    address: &str,
) -> Result<Verified, StorageError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(Verified::Checked(false, reservation));
    }
    match state.passwords.verify(password, phc, lane, address).await {
        Ok(matches) => Ok(Verified::Checked(matches, reservation)),
        Err(Busy) => {
            state
                .db
                .run(move |conn| throttle::withdrawn(conn, &reservation))
                .await?;
            Ok(Verified::Busy)
        }
    }
}

/// Who is signing in (the user, and whether this browser signed in as them before) and the
/// slots (one database call), the password (the pool), then the outcome (database).
async fn sign_in(state: &AppState, attempt: Attempt) -> Result<Outcome, StorageError> {
    let now = state.clock.now();
    let limits = throttle::limits(&state.settings.login);
    let lifetime = state.settings.sessions.lifetime.as_secs() as i64;
    let Attempt {
        username,
        password,
        address,
        previous,
        device,
        origin,
        parked_hash,
        request,
        minimum_acr,
    } = attempt;
    // The device cookie is kept hashed, like the session id.
    let device_hash = device.as_deref().map(session::hash_id);
    let possible = throttle::could_be_username(&username);
    let address_key = throttle::address_key(&address);
    let (name, hash) = (username.clone(), device_hash.clone());
    // One trip to the database: who this is, then the slots.
    let (user, trusted, reserved) = state
        .db
        .run(move |conn| -> Result<_, StorageError> {
            let user = if possible {
                users::by_username(conn, &name)?
            } else {
                None
            };
            let trusted = match (&user, &hash) {
                (Some(u), Some(h)) => devices::is_trusted(conn, h, &u.id, now)?,
                _ => false,
            };
            // A browser that signed in to this account before is limited by its own key, not
            // the account's: guesses from elsewhere cannot lock its user out (SECURITY.md
            // attack 24).
            let own_key = match &hash {
                Some(hash) if trusted => Some(throttle::device_key(hash)),
                _ if possible => Some(throttle::account_key(&name)),
                _ => None,
            };
            let reserved = throttle::reserve(conn, own_key, address_key, now, limits)?;
            Ok((user, trusted, reserved))
        })
        .await?;
    let reservation = match reserved {
        Ok(reservation) => reservation,
        Err(wait) => return Ok(Outcome::Locked(wait)),
    };
    let lane = if trusted {
        Lane::Priority
    } else {
        Lane::Normal
    };
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let webauthn_on = state.webauthn.is_some();
    let events = state.metrics.events.clone();
    let (matches, reservation) =
        match verify_reserved(state, reservation, password, phc, lane, &address).await? {
            Verified::Checked(matches, reservation) => (matches, reservation),
            Verified::Busy => return Ok(Outcome::Busy),
        };
    state
        .db
        .run(move |conn| match user {
            Some(user) if matches && !user.disabled => {
                let held = factors::held(conn, &user.id, webauthn_on)?;
                let needed = match flow::needed(&request, minimum_acr, held.best()) {
                    Ok(needed) => needed,
                    Err(e) => {
                        throttle::succeeded(conn, &reservation)?;
                        auth_requests::take(conn, &parked_hash)?;
                        return Ok(Outcome::Unmet(e));
                    }
                };
                if held.any() {
                    // Half a sign-in frees its slots but forgets no failure: a password known
                    // to an attacker must not reset the count of wrong codes.
                    storage::atomically(conn, |conn| {
                        throttle::withdrawn(conn, &reservation)?;
                        auth_requests::mark_pending(
                            conn,
                            &parked_hash,
                            &user.id,
                            strength::PWD,
                            now,
                        )
                    })?;
                    return Ok(Outcome::SecondStep {
                        offer: Offer::of(&held, &needed),
                        username: user.username,
                    });
                }
                let completion = Completion {
                    reservation: &reservation,
                    user,
                    device_hash: device_hash.as_deref(),
                    previous: previous.as_deref(),
                    amr: strength::amr(&[strength::PWD]),
                    origin: &origin,
                    parked_hash: &parked_hash,
                };
                complete(conn, completion, now, lifetime).map(Outcome::SignedIn)
            }
            _ => storage::atomically(conn, |conn| {
                let locked = throttle::failed(conn, &reservation, now, limits)?;
                events.lockouts(locked.len());
                for key in &locked {
                    tracing::info!(%key, "sign-ins locked out after repeated failures");
                }
                // A name that cannot be a user's is not kept (it may be anything typed).
                let name = possible.then_some(username.as_str());
                audit::sign_in_failure(
                    user.as_ref(),
                    name,
                    &origin.client_address,
                    "password",
                    &locked,
                )
                .record_failure(conn, now)?;
                Ok(Outcome::Failed)
            }),
        })
        .await
}
