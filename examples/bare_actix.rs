//! The ceiling for Sigil's discovery and JWKS endpoints: a bare actix-web 4 server that answers
//! every GET, whatever the path, with the same bytes (read once from `BODY_FILE` at start) as
//! `application/json`. DESIGN.md asks those endpoints for at least 80% of this.
//!
//! ```text
//! cargo build --release --example bare_actix
//! BODY_FILE=discovery.json PORT=3101 target/release/examples/bare_actix
//! ```
//!
//! Env: `BODY_FILE` (required), `PORT` (default 3101), `WORKERS` (default: one per core, the
//! actix default and what Sigil uses with `http.workers = 0`). Used by `bench/run.sh`.

use actix_web::http::header::ContentType;
use actix_web::http::Method;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let path = std::env::var("BODY_FILE").map_err(|_| std::io::Error::other("set BODY_FILE"))?;
    let body = Bytes::from(
        std::fs::read(&path).map_err(|e| std::io::Error::other(format!("{path}: {e}")))?,
    );
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| std::io::Error::other(format!("PORT {p:?} is not a port")))?,
        Err(_) => 3101,
    };
    let workers = match std::env::var("WORKERS") {
        Ok(w) => w
            .parse()
            .map_err(|_| std::io::Error::other(format!("WORKERS {w:?} is not a number")))?,
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    eprintln!(
        "bare_actix: {} bytes from {path} on 127.0.0.1:{port}, {workers} workers",
        body.len()
    );

    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move |req: HttpRequest| {
            let body = body.clone(); // a refcount bump, not a copy
            async move {
                if req.method() == Method::GET {
                    HttpResponse::Ok()
                        .insert_header(ContentType::json())
                        .body(body)
                } else {
                    HttpResponse::MethodNotAllowed()
                        .insert_header(("Allow", "GET"))
                        .finish()
                }
            }
        }))
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
