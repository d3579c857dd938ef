// Bulwark monitoring console (walking-skeleton version): a live map of every case with its
// zones, people's latest positions (with time, accuracy and heading) and the alert queue.
// Plain JavaScript with Leaflet; the full console (TypeScript + Vite) replaces it later.
"use strict";

const I18N = {
  ko: {
    title: "관제", alerts: "경보", noAlerts: "진행 중인 경보 없음", people: "위치",
    usernameLabel: "아이디", passwordLabel: "비밀번호", totpLabel: "인증 코드 (등록한 경우)", loginFailed: "아이디, 비밀번호 또는 코드가 틀렸습니다", signIn: "로그인", offender: "가해자", protected: "피해자",
    ago: "전", sec: "초", min: "분", accuracy: "정확도", live: "실시간 연결됨",
    reconnecting: "연결 끊김 — 재연결 중…", stale: "오래된 위치", tilesOffline: "지도 타일을 불러올 수 없습니다 — 격자 배경으로 표시합니다",
    ack: "확인", resolve: "종결", conditionCleared: "조건 해소됨",
    rules: { proximity_violation: "접근금지 위반", proximity_warning: "접근 경고", zone_violation: "보호구역 침입",
      sos: "긴급 SOS", tamper: "훼손", device_battery: "배터리", device_offline: "장치 무응답", protection_degraded: "보호 저하",
      proximity_notice: "주변 접근 알림", boundary_grazing: "경계 배회", device_no_fix: "위치 신호 없음",
      ingest_backlog: "서버 처리 지연", test: "시험 알림" },
    notices: "참고 알림", battery: "배터리", 
    states: { raised: "발생", acknowledged: "확인됨", dispatched: "출동", resolved: "종결" },
  },
  en: {
    title: "Monitoring", alerts: "Alerts", noAlerts: "No active alerts", people: "Positions",
    usernameLabel: "Username", passwordLabel: "Password", totpLabel: "Code (if enrolled)", loginFailed: "Wrong username, password or code", signIn: "Sign in", offender: "Offender", protected: "Protected person",
    ago: "ago", sec: "s", min: "min", accuracy: "accuracy", live: "Live",
    reconnecting: "Disconnected — reconnecting…", stale: "stale position", tilesOffline: "Map tiles unavailable — showing a plain grid",
    ack: "Acknowledge", resolve: "Resolve", conditionCleared: "condition cleared",
    rules: { proximity_violation: "No-approach violation", proximity_warning: "Approach warning", zone_violation: "Exclusion zone entered",
      sos: "SOS", tamper: "Tamper", device_battery: "Battery", device_offline: "Device silent", protection_degraded: "Protection degraded",
      proximity_notice: "In the area", boundary_grazing: "Boundary grazing", device_no_fix: "No position fix",
      ingest_backlog: "Server behind on ingest", test: "Test alert" },
    notices: "notices", battery: "battery", 
    states: { raised: "raised", acknowledged: "acknowledged", dispatched: "dispatched", resolved: "resolved" },
  },
};
// A position older than this is shown as stale (grey marker, warning in the list).
const STALE_AFTER_S = 120;

let lang = localStorage.getItem("bw-lang") || "ko";
const t = (k) => I18N[lang][k] ?? k;

// The session token from POST /api/v1/auth/login, kept for this tab only. `#token=` in the
// address still works for the bootstrap administrator token (accounts only, no case data).
function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("bw-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("bw-token");
}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: `Bearer ${token()}`, "Content-Type": "application/json" } });
  if (r.status === 401) { showLogin(); throw new Error("unauthorized"); }
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

const map = L.map("map", { zoomControl: true }).setView([37.54, 126.98], 12);
const tiles = L.tileLayer(window.BULWARK_TILES || "https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
  maxZoom: 19, attribution: "© OpenStreetMap contributors",
}).addTo(map);
let tileErrors = 0;
tiles.on("tileerror", () => {
  if (++tileErrors === 3) {
    document.getElementById("map").classList.add("offline");
    const notice = L.control({ position: "bottomleft" });
    notice.onAdd = () => { const d = L.DomUtil.create("div", "map-notice"); d.textContent = t("tilesOffline"); return d; };
    notice.addTo(map);
  }
});

const state = { health: new Map(), positions: new Map(), alerts: new Map(), orders: [], markers: new Map(), zoneLayers: [], fitted: false, skew: 0 };

