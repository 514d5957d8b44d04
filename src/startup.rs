//! `Application::build(settings)`: opens storage, prepares keys and documents, binds the
//! listener (port 0 picks a free one) and holds the one route table.

use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};

use crate::admin::clients::ClientCache;
use crate::bootstrap::Core;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::keyring::{KeySnapshot, Keyring};
use crate::crypto::master_key::MasterKey;
use crate::crypto::password::PasswordPool;
use crate::crypto::rotation;
use crate::endpoints::{
    authorize, discovery, health, introspection, jwks, pages, par, paths, revocation, token,
    userinfo,
};
use crate::published::Published;
use crate::state::AppState;
use crate::storage::maintenance::{self, Horizon, Limits};
use crate::storage::{signing_keys, Database};
use crate::tokens::verdicts::{RevisionWatcher, Verdicts};
use crate::web::{account, consent, login, logout, second_factor};

pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own listener (`metrics.bind`).
    metrics_server: Option<Server>,
    state: web::Data<AppState>,
    refresher: KeyRefresher,
    watcher: RevisionWatcher,
    maintenance: Maintenance,
}

impl Application {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind)?;
        Self::build_with(settings, Clock::system(), listener)
    }

    /// Builds on a listener bound by the caller (tests bind port 0 first, so that the issuer
    /// can name the real port) with the given clock.
    pub fn build_with(
        mut settings: Settings,
        clock: Clock,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        settings.validate()?;
        // Bound first, like the public listener; the settings then name the real port.
        let metrics_listener = match settings.metrics.bind {
            Some(addr) => {
                let bound = TcpListener::bind(addr)
                    .map_err(|e| anyhow::anyhow!("metrics.bind {addr}: {e}"))?;
                settings.metrics.bind = Some(bound.local_addr()?);
                Some(bound)
            }
            None => None,
        };
        let core = Core::open(&settings)?;
        let created = rotation::ensure_keys(&core.db, &core.master, clock.now())?;
        if !created.is_empty() {
            tracing::info!(keys = ?created, "created signing keys");
        }
        for site in [&crate::web::account::SITE, &crate::web::console::SITE] {
            let registered = core
                .db
                .with_conn(|c| site.ensure_client(c, &core.master, &settings, clock.now()))?;
            if registered {
                tracing::info!(client_id = site.client_id, "registered Sigil's own client");
            }
        }
        let snapshot = load_snapshot(&core.db, &core.master)?;
        let keyring = Arc::new(Keyring::new(snapshot));
        let discovery = Published::new(serde_json::to_vec(&discovery::document(&settings))?);
        let max_age = settings.keys.jwks_max_age.as_secs();
        let clients = ClientCache::new(settings.clients.cache_ttl.as_secs() as i64);
        let outbound = crate::outbound::Outbound::new(&settings.outbound)?;
        let verdicts = Arc::new(Verdicts::new());
        verdicts.refresh(&core.db)?;
        let resources = crate::admin::resources::ResourceCache::new(
            settings.clients.cache_ttl.as_secs() as i64,
        );
        // One thread per core (SCHED_IDLE: they take only what request handling leaves), at
        // most 8 (19 MiB each while hashing).
        let passwords = PasswordPool::start(
            std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8)),
            settings.login.pending_limit(),
        );
        // Passkeys (WebAuthn): the relying party is the issuer.
        let webauthn = crate::web::passkeys::relying_party(&settings.issuer);
        let max_jtis = settings.dpop.max_jtis;
        let state = web::Data::new(AppState {
            outbound,
            verdicts: verdicts.clone(),
            encryption_keys: Default::default(),
            metrics: Default::default(),
            client_keys: Default::default(),
            clients,
            resources,
            db: core.db.clone(),
            master: core.master.clone(),
            keyring: keyring.clone(),
            clock: clock.clone(),
            discovery,
            discovery_cache_control: HeaderValue::from_str(&format!("public, max-age={max_age}"))?,
            jwks_cache_control: HeaderValue::from_str(&format!("public, max-age={max_age}"))?,
            settings: Arc::new(settings),
            passwords,
            tarpit: Default::default(),
            webauthn,
            dpop: crate::oauth::dpop::Dpop::new(
                core.master.derive(b"sigil dpop nonce v1"),
                max_jtis,
            ),
        });
        let port = listener.local_addr()?.port();
        let server = serve(listener, state.clone())?;
        let metrics_server = metrics_listener
            .map(|l| crate::metrics::server(l, state.clone()))
            .transpose()?;
        let watcher = RevisionWatcher::start(
            core.db.clone(),
            verdicts,
            state.settings.tokens.revocation_poll.0,
        );
        let refresher = KeyRefresher::start(
            core.db,
            core.master,
            keyring,
            clock,
            state.settings.keys.refresh_interval.0,
            crate::crypto::schedule::Schedule::from_settings(&state.settings),
        );
        let maintenance = Maintenance::start(state.clone());
        tracing::info!(
            issuer = %state.settings.issuer_str(),
            bind = %state.settings.bind,
            port,
            metrics = ?state.settings.metrics.bind,
            database = ?state.db.url(),
            "sigil is listening"
        );
        Ok(Self {
            port,
            server,
            metrics_server,
            state,
            refresher,
            watcher,
            maintenance,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests that move the clock or inspect keys.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM / SIGINT (graceful: in-flight requests finish).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let _refresher = self.refresher;
        let _watcher = self.watcher;
        let _maintenance = self.maintenance;
        let Some(metrics) = self.metrics_server else {
            return self.server.await;
        };
        // The metrics listener takes no signals; it stops when the public server has.
        let handle = metrics.handle();
        let public = async {
            let stopped = self.server.await;
            handle.stop(true).await;
            stopped
        };
        let (public, metrics) = tokio::join!(public, metrics);
        public.and(metrics)
    }
}

