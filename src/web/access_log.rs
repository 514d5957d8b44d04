//! The access log and request ids.
//!
//! Every request gets an id: the `X-Request-Id` it came with when that is sane (at most
//! [`MAX_REQUEST_ID`] characters from a safe set, so that a client cannot forge log lines or
//! flood them), else a new random one. The id goes back in the `X-Request-Id` response header,
//! and a span named `request` carrying it (`request_id`) is entered while the request is
//! handled, so that every line logged on its way carries the id too.
//!
//! When the answer is ready, one line at INFO on the target `sigil::access` (filter it like any
//! other: `log.level = "info,sigil::access=warn"`) says `method`, `route` (the route table's
//! pattern, such as `/register/{client_id}`: never the path with its ids nor the query string,
//! where codes and tokens travel), `status`, `ms` (latency), `client` (the address after
//! trusted proxies, [`crate::web::client_address`]) and `request_id`. Nothing else of the
//! request is logged: no header, body or parameter.
//!
//! `log.access = false` leaves the middleware out altogether: no line, no id, no span.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;

use crate::config::Cidr;
use crate::web::client_address;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client or proxy.
pub const MAX_REQUEST_ID: usize = 128;

/// The access-log target, for filters.
pub const TARGET: &str = "sigil::access";

/// The middleware (`App::wrap`).
#[derive(Clone)]
pub struct AccessLog {
    trusted_proxies: Arc<[Cidr]>,
}

impl AccessLog {
    pub fn new(trusted_proxies: &[Cidr]) -> Self {
        Self {
            trusted_proxies: trusted_proxies.into(),
        }
    }
}

/// The id to carry: the one given when it is sane, else a new one.
pub fn request_id(given: Option<&HeaderValue>) -> String {
    match given.and_then(|v| v.to_str().ok()) {
        Some(id) if is_sane(id) => id.to_string(),
        _ => new_id(),
    }
}

/// Printable, unquoted, bounded: what a UUID, nginx's `$request_id` or a trace header holds.
fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

/// 64 random bits in hex: unique enough to find a request's lines among a day's.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl<S, B> Transform<S, ServiceRequest> for AccessLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = AccessLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AccessLogService {
            service: Rc::new(service),
            trusted_proxies: self.trusted_proxies.clone(),
        }))
    }
}

pub struct AccessLogService<S> {
    service: Rc<S>,
    trusted_proxies: Arc<[Cidr]>,
}

type Answer<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

impl<S, B> Service<ServiceRequest> for AccessLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Answer<B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let id = request_id(req.headers().get(&REQUEST_ID));
        let span = tracing::error_span!(target: "sigil", "request", request_id = %id);
        let trusted = self.trusted_proxies.clone();
        let answer = {
            let _entered = span.enter();
            self.service.call(req)
        };
        Box::pin(async move {
            let result = answer.instrument(span).await;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            match result {
                Ok(mut res) => {
                    if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
                        let request = res.request();
                        let route = request.match_pattern();
                        let client = client_address::of(request, &trusted);
                        tracing::info!(
                            target: TARGET,
                            method = %request.method(),
                            route = route.as_deref().unwrap_or("-"),
                            status = res.status().as_u16(),
                            ms,
                            client = %client,
                            request_id = %id,
                            "request"
                        );
                    }
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        res.headers_mut().insert(REQUEST_ID, value);
                    }
                    Ok(res)
                }
                // An error that left the inner services (actix renders it further out): the
                // line still goes out, with the status it will be answered with.
                Err(e) => {
                    tracing::info!(
                        target: TARGET,
                        status = e.as_response_error().status_code().as_u16(),
                        ms,
                        request_id = %id,
                        "request"
                    );
                    Err(e)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        for kept in [
            "abc",
            "6f1c2d0e-8a4b-4c3d-9e2f-0a1b2c3d4e5f",
            "Root=1-67891233-abcdef012345678912345678",
        ] {
            assert_eq!(request_id(Some(&HeaderValue::from_static(kept))), kept);
        }
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        let cases: [&[u8]; 6] = [
            b"",
            b"a b",
            b"a\"b",
            b"x\ty",
            b"caf\xc3\xa9",
            long.as_bytes(),
        ];
        for replaced in cases {
            let value = HeaderValue::from_bytes(replaced).unwrap();
            let got = request_id(Some(&value));
            assert_ne!(got.as_bytes(), replaced);
            assert_eq!(got.len(), 16, "{got}");
        }
        assert_eq!(request_id(None).len(), 16);
    }
}
