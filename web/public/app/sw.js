// Bulwark victim app service worker (scope /app/). It makes the app installable and lets the
// shell open without a network, so the app can say "offline — protection degraded" instead of
// showing a browser error. It NEVER answers an API request: /api/ and /healthz go straight to
// the network (a cached answer would show an old position or status as current).
const SHELL = "bw-victim-shell-v1";

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(["/app/"])).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (e) => {
  const req = e.request;
  const url = new URL(req.url);
  // Not ours, not a GET, or live data: no respondWith, so the browser goes to the network
  // exactly as without a service worker.
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/healthz") return;
  if (req.mode === "navigate" && url.pathname.startsWith("/app")) {
    // Network first so an update reaches the phone; the cached shell only when offline.
    e.respondWith(
      fetch(req)
        .then((r) => {
          if (r.ok) {
            const copy = r.clone();
            caches.open(SHELL).then((c) => c.put("/app/", copy));
          }
          return r;
        })
        .catch(() => caches.match("/app/").then((r) => r || Response.error())),
    );
    return;
  }
  if (url.pathname.startsWith("/assets/") || url.pathname.startsWith("/app/icon-")) {
    // Content-hashed bundles: cache first.
    e.respondWith(
      caches.match(req).then((hit) => hit || fetch(req).then((r) => {
        if (r.ok) {
          const copy = r.clone();
          caches.open(SHELL).then((c) => c.put(req, copy));
        }
        return r;
      })),
    );
  }
});
