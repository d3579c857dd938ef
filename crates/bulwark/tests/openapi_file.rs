//! `web/openapi.json` is the server's OpenAPI document as it is now: the web apps' TypeScript
//! wire types are generated from that file at build time (`npm run wire`), so a stale copy
//! would let the apps compile against fields the server no longer sends. Regenerate with
//! `cargo run -p bulwark -- openapi > web/openapi.json`.

use std::path::Path;

#[test]
fn the_web_apps_openapi_json_is_the_servers_document() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo run -p bulwark -- openapi > web/openapi.json`",
            path.display()
        )
    });
    let committed: serde_json::Value =
        serde_json::from_str(&text).expect("web/openapi.json is JSON");
    let current = serde_json::to_value(server::openapi()).expect("the document serialises");
    if committed != current {
        let paths = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
            v["paths"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let schemas = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
            v["components"]["schemas"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (cp, np) = (paths(&committed), paths(&current));
        let (cs, ns) = (schemas(&committed), schemas(&current));
        panic!(
            "web/openapi.json is stale: run `cargo run -p bulwark -- openapi > web/openapi.json` \
             and `cd web && npm run build`.\n paths only in the file: {:?}\n paths only in the \
             server: {:?}\n schemas only in the file: {:?}\n schemas only in the server: {:?}",
            cp.difference(&np).collect::<Vec<_>>(),
            np.difference(&cp).collect::<Vec<_>>(),
            cs.difference(&ns).collect::<Vec<_>>(),
            ns.difference(&cs).collect::<Vec<_>>(),
        );
    }
}