function ageSeconds(iso) { return Math.max(0, (Date.now() + state.skew - Date.parse(iso)) / 1000); }
function fmtAge(s) { return s < 90 ? `${Math.round(s)}${t("sec")} ${t("ago")}` : `${Math.round(s / 60)}${t("min")} ${t("ago")}`; }

function markerIcon(p, stale) {
  const cls = `bw-${p.role || "unknown"}${stale ? " bw-stale" : ""}`;
  const arrow = p.course_deg != null && (p.speed_mps ?? 0) > 0.5
    ? `<div class="bw-heading" style="transform: rotate(${p.course_deg}deg)"><div class="bw-arrow"></div></div>` : "";
  return L.divIcon({ className: cls, html: `<div class="bw-marker" aria-label="${t(p.role || "")}">${arrow}</div>`, iconSize: [18, 18], iconAnchor: [9, 9] });
}

function drawPosition(p) {
  state.positions.set(p.device_id, p);
  const stale = ageSeconds(p.device_time) > STALE_AFTER_S;
  let m = state.markers.get(p.device_id);
  const ll = [p.lat, p.lon];
  if (!m) {
    m = { marker: L.marker(ll, { icon: markerIcon(p, stale), title: t(p.role || "") }).addTo(map),
          circle: L.circle(ll, { radius: p.accuracy_m || 0, weight: 1, opacity: .5, fillOpacity: .08, color: p.role === "offender" ? "#c62828" : "#1565c0" }).addTo(map) };
    state.markers.set(p.device_id, m);
  } else {
    m.marker.setLatLng(ll).setIcon(markerIcon(p, stale));
    m.circle.setLatLng(ll).setRadius(p.accuracy_m || 0);
  }
  m.marker.bindTooltip(`${t(p.role || "")} · ${fmtAge(ageSeconds(p.device_time))} · ${t("accuracy")} ±${Math.round(p.accuracy_m ?? 0)} m · ${p.source}`);
}

function drawZones() {
  state.zoneLayers.forEach((l) => l.remove());
  state.zoneLayers = [];
  for (const o of state.orders) for (const z of o.zones) {
    const style = { color: "#6a1b9a", weight: 2, dashArray: "4 4", fillOpacity: .06 };
    const layer = z.shape.type === "circle"
      ? L.circle([z.shape.lat, z.shape.lon], { radius: z.shape.radius_m, ...style })
      : L.polygon(z.shape.ring, style);
    layer.bindTooltip(`${z.label} (${z.kind})`).addTo(map);
    state.zoneLayers.push(layer);
  }
}

function renderPeople() {
  const ul = document.getElementById("people");
  ul.replaceChildren();
  for (const p of [...state.positions.values()].sort((a, b) => a.device_id - b.device_id)) {
    const li = document.createElement("li");
    const age = ageSeconds(p.device_time);
    const h = state.health.get(p.device_id);
    const battery = h && h.battery_percent != null
      ? ` · <span class="${h.battery_percent < 20 ? "stale" : ""}">${t("battery")} ${Math.round(h.battery_percent)}%${h.charging ? " ⚡" : ""}</span>` : "";
    li.innerHTML = `<strong>${t(p.role || "")} #${p.person_id ?? "?"}</strong> · ${fmtAge(age)} · ±${Math.round(p.accuracy_m ?? 0)} m${battery}`
      + (age > STALE_AFTER_S ? ` <span class="stale">${t("stale")}</span>` : "");
    ul.appendChild(li);
  }
}

