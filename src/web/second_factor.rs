//! The second step of a sign-in (DESIGN.md "Second factors and the account page"): after the
//! right password of a user who holds a second factor, or when a session is weaker than a
//! request needs (step-up), the person gives a one-time code in the field `otp` — a TOTP code
//! (each accepted once) or a recovery code (spent). A wrong code is a failed sign-in: it takes
//! the same throttle slots as a password and counts toward the same lockout (SECURITY.md 31).
//! The page also answers `/login/enrol`, for a client whose `minimum_acr` the user cannot
//! reach yet.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::flow::{self, Parked, Pending, SECOND_STEP_TTL};
use super::login::{self, Completion, SignedIn};
use super::session::{self, Session};
use super::strength::{self, Acr};
use super::{client_address, cookies, forms, throttle};
use crate::audit;
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::{csp_with_form_target, login_csp, render_with_csp};
use crate::endpoints::paths;
use crate::factors;
use crate::metrics::SignIn;
use crate::oauth::authorize_request::AuthorizationRequest;
use crate::oauth::client_metadata::Client;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::{self, auth_requests, users, StorageError};

/// The one message for a wrong, reused or malformed code.
pub const WRONG_CODE: &str = "That code is not right. Try the current code, or a recovery code.";
/// Longer than any code: refused unchecked.
const MAX_CODE_BYTES: usize = 64;

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    client_name: &'a str,
    username: &'a str,
    request_id: &'a str,
    csrf_token: &'a str,
    error: Option<String>,
    offer: Offer,
}

/// What the second-step page offers the pending user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offer {
    /// "Use a passkey" (the user holds one and passkeys are on).
    pub passkey: bool,
    /// The `otp` form (the user holds TOTP or recovery codes, and the request does not need
    /// `phr`, which no code reaches).
    pub otp: bool,
}

impl Offer {
    /// What the second step offers a user holding `held` for a request that needs `needed`:
    /// the passkey button when they hold one (and passkeys are on: `factors::held`), the code
    /// form unless the request needs `phr` (`Enrol(phr)` included: a user without a passkey yet
    /// gives a code and is led on to enrolment).
    pub fn of(held: &factors::Held, needed: &flow::Needed) -> Self {
        Offer {
            passkey: held.passkeys > 0,
            otp: held.otp() && !matches!(needed, flow::Needed::Level(Acr::Phr)),
        }
    }
}

/// What the parked request's second step offers `user_id`, and their username (`None` when
/// the user is gone or disabled), in one database call.
async fn offer_and_name(
    state: &AppState,
    parked: &Parked,
    client: &Client,
    user_id: &str,
) -> Result<(Offer, Option<String>), OAuthError> {
    let (id, webauthn_on) = (user_id.to_string(), state.webauthn.is_some());
    let (held, user) = state
        .db
        .run(move |c| {
            Ok::<_, StorageError>((factors::held(c, &id, webauthn_on)?, users::by_id(c, &id)?))
        })
        .await?;
    let needed = flow::needed(&parked.request, client.metadata.minimum_acr, held.best())?;
    let name = user.filter(|u| !u.disabled).map(|u| u.username);
    Ok((Offer::of(&held, &needed), name))
}

/// The second-step page for a user who has just given the right password: the answer to that
/// POST itself, so the second step costs one request (the code's), not a redirect and a GET
/// too. The page at `GET /login/factor` is the same (a reload, a step-up).
pub fn first_page(
    client: &Client,
    parked: &Parked,
    csrf_token: &str,
    username: &str,
    offer: Offer,
) -> HttpResponse {
    render(
        StatusCode::OK,
        client,
        parked,
        csrf_token,
        username,
        None,
        offer,
    )
}

/// The answer to a code when the page offers none (the request needs a passkey).
pub const PASSKEY_NEEDED: &str = "This sign-in needs a passkey: use your passkey to continue.";

#[derive(Template)]
#[template(path = "enrol_factor.html")]
struct EnrolPage<'a> {
    client_name: &'a str,
    username: &'a str,
    request_id: &'a str,
    level: &'a str,
    what: &'a str,
}

/// The pending second step of `parked`, unless it is missing or too old.
pub fn live(parked: &Parked, now: i64) -> Option<&Pending> {
    parked
        .pending
        .as_ref()
        .filter(|p| now - p.since <= SECOND_STEP_TTL)
}

fn render(
    status: StatusCode,
    client: &Client,
    parked: &Parked,
    csrf_token: &str,
    username: &str,
    error: Option<String>,
    offer: Offer,
) -> HttpResponse {
    let page = SecondFactorPage {
        client_name: client.display_name(),
        username,
        request_id: &parked.id,
        csrf_token,
        error,
        offer,
    };
    // The passkey button's script and its requests only when it is offered.
    let csp = if offer.passkey {
        login_csp(&parked.request.redirect_uri)
    } else {
        csp_with_form_target(&parked.request.redirect_uri)
    };
    render_with_csp(status, &page, &csp)
}

