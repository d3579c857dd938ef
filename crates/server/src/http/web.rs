//! The web apps' static files, compiled into the binary so `bulwark` is one file.
//!
//! `web/` is a TypeScript + Vite project with two pages: the monitoring console at `/` and the
//! victim app (a PWA scoped to `/app/`). `npm run build` writes `web/dist`, which is embedded
//! here (in debug builds too). A binary built before the web apps were built serves a page that
//! says so instead of a blank screen.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist/"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Bulwark</title>\
<p>The web apps are not built into this binary. Run <code>npm --prefix web ci &amp;&amp; \
npm --prefix web run build</code>, then build <code>bulwark</code> again \
(<code>scripts/demo</code> and <code>scripts/test</code> do both).</p>";

fn asset(path: &str) -> Response {
    let Some(file) = Assets::get(path) else {
        if path.ends_with("index.html") {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                NOT_BUILT,
            )
                .into_response();
        }
        return StatusCode::NOT_FOUND.into_response();
    };
    // Vite names bundles by content hash: those can be cached for good. Pages, the manifest
    // and the service worker must be revalidated so an update reaches every phone.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        file.data,
    )
        .into_response()
}

/// The console page with the configured tile source in a `<meta name="bulwark-tiles">`.
fn console_page(tiles: Option<&str>) -> Response {
    let Some(tiles) = tiles else {
        return asset("index.html");
    };
    match Assets::get("index.html") {
        Some(file) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            with_tiles(&String::from_utf8_lossy(&file.data), tiles),
        )
            .into_response(),
        None => asset("index.html"),
    }
}

/// Adds the tile URL template to a page's head, escaped for an attribute value.
fn with_tiles(html: &str, tiles: &str) -> String {
    let escaped = tiles
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    html.replacen(
        "</head>",
        &format!("<meta name=\"bulwark-tiles\" content=\"{escaped}\">\n</head>"),
        1,
    )
}

/// The web apps. `tiles`: the console map's tile URL template ([`crate::Config::map_tiles`]).
pub fn routes<S: Clone + Send + Sync + 'static>(tiles: Option<String>) -> Router<S> {
    Router::new()
        .route(
            "/",
            get(move || {
                let tiles = tiles.clone();
                async move { console_page(tiles.as_deref()) }
            }),
        )
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(|| async { asset("app/index.html") }))
        .route(
            "/app/{*path}",
            get(|Path(p): Path<String>| async move { asset(&format!("app/{p}")) }),
        )
        .route(
            "/assets/{*path}",
            get(|Path(p): Path<String>| async move { asset(&format!("assets/{p}")) }),
        )
}

#[cfg(test)]
mod tests {
    use super::with_tiles;

    #[test]
    fn the_tile_source_goes_into_the_head_escaped() {
        let page = with_tiles(
            "<html><head><title>x</title></head><body></body></html>",
            "https://tiles.example/{z}/{x}/{y}.png?a=1&b=\"><script>",
        );
        assert!(page.contains(
            "<meta name=\"bulwark-tiles\" content=\"https://tiles.example/{z}/{x}/{y}.png?a=1&amp;b=&quot;&gt;&lt;script&gt;\">\n</head>"
        ), "{page}");
        assert!(!page.contains("<script>"), "{page}");
    }
}
