// Bulwark monitoring console: a live map of the cases in the officer's scope with their zones,
// people's latest positions (with time, accuracy and heading) and the alert queue.
import "leaflet/dist/leaflet.css";
import "./style.css";
import L from "leaflet";
import { api, login, setToken, setUnauthorizedHandler, token, ApiError } from "../shared/api";

type Lang = "ko" | "en";

const I18N = {
  ko: {
    title: "관제", alerts: "경보", noAlerts: "진행 중인 경보 없음", people: "위치",
    usernameLabel: "아이디", passwordLabel: "비밀번호", totpLabel: "인증 코드 (등록한 경우)", loginFailed: "아이디, 비밀번호 또는 코드가 틀렸습니다", signIn: "로그인", offender: "가해자", protected: "피해자",
    ago: "전", sec: "초", min: "분", accuracy: "정확도", live: "실시간 연결됨",
    reconnecting: "연결 끊김 — 재연결 중…", stale: "오래된 위치", tilesOffline: "지도 타일을 불러올 수 없습니다 — 격자 배경으로 표시합니다",
    ack: "확인", resolve: "종결", conditionCleared: "조건 해소됨",
    notices: "참고 알림", battery: "배터리",
  },
  en: {
    title: "Monitoring", alerts: "Alerts", noAlerts: "No active alerts", people: "Positions",
    usernameLabel: "Username", passwordLabel: "Password", totpLabel: "Code (if enrolled)", loginFailed: "Wrong username, password or code", signIn: "Sign in", offender: "Offender", protected: "Protected person",
    ago: "ago", sec: "s", min: "min", accuracy: "accuracy", live: "Live",
    reconnecting: "Disconnected — reconnecting…", stale: "stale position", tilesOffline: "Map tiles unavailable — showing a plain grid",
    ack: "Acknowledge", resolve: "Resolve", conditionCleared: "condition cleared",
    notices: "notices", battery: "battery",
  },
} as const;
const RULES: Record<Lang, Record<string, string>> = {
  ko: { proximity_violation: "접근금지 위반", proximity_warning: "접근 경고", zone_violation: "보호구역 침입",
    sos: "긴급 SOS", tamper: "훼손", device_battery: "배터리", device_offline: "장치 무응답", protection_degraded: "보호 저하",
    proximity_notice: "주변 접근 알림", boundary_grazing: "경계 배회", device_no_fix: "위치 신호 없음",
    ingest_backlog: "서버 처리 지연", test: "시험 알림" },
  en: { proximity_violation: "No-approach violation", proximity_warning: "Approach warning", zone_violation: "Exclusion zone entered",
    sos: "SOS", tamper: "Tamper", device_battery: "Battery", device_offline: "Device silent", protection_degraded: "Protection degraded",
    proximity_notice: "In the area", boundary_grazing: "Boundary grazing", device_no_fix: "No position fix",
    ingest_backlog: "Server behind on ingest", test: "Test alert" },
};
const STATES: Record<Lang, Record<string, string>> = {
  ko: { raised: "발생", acknowledged: "확인됨", dispatched: "출동", resolved: "종결" },
  en: { raised: "raised", acknowledged: "acknowledged", dispatched: "dispatched", resolved: "resolved" },
};
type Key = keyof (typeof I18N)["en"];

// A position older than this is shown as stale (grey marker, warning in the list).
const STALE_AFTER_S = 120;
const CAUSES = ["true_violation", "gps_error", "device_fault", "victim_phone_problem", "test", "other"];

interface Position {
  device_id: number;
  person_id?: number | null;
  role?: string | null;
  lat: number;
  lon: number;
  accuracy_m?: number | null;
  course_deg?: number | null;
  speed_mps?: number | null;
  device_time: string;
  source: string;
}
interface Alert {
  id: number;
  rule: string;
  severity: string;
  state: string;
  summary: string;
  raised_at: string;
  updated_at: string;
  condition_active: boolean;
}
type Shape =
  | { type: "circle"; lat: number; lon: number; radius_m: number }
  | { type: "polygon"; ring: [number, number][] };
interface Zone { label: string; kind: string; shape: Shape }
interface Order { zones: Zone[] }
interface Snapshot { server_time: string; orders: Order[]; alerts: Alert[]; positions: Position[] }
interface Health { battery_percent?: number | null; charging?: boolean | null }
interface Device { id: number; health?: Health | null }

let lang: Lang = localStorage.getItem("bw-lang") === "en" ? "en" : "ko";
const t = (k: Key): string => I18N[lang][k];
const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

