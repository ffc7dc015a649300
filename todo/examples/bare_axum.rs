//! The HTTP reference for `scripts/http-bench.sh`: a bare axum server answering the
//! to-do API's write and read routes with fixed JSON, so a wrk run against it
//! measures what axum, hyper and the kernel cost before sluicegate does any work.
//!
//! `cargo run --release --example bare_axum -- 127.0.0.1:8091` serves
//! `POST /lists/{list}/entries` (reads the body, answers 201 with a fixed entry and a
//! `Location`) and `GET /lists/{list}/entries` (a fixed array of ten entries, about
//! the size of the lists the bench reads from sluicegate). Same runtime flavour as
//! `sluicegate serve`: tokio's multi-threaded runtime with one worker per core.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One entry as sluicegate answers a POST.
const ENTRY: &str = r#"{"id":1,"date":"2026-12-02","title":"Dentist"}"#;

/// Ten entries, as a GET of a bench list answers.
fn ten_entries() -> String {
    let items: Vec<String> = (1..=10)
        .map(|id| format!(r#"{{"id":{id},"date":"2026-12-02","title":"Dentist"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

async fn add_entry(Path(list): Path<String>, body: Bytes) -> Response {
    // The body is read (axum buffers it) but not parsed: this is the floor.
    let _ = body.len();
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::LOCATION, format!("/lists/{list}/entries/1")),
        ],
        ENTRY,
    )
        .into_response()
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8091".to_string());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare_axum: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let entries = ten_entries();
    let app = Router::new().route(
        "/lists/{list}/entries",
        get(move || {
            let body = entries.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        })
        .post(add_entry),
    );
    eprintln!("bare_axum: listening on {addr}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("bare_axum: {e}");
        std::process::exit(1);
    }
}
