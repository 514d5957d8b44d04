//! The console's signing keys: each algorithm's `next`, `active` and `retiring` keys with their
//! dates, when the next key may sign and when the schedule will rotate; rotate (all algorithms
//! or one) and retire. A rotation refused because the next key has not been published for
//! 2 × `keys.jwks_max_age` explains that rule and offers "force" as a deliberate second step
//! (for a compromised active key), never as the first answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{change, done, page, viewer, Admin, Chrome};
use crate::admin::keys::{self as admin_keys, AlgorithmSchedule};
use crate::clock::rfc3339;
use crate::crypto::keys::SigningAlg;
use crate::crypto::rotation::{self, KeyError, Lifecycle};
use crate::crypto::schedule::Schedule;
use crate::state::AppState;
use crate::storage::signing_keys::{self, KeyRow};
use crate::storage::StorageError;
use crate::web::first_party::failed;

const PATH: &str = "/admin/keys";

struct KeyView {
    kid: String,
    state: String,
    created: String,
    activated: String,
    retire_after: String,
}

struct AlgView {
    alg: String,
    keys: Vec<KeyView>,
    /// When the next key has been published long enough to sign.
    next_ready: String,
    /// When the schedule rotates (the active key's activation + `keys.rotation_period`).
    rotation_due: String,
}

/// A rotation refused as too early: what to say, and the `force` form to offer.
struct TooEarly {
    alg: String,
    published: i64,
    required: i64,
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
struct KeysPage {
    chrome: Chrome,
    algs: Vec<AlgView>,
    max_age: String,
    period: String,
    too_early: Option<TooEarly>,
    /// The algorithm the refused rotation asked for ("" for all).
    asked: String,
}

/// GET /admin/keys
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let chrome = admin.chrome("keys", &req, &state);
    render(&state, chrome, StatusCode::OK, None, String::new()).await
}

async fn render(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    too_early: Option<TooEarly>,
    asked: String,
) -> HttpResponse {
    let rows = match state.db.run(signing_keys::all).await {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    let schedule = Schedule::from_settings(&state.settings);
    let overview = admin_keys::overview(&rows, &schedule, state.clock.now());
    let algs = overview
        .algorithms
        .into_iter()
        .map(|timing| alg_view(timing, &rows))
        .collect();
    let view = KeysPage {
        chrome,
        algs,
        max_age: state.settings.keys.jwks_max_age.to_string(),
        period: state.settings.keys.rotation_period.to_string(),
        too_early,
        asked,
    };
    page(status, &view)
}

fn alg_view(timing: AlgorithmSchedule, rows: &[KeyRow]) -> AlgView {
    let order = |s: &str| match s {
        "next" => 0,
        "active" => 1,
        _ => 2,
    };
    let mut mine: Vec<&KeyRow> = rows
        .iter()
        .filter(|r| r.alg == timing.alg && r.state != "retired")
        .collect();
    mine.sort_by_key(|r| (order(&r.state), r.created_at));
    let when = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "—".into());
    let or_dash = |t: Option<String>| t.unwrap_or_else(|| "—".into());
    AlgView {
        keys: mine
            .into_iter()
            .map(|r| KeyView {
                kid: r.kid.clone(),
                state: r.state.clone(),
                created: rfc3339(r.created_at),
                activated: when(r.activated_at),
                retire_after: when(r.retire_after),
            })
            .collect(),
        next_ready: or_dash(timing.next_may_sign_at),
        rotation_due: or_dash(timing.rotation_due_at),
        alg: timing.alg,
    }
}

/// POST /admin/keys/rotate, fields `alg` (empty: every algorithm) and `force` (`yes`).
pub async fn rotate(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let asked = params.get("alg").unwrap_or("").to_string();
    let algs = if asked.is_empty() {
        SigningAlg::ALL.to_vec()
    } else {
        match asked.parse::<SigningAlg>() {
            Ok(alg) => vec![alg],
            Err(_) => {
                let chrome = admin.chrome("keys", &req, &state).with_error(format!(
                    "There is no algorithm {asked:?}. Nothing was changed."
                ));
                return render(&state, chrome, StatusCode::BAD_REQUEST, None, String::new()).await;
            }
        }
    };
    let force = params.get("force") == Some("yes");
    let (db, master, by) = (state.db.clone(), state.master.clone(), admin.by.clone());
    let lifecycle = Lifecycle::from_settings(&state.settings);
    let now = state.clock.now();
    // Key generation (RSA) and the transaction run off the async workers.
    let rotated =
        web::block(move || rotation::rotate(&db, &master, lifecycle, &algs, force, now, &by)).await;
    match rotated {
        Ok(Ok(_)) => {
            admin_keys::reload(&state).await;
            done(&state, PATH, "keys-rotated")
        }
        Ok(Err(KeyError::TooEarly {
            alg,
            published,
            required,
            ..
        })) => {
            let chrome = admin.chrome("keys", &req, &state).with_error(
                "The keys were not rotated: a next key has not been published long enough yet. \
                 Nothing was changed.",
            );
            let too_early = TooEarly {
                alg: alg.to_string(),
                published,
                required,
            };
            render(&state, chrome, StatusCode::CONFLICT, Some(too_early), asked).await
        }
        Ok(Err(e)) => refused(&req, &state, &admin, e).await,
        Err(_) => failed(StorageError::Canceled),
    }
}

/// POST /admin/keys/retire, field `kid`.
pub async fn retire(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let kid = params.get("kid").unwrap_or("").to_string();
    let (db, master, by) = (state.db.clone(), state.master.clone(), admin.by.clone());
    let now = state.clock.now();
    match web::block(move || rotation::retire(&db, &master, &kid, now, &by)).await {
        Ok(Ok(_)) => {
            admin_keys::reload(&state).await;
            done(&state, PATH, "key-retired")
        }
        Ok(Err(e)) => refused(&req, &state, &admin, e).await,
        Err(_) => failed(StorageError::Canceled),
    }
}

/// The keys page with why the change was refused, or Sigil's failure.
async fn refused(req: &HttpRequest, state: &AppState, admin: &Admin, e: KeyError) -> HttpResponse {
    let message = super::sentence(&e.to_string());
    let status = match e {
        KeyError::Storage(s) => return failed(s),
        KeyError::Generate(_) => StatusCode::INTERNAL_SERVER_ERROR,
        KeyError::UnknownKey(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    let chrome = admin.chrome("keys", req, state).with_error(message);
    render(state, chrome, status, None, String::new()).await
}
