//! Structured logs with `tracing`: human-readable by default, JSON by configuration.
//!
//! Levels: ERROR means Sigil itself is wrong (a page that does not render, a key that does not
//! load, a query that fails); WARN an operator should look (the database became unreachable,
//! a replayed code); bad input from outside is INFO at most.
//!
//! Lines logged while a request is handled carry its id: in JSON as `span.request_id`, in the
//! human format as a `request{request_id=…}:` prefix. The access log is target `sigil::access`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls (tests) leave the first one in place.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // The request's span (`span.request_id`, see `web::access_log`), not every parent.
            .with_span_list(false)
            .finish()
            .with(MalformedRequests)
            .try_init(),
        LogFormat::Human => builder.finish().with(MalformedRequests).try_init(),
    };
}

/// actix-http answers a malformed request (a bad request line or header, an invalid chunk,
/// a URI too long) with 400 itself, and then logs it at ERROR as "stream error: …": bad input
/// from outside, dropped here.
struct MalformedRequests;

const DISPATCHER: &str = "actix_http::h1::dispatcher";

impl<S: Subscriber> Layer<S> for MalformedRequests {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target() != DISPATCHER {
            return true;
        }
        let mut message = StreamError(false);
        event.record(&mut message);
        !message.0
    }
}

struct StreamError(bool);

impl Visit for StreamError {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}").starts_with("stream error");
        }
    }
}