const map = L.map("map", { zoomControl: true }).setView([37.54, 126.98], 12);
const tiles = L.tileLayer(
  (window as unknown as { BULWARK_TILES?: string }).BULWARK_TILES || "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
  { maxZoom: 19, attribution: "© OpenStreetMap contributors" },
).addTo(map);
let tileErrors = 0;
tiles.on("tileerror", () => {
  if (++tileErrors === 3) {
    $("map").classList.add("offline");
    const notice = new L.Control({ position: "bottomleft" });
    notice.onAdd = () => {
      const d = L.DomUtil.create("div", "map-notice");
      d.textContent = t("tilesOffline");
      return d;
    };
    notice.addTo(map);
  }
});

interface Drawn { marker: L.Marker; circle: L.Circle }
const state = {
  health: new Map<number, Health>(),
  positions: new Map<number, Position>(),
  alerts: new Map<number, Alert>(),
  orders: [] as Order[],
  markers: new Map<number, Drawn>(),
  zoneLayers: [] as L.Layer[],
  fitted: false,
  skew: 0,
};

const ageSeconds = (iso: string): number => Math.max(0, (Date.now() + state.skew - Date.parse(iso)) / 1000);
const fmtAge = (s: number): string =>
  s < 90 ? `${Math.round(s)}${t("sec")} ${t("ago")}` : `${Math.round(s / 60)}${t("min")} ${t("ago")}`;
const roleLabel = (r?: string | null): string => (r === "offender" ? t("offender") : r === "protected" ? t("protected") : "");

function markerIcon(p: Position, stale: boolean): L.DivIcon {
  const cls = `bw-${p.role || "unknown"}${stale ? " bw-stale" : ""}`;
  const arrow = p.course_deg != null && (p.speed_mps ?? 0) > 0.5
    ? `<div class="bw-heading" style="transform: rotate(${p.course_deg}deg)"><div class="bw-arrow"></div></div>` : "";
  return L.divIcon({ className: cls, html: `<div class="bw-marker" aria-label="${roleLabel(p.role)}">${arrow}</div>`, iconSize: [18, 18], iconAnchor: [9, 9] });
}

function drawPosition(p: Position): void {
  state.positions.set(p.device_id, p);
  const stale = ageSeconds(p.device_time) > STALE_AFTER_S;
  let m = state.markers.get(p.device_id);
  const ll: L.LatLngTuple = [p.lat, p.lon];
  if (!m) {
    m = {
      marker: L.marker(ll, { icon: markerIcon(p, stale), title: roleLabel(p.role) }).addTo(map),
      circle: L.circle(ll, { radius: p.accuracy_m || 0, weight: 1, opacity: 0.5, fillOpacity: 0.08, color: p.role === "offender" ? "#c62828" : "#1565c0" }).addTo(map),
    };
    state.markers.set(p.device_id, m);
  } else {
    m.marker.setLatLng(ll).setIcon(markerIcon(p, stale));
    m.circle.setLatLng(ll).setRadius(p.accuracy_m || 0);
  }
  m.marker.bindTooltip(`${roleLabel(p.role)} · ${fmtAge(ageSeconds(p.device_time))} · ${t("accuracy")} ±${Math.round(p.accuracy_m ?? 0)} m · ${p.source}`);
}

function drawZones(): void {
  state.zoneLayers.forEach((l) => l.remove());
  state.zoneLayers = [];
  for (const o of state.orders) {
    for (const z of o.zones) {
      const style = { color: "#6a1b9a", weight: 2, dashArray: "4 4", fillOpacity: 0.06 };
      const layer = z.shape.type === "circle"
        ? L.circle([z.shape.lat, z.shape.lon], { radius: z.shape.radius_m, ...style })
        : L.polygon(z.shape.ring, style);
      layer.bindTooltip(`${z.label} (${z.kind})`).addTo(map);
      state.zoneLayers.push(layer);
    }
  }
}

function renderPeople(): void {
  const ul = $("people");
  ul.replaceChildren();
  for (const p of [...state.positions.values()].sort((a, b) => a.device_id - b.device_id)) {
    const li = document.createElement("li");
    const age = ageSeconds(p.device_time);
    const h = state.health.get(p.device_id);
    const battery = h && h.battery_percent != null
      ? ` · <span class="${h.battery_percent < 20 ? "stale" : ""}">${t("battery")} ${Math.round(h.battery_percent)}%${h.charging ? " ⚡" : ""}</span>` : "";
    li.innerHTML = `<strong>${roleLabel(p.role)} #${p.person_id ?? "?"}</strong> · ${fmtAge(age)} · ±${Math.round(p.accuracy_m ?? 0)} m${battery}`
      + (age > STALE_AFTER_S ? ` <span class="stale">${t("stale")}</span>` : "");
    ul.appendChild(li);
  }
}