/// How long an idle keep-alive connection is kept (actix's default, written out because the
/// slow-client watchdog counts on it).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

fn serve(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let settings = state.settings.clone();
    let body_timeout = settings.http.request_timeout.0;
    let mut server = HttpServer::new(move || {
        // Each worker counts in its own shard of the metrics.
        let counted = state.metrics.shard();
        App::new()
            .app_data(state.clone())
            // DESIGN.md "Limits": every body Sigil reads, page forms and /authorize included.
            .app_data(web::PayloadConfig::new(state.settings.http.max_body_bytes))
            // Innermost, so that a 408 is counted and carries the headers below.
            .wrap_fn(move |req, srv| crate::deadline::body_deadline(body_timeout, req, srv))
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap_fn(move |req, srv| {
                let started = std::time::Instant::now();
                let fut = srv.call(req);
                let counted = counted.clone();
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16();
                    let request = res.request();
                    counted.record(
                        request.path(),
                        || request.match_pattern(),
                        status,
                        started.elapsed(),
                    );
                    if status >= 500 || tracing::enabled!(tracing::Level::DEBUG) {
                        let (method, path) = (res.request().method(), res.request().path());
                        let ms = started.elapsed().as_secs_f64() * 1e3;
                        // Paths only: query strings can carry codes and tokens. A 503 (the
                        // database is down, the password queue is full) is expected under
                        // its cause, which is logged once where it is seen.
                        if status >= 500 && status != 503 {
                            tracing::warn!(%method, %path, status, ms, "request");
                        } else {
                            tracing::debug!(%method, %path, status, ms, "request");
                        }
                    }
                    Ok(res)
                }
            })
            .configure(routes)
            .configure(|cfg| {
                // DESIGN.md "Operations": with `metrics.bind`, not here (404).
                if state.settings.metrics.bind.is_none() {
                    cfg.service(
                        web::resource(paths::METRICS).route(web::get().to(crate::metrics::metrics)),
                    );
                }
            })
            // Outermost: its span holds every line logged while the request is handled.
            .wrap(actix_web::middleware::Condition::new(
                state.settings.log.access,
                crate::web::access_log::AccessLog::new(&state.settings.http.trusted_proxies),
            ))
    })
    .shutdown_timeout(settings.http.shutdown_timeout.as_secs())
    // The request head (line and headers) within `http.header_timeout`, else 408 and closed;
    // the body is bounded by `crate::deadline`. A connection whose answer went out before its
    // body was read lingers at most a second.
    .client_request_timeout(settings.http.header_timeout.0)
    .client_disconnect_timeout(Duration::from_secs(1))
    // An idle connection closes after this; one answered that then trickles its next head is
    // closed by the watchdog after this plus `http.header_timeout`.
    .keep_alive(KEEP_ALIVE)
    .on_connect(crate::deadline::watchdog(
        KEEP_ALIVE + settings.http.header_timeout.0,
    ))
    // A client that closes its connection has gone: its request's handler is dropped (and a
    // password check it waited for is never hashed) instead of running to an unread answer.
    .h1_allow_half_closed(false);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    let server = match (&settings.tls.cert, &settings.tls.key) {
        (Some(cert), Some(key)) => server.listen_openssl(listener, tls_acceptor(cert, key)?)?,
        _ => server.listen(listener)?,
    };
    Ok(server.run())
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<openssl::ssl::SslAcceptorBuilder> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    builder.set_private_key_file(key, SslFiletype::PEM)?;
    builder.set_certificate_chain_file(cert)?;
    builder.check_private_key()?;
    Ok(builder)
}