function renderAlerts() {
  const ol = document.getElementById("alerts");
  ol.replaceChildren();
  // Informational notices (the offender is in the wider area) are for the victim's app; in the
  // queue they would teach officers to skim, so they are only counted here.
  const open = [...state.alerts.values()].filter((a) => a.state !== "resolved");
  const notices = open.filter((a) => a.severity === "info").length;
  const active = open.filter((a) => a.severity !== "info")
    .sort((a, b) => (b.severity === "critical") - (a.severity === "critical") || Date.parse(b.updated_at) - Date.parse(a.updated_at));
  document.getElementById("no-alerts").hidden = active.length > 0;
  if (notices > 0) {
    const li = document.createElement("li");
    li.className = "notice-count";
    li.textContent = `+ ${notices} ${t("notices")}`;
    ol.appendChild(li);
  }
  for (const a of active) {
    const li = document.createElement("li");
    li.className = `alert-item ${a.severity}${a.condition_active ? "" : " cleared"}`;
    li.dataset.alertId = a.id;
    li.innerHTML = `<div class="rule">${t("rules")[a.rule] || a.rule}</div>
      <div>${a.summary}</div>
      <div class="meta">#${a.id} · ${t("states")[a.state]} · ${fmtAge(ageSeconds(a.raised_at))}${a.condition_active ? "" : " · " + t("conditionCleared")}</div>`;
    for (const [label, st] of [[t("ack"), "acknowledged"], [t("resolve"), "resolved"]]) {
      if (a.state === st) continue;
      const b = document.createElement("button");
      b.type = "button"; b.textContent = label;
      b.onclick = async () => {
        const body = { state: st };
        if (st === "resolved") {
          // Resolving requires a cause (it feeds the false-alarm measure).
          const cause = window.prompt(`${t("resolve")}: ${CAUSES.join(", ")}`, "true_violation");
          if (!cause || !CAUSES.includes(cause.trim())) return;
          body.cause = cause.trim();
        }
        const upd = await api(`/api/v1/alerts/${a.id}/state`, { method: "POST", body: JSON.stringify(body) }); state.alerts.set(upd.id, upd); renderAlerts();
      };
      li.appendChild(b);
    }
    ol.appendChild(li);
  }
}

const CAUSES = ["true_violation", "gps_error", "device_fault", "victim_phone_problem", "test", "other"];

async function loadSnapshot() {
  const s = await api("/api/v1/snapshot");
  state.skew = Date.parse(s.server_time) - Date.now();
  state.orders = s.orders;
  state.alerts = new Map(s.alerts.map((a) => [a.id, a]));
  // Device health (battery, charging) is shown beside each position; not fatal if refused.
  const devices = await api("/api/v1/devices").catch(() => []);
  state.health = new Map(devices.filter((d) => d.health).map((d) => [d.id, d.health]));
  s.positions.forEach(drawPosition);
  drawZones();
  renderAlerts();
  renderPeople();
  if (!state.fitted && s.positions.length) {
    map.fitBounds(L.latLngBounds(s.positions.map((p) => [p.lat, p.lon])).pad(0.2));
    state.fitted = true;
  }
}

function setStatus(text, degraded) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("degraded", !!degraded);
}

function connect() {
  const es = new EventSource(`/api/v1/live?access_token=${encodeURIComponent(token())}`);
  es.onopen = () => { setStatus(t("live")); loadSnapshot().catch(console.error); };
  es.onerror = () => setStatus(t("reconnecting"), true);
  es.addEventListener("position", (e) => { drawPosition(JSON.parse(e.data)); });
  es.addEventListener("alert", (e) => { const a = JSON.parse(e.data); state.alerts.set(a.id, a); renderAlerts(); });
  es.addEventListener("resync", () => loadSnapshot().catch(console.error));
}

function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = lang === "ko" ? "EN" : "한국어";
  renderAlerts(); renderPeople();
}

function showLogin() {
  sessionStorage.removeItem("bw-token");
  document.getElementById("login").hidden = false;
  document.getElementById("username-input").focus();
}

document.getElementById("lang").onclick = () => { lang = lang === "ko" ? "en" : "ko"; localStorage.setItem("bw-lang", lang); applyLang(); };
document.getElementById("login-form").onsubmit = async (e) => {
  e.preventDefault();
  const body = {
    username: document.getElementById("username-input").value,
    password: document.getElementById("password-input").value,
  };
  const code = document.getElementById("totp-input").value.trim();
  if (code) body.totp = code;
  const r = await fetch("/api/v1/auth/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const err = document.getElementById("login-error");
  if (!r.ok) {
    const v = await r.json().catch(() => ({}));
    err.textContent = r.status === 401 ? t("loginFailed") : (v.error?.message || String(r.status));
    err.hidden = false;
    return;
  }
  const v = await r.json();
  sessionStorage.setItem("bw-token", v.token);
  document.getElementById("password-input").value = "";
  err.hidden = true;
  document.getElementById("login").hidden = true;
  connect();
};

applyLang();
if (token()) connect(); else showLogin();
// Ages and staleness change with time even when nothing arrives.
setInterval(() => { renderPeople(); for (const p of state.positions.values()) drawPosition(p); }, 5000);
