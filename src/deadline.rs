//! Slow clients. The request head must arrive within `http.header_timeout` (actix answers 408
//! itself), and the body within `http.request_timeout` of the head: a body that arrives too
//! slowly, or never, is answered 408 (RFC 9110 §15.5.9) and its connection closed, so that a
//! client cannot hold a connection and a worker's attention by sending a few bytes now and
//! then. Everything Sigil waits for itself is bounded more tightly (a database connection by
//! `database.acquire_timeout`, a password check by its queue), so the body is what this
//! deadline is for.
//!
//! actix bounds the head of a connection's first request only: once a keep-alive connection
//! has been answered, the next head may trickle in for ever. A watchdog per connection
//! (`Watchdog`) closes one that has been answered and has not completed its next request head
//! within the keep-alive wait plus `http.header_timeout`.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{Extensions, Payload, Service, ServiceRequest, ServiceResponse};
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
    let in_request = req.conn_data::<Watched>().map(Watched::begin);
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
        let _in_request = in_request;
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

/// What a connection's watchdog knows: how many of its requests are being handled, and since
/// when it has had none.
struct ConnectionState {
    in_requests: Cell<u32>,
    idle_since: Cell<Instant>,
}

/// Kept in the connection's data (`HttpRequest::conn_data`); the watchdog holds only a weak
/// reference, so that it ends with the connection.
#[derive(Clone)]
pub struct Watched(Rc<ConnectionState>);

impl Watched {
    fn begin(&self) -> InRequest {
        self.0.in_requests.set(self.0.in_requests.get() + 1);
        InRequest(self.0.clone())
    }
}

/// A request being handled; when it ends (answered, or dropped because the client left), the
/// connection is idle again from then on.
struct InRequest(Rc<ConnectionState>);

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0
            .in_requests
            .set(self.0.in_requests.get().saturating_sub(1));
        self.0.idle_since.set(Instant::now());
    }
}

/// `HttpServer::on_connect`: starts the watchdog of each new connection. `limit` is the
/// keep-alive wait plus `http.header_timeout`: an idle connection that has neither closed nor
/// completed a request head within it is shut down.
pub fn watchdog(limit: Duration) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |io, extensions| {
        let Some(fd) = raw_fd(io) else { return };
        let state = Rc::new(ConnectionState {
            in_requests: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
        });
        let watched = Rc::downgrade(&state);
        extensions.insert(Watched(state));
        actix_web::rt::spawn(watch(watched, fd, limit));
    }
}

fn raw_fd(io: &dyn Any) -> Option<RawFd> {
    use actix_web::rt::net::TcpStream;
    if let Some(tcp) = io.downcast_ref::<TcpStream>() {
        return Some(tcp.as_raw_fd());
    }
    io.downcast_ref::<actix_tls::accept::openssl::TlsStream<TcpStream>>()
        .map(|tls| tls.get_ref().as_raw_fd())
}

async fn watch(connection: Weak<ConnectionState>, fd: RawFd, limit: Duration) {
    loop {
        // The connection's data is dropped together with its socket, on this same thread: a
        // live reference means the descriptor is still this connection's.
        let Some(state) = connection.upgrade() else {
            return;
        };
        if state.in_requests.get() > 0 {
            drop(state);
            tokio::time::sleep(limit).await;
            continue;
        }
        let deadline = state.idle_since.get() + limit;
        drop(state);
        if Instant::now() >= deadline {
            tracing::debug!("closing a connection whose next request head is too slow");
            // SAFETY: `fd` is the open socket of the connection that is still alive (above);
            // shutting it down makes the dispatcher read end-of-stream and close it.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}