/// The one route table.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(paths::OPENID_CONFIGURATION)
            .route(web::get().to(discovery::openid_configuration)),
    )
    .service(
        web::resource(paths::OAUTH_METADATA).route(web::get().to(discovery::openid_configuration)),
    )
    .service(web::resource(paths::JWKS).route(web::get().to(jwks::jwks)))
    .service(web::resource(paths::TOKEN).route(web::post().to(token::token)))
    .service(web::resource(paths::PAR).route(web::post().to(par::push)))
    .configure(crate::endpoints::registration::routes)
    .service(
        web::resource(paths::DEVICE_AUTHORIZATION)
            .route(web::post().to(crate::endpoints::device_authorization::authorize)),
    )
    .service(
        web::resource(paths::DEVICE)
            .route(web::get().to(crate::web::device::show))
            .route(web::post().to(crate::web::device::submit)),
    )
    .service(web::resource(paths::INTROSPECTION).route(web::post().to(introspection::introspect)))
    .service(
        web::resource(paths::END_SESSION)
            .route(web::get().to(logout::get))
            .route(web::post().to(logout::post)),
    )
    .service(web::resource(paths::REVOCATION).route(web::post().to(revocation::revoke)))
    .service(
        web::resource(paths::AUTHORIZE)
            .route(web::get().to(authorize::get))
            .route(web::post().to(authorize::post)),
    )
    .service(web::resource(paths::HEALTHZ).route(web::get().to(health::healthz)))
    .service(web::resource(paths::READYZ).route(web::get().to(health::readyz)))
    .service(web::resource(paths::AUTHORIZE_RESUME).route(web::get().to(authorize::resume)))
    .service(
        web::resource(paths::LOGIN)
            .route(web::get().to(login::show))
            .route(web::post().to(login::submit)),
    )
    .service(
        web::resource(paths::LOGIN_FACTOR)
            .route(web::get().to(second_factor::show))
            .route(web::post().to(second_factor::submit)),
    )
    .service(web::resource(paths::LOGIN_ENROL).route(web::get().to(second_factor::enrol)))
    .service(
        web::resource(paths::CONSENT)
            .route(web::get().to(consent::show))
            .route(web::post().to(consent::submit)),
    )
    .service(
        web::resource(paths::USERINFO)
            .route(web::get().to(userinfo::get))
            .route(web::post().to(userinfo::post)),
    )
    .service(web::scope(paths::ADMIN_API).configure(crate::admin::api::routes))
    .service(
        web::resource(crate::admin::users::links::PATH)
            .route(web::get().to(crate::web::password_set::show))
            .route(web::post().to(crate::web::password_set::submit)),
    )
    .configure(crate::web::console::routes)
    .service(web::resource(paths::ACCOUNT).route(web::get().to(account::show)))
    .service(web::resource(paths::ACCOUNT_CALLBACK).route(web::get().to(account::callback)))
    .service(web::resource(paths::ACCOUNT_PASSWORD).route(web::post().to(account::change_password)))
    .service(web::resource(paths::ACCOUNT_END_SESSION).route(web::post().to(account::end_session)))
    .service(
        web::resource(paths::ACCOUNT_END_OTHER_SESSIONS)
            .route(web::post().to(account::end_other_sessions)),
    )
    .service(
        web::resource(paths::ACCOUNT_WITHDRAW_CONSENT)
            .route(web::post().to(account::withdraw_consent)),
    )
    .service(
        web::resource(paths::ACCOUNT_TOTP_START).route(web::post().to(account::factors::start)),
    )
    .service(
        web::resource(paths::ACCOUNT_TOTP_CONFIRM).route(web::post().to(account::factors::confirm)),
    )
    .service(
        web::resource(paths::ACCOUNT_TOTP_REMOVE).route(web::post().to(account::factors::remove)),
    )
    .service(
        web::resource(paths::ACCOUNT_RECOVERY_CODES)
            .route(web::post().to(account::factors::recovery_codes)),
    )
    .service(
        web::resource(paths::ACCOUNT_PASSKEYS_OPTIONS)
            .route(web::post().to(account::passkey_options)),
    )
    .service(web::resource(paths::ACCOUNT_PASSKEYS).route(web::post().to(account::add_passkey)))
    .service(
        web::resource(paths::ACCOUNT_PASSKEYS_REMOVE)
            .route(web::post().to(account::remove_passkey)),
    )
    .service(web::resource(paths::STYLESHEET).route(web::get().to(pages::stylesheet)))
    .service(web::resource(paths::FORM_POST_SCRIPT).route(web::get().to(pages::form_post_script)))
    .service(web::resource(paths::PASSKEY_SCRIPT).route(web::get().to(pages::passkey_script)))
    .service(
        web::resource(paths::LOGIN_PASSKEY_OPTIONS)
            .route(web::post().to(crate::web::passkeys::sign_in::options)),
    )
    .service(
        web::resource(paths::LOGIN_PASSKEY)
            .route(web::post().to(crate::web::passkeys::sign_in::finish)),
    )
    .service(
        web::resource(paths::LOGIN_FACTOR_PASSKEY_OPTIONS)
            .route(web::post().to(crate::web::passkeys::second_step::options)),
    )
    .service(
        web::resource(paths::LOGIN_FACTOR_PASSKEY)
            .route(web::post().to(crate::web::passkeys::second_step::finish)),
    );
}

