//! Slow clients. The request head must arrive within `http.header_timeout` (actix answers 408
//! itself), and the body within `http.request_timeout` of the head: a body that arrives too
//! slowly, or never, is answered 408 (RFC 9110 §15.5.9) and its connection closed, so that a
//! client cannot hold a connection and a worker's attention by sending a few bytes now and
//! then. Everything Sigil waits for itself is bounded more tightly (a database connection by
//! `database.acquire_timeout`, a password check by its queue), so the body is what this
//! deadline is for.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures_core::Stream;

/// Middleware (`App::wrap_fn`): the request's body stream fails at the deadline, and whatever
/// the handler made of that failure becomes 408 with `Connection: close`.
pub fn body_deadline<S>(
    limit: Duration,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let expired = Rc::new(Cell::new(false));
    let (http, payload) = req.into_parts();
    // No body announced (most GETs): nothing to wait for.
    let payload = match payload {
        Payload::None => Payload::None,
        payload => {
            let watched: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(Deadline {
                    inner: payload,
                    timer: Box::pin(tokio::time::sleep(limit)),
                    expired: expired.clone(),
                });
            Payload::Stream { payload: watched }
        }
    };
    let call = service.call(ServiceRequest::from_parts(http, payload));
    async move {
        let response = call.await?;
        if !expired.get() {
            return Ok(response);
        }
        tracing::debug!(limit_ms = limit.as_millis() as u64, "request body too slow");
        Ok(response.into_response(
            HttpResponse::RequestTimeout()
                .insert_header((header::CONNECTION, "close"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("the request body did not arrive in time"),
        ))
    }
}

/// A body stream that ends in an error once its time is up.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
    expired: Rc<Cell<bool>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired.get() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.expired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}