/// GET /login/factor?request=ID
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let at = match forms::page_request(&req, &state).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let Some(pending) = live(&at.parked, state.clock.now()) else {
        return flow::to_page(&state, paths::LOGIN, &at.parked.id);
    };
    match offer_and_name(&state, &at.parked, &at.client, &pending.user_id).await {
        Ok((offered, Some(username))) => render(
            StatusCode::OK,
            &at.client,
            &at.parked,
            &at.csrf,
            &username,
            None,
            offered,
        ),
        Ok((_, None)) => flow::to_page(&state, paths::LOGIN, &at.parked.id),
        Err(e) => page(&e),
    }
}

/// POST /login/factor. Like the password form, every answer but a sign-in waits in the tarpit.
pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    // Boxed: freed when done, not kept through the wait (see `login::held_unless`).
    let response = Box::pin(answer(&req, &body, &state)).await;
    login::held_unless(&state, body, response, login::onwards).await
}

enum Outcome {
    SignedIn(SignedIn),
    /// A step-up made the browser's session stronger.
    Strengthened,
    /// The request needs what no code gives (`phr`), or the user holds no code factor.
    CodeNotOffered,
    /// The request needs more than the user can give.
    Unmet(OAuthError),
    Failed,
    Locked(i64),
    /// The first step has to be made again (the user went, or the session did).
    Restart,
}