function renderAlerts(): void {
  const ol = $("alerts");
  ol.replaceChildren();
  // Informational notices (the offender is in the wider area) are for the victim's app; in the
  // queue they would teach officers to skim, so they are only counted here.
  const open = [...state.alerts.values()].filter((a) => a.state !== "resolved");
  const notices = open.filter((a) => a.severity === "info").length;
  const active = open.filter((a) => a.severity !== "info")
    .sort((a, b) => Number(b.severity === "critical") - Number(a.severity === "critical") || Date.parse(b.updated_at) - Date.parse(a.updated_at));
  $("no-alerts").hidden = active.length > 0;
  if (notices > 0) {
    const li = document.createElement("li");
    li.className = "notice-count";
    li.textContent = `+ ${notices} ${t("notices")}`;
    ol.appendChild(li);
  }
  for (const a of active) {
    const li = document.createElement("li");
    li.className = `alert-item ${a.severity}${a.condition_active ? "" : " cleared"}`;
    li.dataset.alertId = String(a.id);
    li.innerHTML = `<div class="rule">${RULES[lang][a.rule] || a.rule}</div>
      <div>${a.summary}</div>
      <div class="meta">#${a.id} · ${STATES[lang][a.state] ?? a.state} · ${fmtAge(ageSeconds(a.raised_at))}${a.condition_active ? "" : " · " + t("conditionCleared")}</div>`;
    for (const [label, st] of [[t("ack"), "acknowledged"], [t("resolve"), "resolved"]] as const) {
      if (a.state === st) continue;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.onclick = async () => {
        const body: Record<string, string> = { state: st };
        if (st === "resolved") {
          // Resolving requires a cause (it feeds the false-alarm measure).
          const cause = window.prompt(`${t("resolve")}: ${CAUSES.join(", ")}`, "true_violation");
          if (!cause || !CAUSES.includes(cause.trim())) return;
          body.cause = cause.trim();
        }
        const upd = await api<Alert>(`/api/v1/alerts/${a.id}/state`, { method: "POST", body: JSON.stringify(body) });
        state.alerts.set(upd.id, upd);
        renderAlerts();
      };
      li.appendChild(b);
    }
    ol.appendChild(li);
  }
}

async function loadSnapshot(): Promise<void> {
  const s = await api<Snapshot>("/api/v1/snapshot");
  state.skew = Date.parse(s.server_time) - Date.now();
  state.orders = s.orders;
  state.alerts = new Map(s.alerts.map((a) => [a.id, a]));
  // Device health (battery, charging) is shown beside each position; not fatal if refused.
  const devices = await api<Device[]>("/api/v1/devices").catch(() => [] as Device[]);
  state.health = new Map(devices.filter((d) => d.health).map((d) => [d.id, d.health as Health]));
  s.positions.forEach(drawPosition);
  drawZones();
  renderAlerts();
  renderPeople();
  if (!state.fitted && s.positions.length) {
    map.fitBounds(L.latLngBounds(s.positions.map((p) => [p.lat, p.lon] as L.LatLngTuple)).pad(0.2));
    state.fitted = true;
  }
}

function setStatus(text: string, degraded = false): void {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("degraded", degraded);
}

function connect(): void {
  const es = new EventSource(`/api/v1/live?access_token=${encodeURIComponent(token() ?? "")}`);
  es.onopen = () => {
    setStatus(t("live"));
    loadSnapshot().catch(console.error);
  };
  es.onerror = () => setStatus(t("reconnecting"), true);
  es.addEventListener("position", (e) => drawPosition(JSON.parse((e as MessageEvent).data) as Position));
  es.addEventListener("alert", (e) => {
    const a = JSON.parse((e as MessageEvent).data) as Alert;
    state.alerts.set(a.id, a);
    renderAlerts();
  });
  es.addEventListener("resync", () => loadSnapshot().catch(console.error));
}

function applyLang(): void {
  document.documentElement.lang = lang;
  document.querySelectorAll<HTMLElement>("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n as Key);
  });
  $("lang").textContent = lang === "ko" ? "EN" : "한국어";
  renderAlerts();
  renderPeople();
}

function showLogin(): void {
  setToken(null);
  $("login").hidden = false;
  $("username-input").focus();
}
setUnauthorizedHandler(showLogin);

$("lang").onclick = () => {
  lang = lang === "ko" ? "en" : "ko";
  localStorage.setItem("bw-lang", lang);
  applyLang();
};
$<HTMLFormElement>("login-form").onsubmit = async (e) => {
  e.preventDefault();
  const err = $("login-error");
  try {
    await login($<HTMLInputElement>("username-input").value, $<HTMLInputElement>("password-input").value,
      $<HTMLInputElement>("totp-input").value.trim() || undefined);
  } catch (x) {
    err.textContent = x instanceof ApiError && x.status === 401 ? t("loginFailed") : String((x as Error).message);
    err.hidden = false;
    return;
  }
  $<HTMLInputElement>("password-input").value = "";
  err.hidden = true;
  $("login").hidden = true;
  connect();
};

applyLang();
if (token()) connect();
else showLogin();
// Ages and staleness change with time even when nothing arrives.
setInterval(() => {
  renderPeople();
  for (const p of state.positions.values()) drawPosition(p);
}, 5000);
