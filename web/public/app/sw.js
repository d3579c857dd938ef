// Bulwark victim app service worker (scope /app/). It makes the app installable and lets the
// shell open without a network, so the app can say "offline — protection degraded" instead of
// showing a browser error. It NEVER answers an API request: /api/ and /healthz go straight to
// the network (a cached answer would show an old position or status as current).
// It also shows Web Push messages (`{alert_id, class, kind, event, silent}`, never a position)
// as notifications with neutral, class-specific words, and opens the app when one is tapped.
const SHELL = "bw-victim-shell-v1";
const PREFS = "bw-victim-prefs";

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(["/app/"])).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL && k !== PREFS).map((k) => caches.delete(k))))
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

// ---- Web Push ------------------------------------------------------------------------------

// Words on the lock screen: neutral (never "stalking" or "offender": someone else may read the
// phone), by class. In discreet mode even less: the app's cover name and "new update".
const WORDS = {
  ko: {
    title: "안전", discreetTitle: "날씨", discreetBody: "새 소식이 있습니다",
    danger: "긴급 알림 — 지금 앱을 확인하세요", technical: "보호 기능 점검 필요 — 앱을 확인하세요", test: "시험 알림 — 알림이 잘 도착합니다",
  },
  en: {
    title: "Safety", discreetTitle: "Weather", discreetBody: "New update",
    danger: "Urgent alert — open the app now", technical: "Protection needs a check — open the app", test: "Test alert — notifications reach this phone",
  },
};
const VIBRATE = { danger: [500, 150, 500, 150, 500], technical: [150, 100, 150], test: [80] };

// The page tells us her language and discreet mode; kept in Cache Storage so that it survives
// the worker being stopped between pushes (the worker cannot read localStorage).
async function prefs() {
  try {
    const r = await (await caches.open(PREFS)).match("/app/__prefs");
    if (r) return await r.json();
  } catch {
    /* defaults */
  }
  return { lang: "ko", discreet: false };
}

self.addEventListener("message", (e) => {
  const d = e.data || {};
  if (d.type !== "prefs") return;
  const body = JSON.stringify({ lang: d.lang === "en" ? "en" : "ko", discreet: !!d.discreet });
  e.waitUntil(caches.open(PREFS).then((c) => c.put("/app/__prefs", new Response(body, { headers: { "Content-Type": "application/json" } }))));
});

/** The notification for one push payload, with her language and discreet mode. */
function notificationFor(p, pr) {
  const w = WORDS[pr.lang] || WORDS.ko;
  const cls = p.class === "danger" || p.class === "technical" || p.class === "test" ? p.class : "technical";
  const silent = p.silent === true;
  const options = {
    body: pr.discreet ? w.discreetBody : w[cls],
    tag: `alert-${p.alert_id ?? "unknown"}`,
    // A reopened alert replaces its notification and is announced again.
    renotify: true,
    silent,
    icon: "/app/icon-192.png",
    badge: "/app/icon-192.png",
    requireInteraction: cls === "danger",
    data: { url: "/app/", alert_id: p.alert_id ?? null, class: cls },
  };
  if (!silent) options.vibrate = VIBRATE[cls];
  return { title: pr.discreet ? w.discreetTitle : w.title, options };
}

self.addEventListener("push", (e) => {
  let p = {};
  try {
    p = e.data ? e.data.json() : {};
  } catch {
    p = {};
  }
  e.waitUntil(prefs().then((pr) => {
    const n = notificationFor(p, pr);
    return self.registration.showNotification(n.title, n.options);
  }));
});

self.addEventListener("notificationclick", (e) => {
  e.notification.close();
  const url = new URL((e.notification.data && e.notification.data.url) || "/app/", self.location.origin).href;
  e.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((list) => {
      const open = list.find((c) => new URL(c.url).pathname.startsWith("/app"));
      if (open) return open.focus();
      return self.clients.openWindow(url);
    }),
  );
});