async fn answer(req: &HttpRequest, body: &[u8], state: &web::Data<AppState>) -> HttpResponse {
    let (params, parked) = match forms::check(req, state, body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let Some(pending) = live(&parked, now).cloned() else {
        return flow::to_page(state, paths::LOGIN, &parked.id);
    };
    let client = match known_client(state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    // A step-up (no password in this flow) strengthens the browser's own session, which must
    // still be the pending user's.
    let step_up = pending.amr.is_empty();
    let current = if step_up {
        match session::current(req, state).await {
            Ok(Some(s)) if s.user.id == pending.user_id => Some(s),
            Ok(_) => return flow::to_page(state, paths::LOGIN, &parked.id),
            Err(e) => return page(&e.into()),
        }
    } else {
        None
    };
    let csrf = params.get("csrf_token").unwrap_or("");
    let address = client_address::of(req, &state.settings.http.trusted_proxies);
    let step = Step {
        otp: params.get("otp").unwrap_or("").to_string(),
        pending,
        current,
        address_key: throttle::address_key(&address.throttle_bucket()),
        origin: session::Origin::of(req, address.to_string()),
        previous: cookies::read(req, &state.settings, cookies::SESSION),
        device_hash: cookies::read(req, &state.settings, cookies::DEVICE)
            .as_deref()
            .map(session::hash_id),
        parked_hash: flow::hash(&parked.id),
        request: parked.request.clone(),
        minimum_acr: client.metadata.minimum_acr,
    };
    let user_id = step.pending.user_id.clone();
    let (outcome, name, offered) = match verify(state, step).await {
        Ok(verified) => verified,
        Err(e) => return page(&OAuthError::from(e)),
    };
    let counted = match outcome {
        Outcome::SignedIn(_) => Some(SignIn::Ok),
        Outcome::Failed => Some(SignIn::SecondFactorFailed),
        Outcome::Locked(_) => Some(SignIn::Locked),
        // A step-up strengthens a session already signed in; the others check no code.
        Outcome::Strengthened | Outcome::Unmet(_) | Outcome::CodeNotOffered | Outcome::Restart => {
            None
        }
    };
    if let Some(counted) = counted {
        state.metrics.events.sign_in(counted);
    }
    let name = name.as_deref().unwrap_or(&user_id);
    let refused = |status, message: String| {
        render(status, &client, &parked, csrf, name, Some(message), offered)
    };
    match outcome {
        Outcome::SignedIn(signed_in) => login::to_resume(state, &parked.id, signed_in),
        Outcome::Strengthened => flow::to_page(state, paths::AUTHORIZE_RESUME, &parked.id),
        Outcome::Restart => flow::to_page(state, paths::LOGIN, &parked.id),
        Outcome::Unmet(e) => page(&e),
        // Enforced here, not only by the page: no code reaches phr, so none is taken when the
        // request needs it (nor from a user without TOTP or recovery codes).
        Outcome::CodeNotOffered => refused(StatusCode::BAD_REQUEST, PASSKEY_NEEDED.to_string()),
        Outcome::Failed => refused(StatusCode::UNAUTHORIZED, WRONG_CODE.to_string()),
        Outcome::Locked(wait) => {
            let minutes = (wait + 59) / 60;
            let mut response = refused(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed sign-ins. Try again in {minutes} minute(s)."),
            );
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(wait.max(1)),
            );
            response
        }
    }
}

/// One second step, as the form and the browser's cookies gave it.
struct Step {
    otp: String,
    pending: Pending,
    current: Option<Session>,
    address_key: String,
    origin: session::Origin,
    previous: Option<String>,
    device_hash: Option<String>,
    parked_hash: String,
    /// What the parked request needs, for what the step offers.
    request: AuthorizationRequest,
    minimum_acr: Option<Acr>,
}

/// What the step offers, the slots, the code and the outcome, in one database call; also
/// returns the username and the offer (for the page of a refusal).
async fn verify(
    state: &AppState,
    step: Step,
) -> Result<(Outcome, Option<String>, Offer), StorageError> {
    let now = state.clock.now();
    let limits = throttle::limits(&state.settings.login);
    let lifetime = state.settings.sessions.lifetime.as_secs() as i64;
    let master = state.master.clone();
    let webauthn_on = state.webauthn.is_some();
    let events = state.metrics.events.clone();
    state
        .db
        .run(move |conn| {
            let Step {
                otp,
                pending,
                current,
                address_key,
                origin,
                previous,
                device_hash,
                parked_hash,
                request,
                minimum_acr,
            } = step;
            let Some(user) = users::by_id(conn, &pending.user_id)?.filter(|u| !u.disabled) else {
                return Ok((Outcome::Restart, None, Offer::default()));
            };
            let name = Some(user.username.clone());
            let held = factors::held(conn, &user.id, webauthn_on)?;
            let offer = match flow::needed(&request, minimum_acr, held.best()) {
                Ok(needed) => Offer::of(&held, &needed),
                Err(e) => return Ok((Outcome::Unmet(e), name, Offer::default())),
            };
            if !offer.otp {
                return Ok((Outcome::CodeNotOffered, name, offer));
            }
            let own_key = throttle::own_key_of(conn, &user, device_hash.as_deref(), now)?;
            // The slots, the code and the outcome in one transaction (its first statement the
            // reservation's write): one commit, and SQLite's write lock taken at once.
            storage::atomically(conn, |conn| {
                let reservation =
                    match throttle::reserve(conn, Some(own_key), address_key, now, limits)? {
                        Ok(r) => r,
                        Err(wait) => return Ok((Outcome::Locked(wait), name, offer)),
                    };
                let right = otp.len() <= MAX_CODE_BYTES
                    && factors::check_otp(conn, &master, &user.id, &otp, now)?;
                if !right {
                    let locked = throttle::failed(conn, &reservation, now, limits)?;
                    events.lockouts(locked.len());
                    for key in &locked {
                        tracing::info!(%key, "sign-ins locked out after repeated failures");
                    }
                    audit::sign_in_failure(
                        Some(&user),
                        None,
                        &origin.client_address,
                        "otp",
                        &locked,
                    )
                    .record_failure(conn, now)?;
                    return Ok((Outcome::Failed, name, offer));
                }
                // A step-up adds the code to the session's own methods.
                let given = current.as_ref().map_or(&pending.amr, |s| &s.amr);
                let mut methods: Vec<&str> = given.iter().map(String::as_str).collect();
                methods.push(strength::OTP);
                let amr = strength::amr(&methods);
                if let Some(mut session) = current {
                    throttle::succeeded(conn, &reservation)?;
                    session::strengthen(conn, &mut session, amr, now)?;
                    auth_requests::finish_second_step(conn, &parked_hash, &session.sid)?;
                    audit::Event::new(audit::EventType::SigninSteppedUp, audit::Actor::user(&user))
                        .target(user.username.as_str())
                        .from(&origin.client_address)
                        .details(serde_json::json!({ "method": "otp", "acr": session.acr }))
                        .record(conn, now)?;
                    return Ok((Outcome::Strengthened, name, offer));
                }
                let completion = Completion {
                    reservation: &reservation,
                    user,
                    device_hash: device_hash.as_deref(),
                    previous: previous.as_deref(),
                    amr,
                    origin: &origin,
                    parked_hash: &parked_hash,
                };
                let signed_in = login::complete(conn, completion, now, lifetime)?;
                Ok((Outcome::SignedIn(signed_in), name, offer))
            })
        })
        .await
}

/// GET /login/enrol?request=ID: the client needs a level the signed-in user has no factor for.
pub async fn enrol(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let at = match forms::page_request(&req, &state).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let session = match session::current(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => return flow::to_page(&state, paths::LOGIN, &at.parked.id),
        Err(e) => return page(&e.into()),
    };
    let minimum = at.client.metadata.minimum_acr.unwrap_or(Acr::Mfa);
    let (level, what) = match minimum {
        Acr::Phr => ("phishing-resistant", "a passkey"),
        _ => ("two-step", "an authenticator app (or a passkey)"),
    };
    let page = EnrolPage {
        client_name: at.client.display_name(),
        username: &session.user.username,
        request_id: &at.parked.id,
        level,
        what,
    };
    render_with_csp(
        StatusCode::OK,
        &page,
        &csp_with_form_target(&at.parked.request.redirect_uri),
    )
}
