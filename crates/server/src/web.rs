//! The web apps' static files, compiled into the binary so `bulwark` is one file.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

macro_rules! asset {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path))
    };
}

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        asset!("index.html"),
    ),
    ("app.js", "text/javascript; charset=utf-8", asset!("app.js")),
    ("style.css", "text/css; charset=utf-8", asset!("style.css")),
    (
        "vendor/leaflet/leaflet.js",
        "text/javascript; charset=utf-8",
        asset!("vendor/leaflet/leaflet.js"),
    ),
    (
        "vendor/leaflet/leaflet.css",
        "text/css; charset=utf-8",
        asset!("vendor/leaflet/leaflet.css"),
    ),
];

fn asset(path: &str) -> axum::response::Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, mime, bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{*path}",
            get(|axum::extract::Path(p): axum::extract::Path<String>| async move { asset(&p) }),
        )
}