pub fn load_snapshot(db: &Database, master: &MasterKey) -> anyhow::Result<KeySnapshot> {
    let rows = db.with_conn(signing_keys::published)?;
    Ok(KeySnapshot::build(&rows, master)?)
}

/// A thread that re-reads the key table every `keys.refresh_interval` and swaps in a new
/// snapshot when it changed (another node or the CLI rotated) and retires keys whose tokens
/// have all expired; beside it runs the rotation schedule (`crypto::schedule`). Both stop when
/// the application is dropped.
struct KeyRefresher {
    _stop: mpsc::Sender<()>,
    _scheduler: crate::crypto::schedule::Scheduler,
}

impl KeyRefresher {
    fn start(
        db: Database,
        master: MasterKey,
        keyring: Arc<Keyring>,
        clock: Clock,
        every: Duration,
        schedule: crate::crypto::schedule::Schedule,
    ) -> Self {
        let scheduler = schedule
            .spawn(db.clone(), master.clone(), clock.clone(), every)
            .expect("spawn the key rotation thread");
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sigil-keys".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = refresh(&db, &master, &keyring, &clock) {
                        if db.is_reachable() {
                            tracing::warn!(error = %e, "key refresh failed; keeping the current keys");
                        } else {
                            tracing::debug!(error = %e, "key refresh failed; keeping the current keys");
                        }
                    }
                }
            })
            .expect("spawn the key refresh thread");
        Self {
            _stop: stop,
            _scheduler: scheduler,
        }
    }
}

fn refresh(
    db: &Database,
    master: &MasterKey,
    keyring: &Keyring,
    clock: &Clock,
) -> anyhow::Result<()> {
    let current = keyring.current();
    let now = clock.now();
    if current.next_retirement.is_some_and(|t| t <= now) {
        let n = rotation::retire_expired(db, now)?;
        if n > 0 {
            tracing::info!(count = n, "retired keys whose tokens have all expired");
        }
    }
    let mut states = db.with_conn(signing_keys::published_states)?;
    states.sort();
    if states != current.fingerprint {
        keyring.replace(load_snapshot(db, master)?);
        tracing::info!("signing keys changed; JWKS updated");
    }
    Ok(())
}

/// The thread that purges what has expired (`storage::maintenance`) every
/// `maintenance.interval`, on every node, apart from everything else: a purge that fails is
/// logged at WARN with its table, counted (`sigil_purge_failures_total`) and retried at the
/// next interval, and holds up neither the other tables nor key reloading. Stops when the
/// application is dropped, between two batches at the latest.
struct Maintenance {
    _stop: mpsc::Sender<()>,
}

impl Maintenance {
    fn start(state: web::Data<AppState>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let every = state.settings.maintenance.interval.0;
        std::thread::Builder::new()
            .name("sigil-maintenance".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    purge(&state, &stopped);
                }
            })
            .expect("spawn the maintenance thread");
        Self { _stop: stop }
    }
}

/// One maintenance run over every purged table.
fn purge(state: &AppState, stopped: &mpsc::Receiver<()>) {
    let settings = &state.settings;
    let limits = Limits {
        batch_size: settings.maintenance.batch_size,
        max_batches: maintenance::MAX_BATCHES_PER_RUN,
    };
    let at = || Horizon {
        now: state.clock.now(),
        idle_timeout: settings.sessions.idle_timeout.as_secs() as i64,
        audit_retention: settings.audit.retention.as_secs() as i64,
    };
    // Between batches the lock is free as long as the batch held it, at least 1 ms.
    let pause = |took: Duration| {
        let wait = took.max(Duration::from_millis(1));
        matches!(
            stopped.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    };
    for outcome in maintenance::run(&state.db, at, limits, pause) {
        match outcome.result {
            Ok(rows) => {
                state.metrics.purges.purged(outcome.table, rows);
                if rows > 0 {
                    tracing::debug!(table = outcome.table, rows, "purged expired rows");
                }
            }
            Err(e) => {
                state.metrics.purges.failed(outcome.table);
                // An unreachable database is reported once by the pool, not per table and run.
                if e.is_unavailable() {
                    tracing::debug!(table = outcome.table, error = %e, "purge failed; retried at the next interval");
                } else {
                    tracing::warn!(table = outcome.table, error = %e, "purge failed; retried at the next interval");
                }
            }
        }
    }
    state.metrics.purges.run_finished();
}
