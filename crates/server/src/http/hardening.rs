//! Response headers that harden the web apps and the API (issue 17).
//!
//! - `Content-Security-Policy`: scripts, styles, connections and workers from this origin
//!   only; images also from the map's tile source; no framing (`frame-ancestors 'none'`),
//!   no plugins, no `<base>`. Inline *style attributes* stay allowed (`'unsafe-inline'` in
//!   `style-src`): the apps rotate heading arrows with `style="transform: …"` in generated
//!   markup and Leaflet positions tiles the same way; no inline script is allowed anywhere.
//! - `Referrer-Policy: strict-origin-when-cross-origin`: a tile server learns this origin
//!   (OpenStreetMap's tile policy requires a referrer) and never a path.
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (for browsers without CSP
//!   level 2).
//! - `Cache-Control: no-store` on every answer that does not set its own: API answers,
//!   errors and the health report are never kept by a browser or a proxy. The web apps'
//!   files set theirs (`web.rs`: immutable bundles, revalidated pages).

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The default tile source of both apps (`web/src/console/mapkit.ts`, `web/src/victim`).
const DEFAULT_TILES: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

/// The origin of a tile URL template as a CSP source (`{s}` subdomains become `*`);
/// `None` for a template without a scheme and host.
fn tile_origin(template: &str) -> Option<String> {
    let (scheme, rest) = template.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty()
        || !matches!(scheme, "http" | "https")
        || host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | ',' | '\'' | '"'))
    {
        return None;
    }
    Some(format!("{scheme}://{}", host.replace("{s}", "*")))
}

/// The policy for the configured tile source (`map_tiles`; the default otherwise).
pub fn content_security_policy(tiles: Option<&str>) -> String {
    let tiles = tiles
        .and_then(tile_origin)
        .or_else(|| tile_origin(DEFAULT_TILES))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob: {tiles}; connect-src 'self'; worker-src 'self'; \
         manifest-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Adds the headers to `res` (see the module documentation).
pub fn apply(csp: &HeaderValue, mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tile_source_becomes_an_image_source() {
        assert_eq!(
            tile_origin("https://{s}.tiles.example:8443/{z}/{x}/{y}.png?k=1"),
            Some("https://*.tiles.example:8443".into())
        );
        assert_eq!(tile_origin("/tiles/{z}/{x}/{y}.png"), None);
        assert_eq!(tile_origin("https://a.example; script-src *"), None);
        let csp = content_security_policy(Some("http://10.0.0.5/osm/{z}/{x}/{y}.png"));
        assert!(
            csp.contains("img-src 'self' data: blob: http://10.0.0.5;"),
            "{csp}"
        );
        let csp = content_security_policy(None);
        assert!(csp.contains("https://tile.openstreetmap.org;"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    }
}
