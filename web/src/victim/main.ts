// Bulwark victim app: a phone-first PWA for the protected person. It shows her status (safe,
// in the area, approaching, violation, protection degraded), the offender only when her
// disclosure rule allows it (always with the fix's age and accuracy), a one-hand silent SOS,
// her own location sharing, her order and the court's notices, her alerts (class sounds, a test
// alert, silent mode kept on the server, Web Push on this phone), who viewed her data, her
// petitions with their history, a quick exit and a discreet mode. It talks only to the
// `/api/v1/me/*` routes, petitions and the VAPID key, so it can never open another case.
import "leaflet/dist/leaflet.css";
import "./style.css";
import L from "leaflet";
import { api, ApiError, login, setToken, setUnauthorizedHandler, token } from "../shared/api";
import { ACTIONS, type Key, type Lang, PURPOSES, ROLES, WORDS } from "./i18n";
import { type AlertClass, signal, unlockAudio } from "./signal";

// ---- wire shapes ------------------------------------------------------------------------

interface OffenderPos {
  lat: number; lon: number; accuracy_m?: number | null; device_time: string; received_time?: string;
  distance_m: number; bearing_deg: number; course_deg?: number | null; speed_mps?: number | null; source?: string;
}
type Shape = { type: "circle"; lat: number; lon: number; radius_m: number } | { type: "polygon"; ring: [number, number][] };
interface Zone { label: string; kind: string; shape: Shape }
interface Order {
  id: number; case_id: number; kind: string; valid_from: string; valid_to?: string | null;
  no_approach_m: number; warning_m: number; disclosure_radius_m: number; zones: Zone[];
}
interface OwnPos { lat: number; lon: number; accuracy_m?: number | null; device_time: string; received_time: string; source: string; age_s: number; stale: boolean }
interface MyCase {
  case_id: number; orders: Order[]; offender: OffenderPos | "not_nearby" | "unknown";
  status: Status; status_reasons: string[]; expires_at: string | null; own_position: OwnPos | null;
  own_device: { id: number; kind: string } | null;
  sos: { alert_id: number; state: string; raised_at: string; updated_at: string } | null;
  server_time: string; stale_after_s: number;
  /** What his latest position shows now (with its time), apart from what happened earlier. */
  now?: { as_of: string | null; age_s: number | null; fresh: boolean; conditions: { rule: string; since: string; zone: string | null }[] };
  earlier?: Earlier[];
}
interface Earlier {
  alert_id: number; rule: string; state: string; raised_at: string; ended_at: string | null;
  last_known: boolean; still_watched: boolean; zone: string | null;
}
interface MyAlert { id: number; class: AlertClass; kind: string; state: string; raised_at: string; updated_at: string; severity: string }
interface AccessEntry { time: string; actor_role: string; actor_name?: string | null; action: string; outcome: string; purpose_code?: string | null; purpose_text?: string | null }
interface Conditions { no_approach_m: number; duration_days: number; no_contact_by_phone: boolean; electronic_monitoring: boolean }
interface PetitionEvent { at: string; actor_role: string; event: string; reasons?: string | null }
interface Petition {
  id: number; case_id: number; kind: string; state: "filed" | "under_review" | "denied" | "in_force" | "lapsed";
  petitioner: string; requested: Conditions; statement: string; filed_at: string; updated_at: string;
  order_id: number | null; events?: PetitionEvent[];
}
type NoticeKind = "petition_filed" | "under_review" | "granted" | "modified" | "denied" | "extended" | "amended" | "expires_soon" | "lapsed";
interface Notice {
  id: number; case_id: number; order_id: number | null; petition_id: number | null; recipient: string;
  kind: NoticeKind; valid_to: string | null; reasons: string | null; created_at: string;
}
interface Stored { fix_id: number; received_time: string; device_time: string; duplicate: boolean }
type Status = "safe" | "in_area" | "approaching" | "violation" | "degraded";

// ---- small helpers ----------------------------------------------------------------------

const POLL_MS = 3_000;
/** Without an answer for this long the app says so: protection degraded, never frozen. */
const OFFLINE_AFTER_MS = 10_000;
/** A disclosed position older than this is flagged as old, beside its age. */
const OLD_FIX_S = 60;
const HOLD_MS = 1_500;
const DEFAULT_EXIT = "https://www.weather.go.kr/";

let lang: Lang = localStorage.getItem("bw-lang") === "en" ? "en" : "ko";
const t = (k: Key): string => WORDS[lang][k];
const tr = (k: string): string => (WORDS[lang] as Record<string, string>)[k] ?? k;
const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
/** Sets text only when it changed, so live regions announce changes, not every tick. */
function setText(el: HTMLElement, v: string): void {
  if (el.textContent !== v) el.textContent = v;
}
function setHtml(el: HTMLElement, v: string): void {
  if (el.dataset.html !== v) {
    el.dataset.html = v;
    el.innerHTML = v;
  }
}
const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const app = {
  skew: 0,
  lastOk: 0,
  offline: false,
  data: null as MyCase | null,
  prevStatus: null as Status | null,
  // Silent mode lives on the server (`/api/v1/me/settings`); the copy here only covers the
  // moment between opening the app and the server's answer.
  silent: localStorage.getItem("bw-silent") === "1",
  seenAlerts: null as Set<number> | null,
  notices: [] as Notice[],
  noticesError: "",
  pollCount: 0,
  pollTimer: 0,
  /** Quick exit emptied the page: answers still in flight must not touch it. */
  exited: false,
  screen: "home",
};

const serverNow = (): number => Date.now() + app.skew;
const ageS = (iso: string): number => Math.max(0, (serverNow() - Date.parse(iso)) / 1000);
function fmtAge(s: number): string {
  if (s < 90) return `${Math.round(s)}${t("sec")} ${t("ago")}`;
  if (s < 5400) return `${Math.round(s / 60)}${t("min")} ${t("ago")}`;
  return `${Math.round(s / 3600)}${t("hour")} ${t("ago")}`;
}
const fmtTime = (iso: string): string =>
  new Date(iso).toLocaleString(lang === "ko" ? "ko-KR" : "en-GB", { dateStyle: "short", timeStyle: "medium" });
const fmtDate = (iso: string): string => new Date(iso).toLocaleDateString(lang === "ko" ? "ko-KR" : "en-GB");
function compass(deg: number): string {
  const ko = ["북", "북동", "동", "남동", "남", "남서", "서", "북서"];
  const en = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
  return (lang === "ko" ? ko : en)[Math.round(((deg % 360) + 360) % 360 / 45) % 8];
}

// ---- quick exit and discreet mode --------------------------------------------------------

function exitUrl(): string {
  return (window as unknown as { BULWARK_EXIT_URL?: string }).BULWARK_EXIT_URL || localStorage.getItem("bw-exit-url") || DEFAULT_EXIT;
}

/** Leaves at once: ends the session, forgets everything, and replaces this page in history. */
function quickExit(): void {
  const url = exitUrl();
  const tok = token();
  stopSharing();
  app.exited = true;
  window.clearInterval(app.pollTimer);
  if (tok) {
    void fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${tok}` }, keepalive: true }).catch(() => {});
  }
  setToken(null);
  sessionStorage.clear();
  for (const k of Object.keys(localStorage)) if (k.startsWith("bw-")) localStorage.removeItem(k);
  document.body.replaceChildren();
  document.title = t("discreetTitle");
  history.replaceState(null, "", "/app/");
  location.replace(url);
}

let lastEscape = 0;
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  const now = Date.now();
  if (now - lastEscape < 1_000) quickExit();
  lastEscape = now;
});
$("exit").onclick = quickExit;

function applyDiscreet(): void {
  const on = localStorage.getItem("bw-discreet") === "1";
  document.body.classList.toggle("discreet", on);
  // Nothing of the case stays on screen: a neutral cover instead (the SOS stays usable).
  $("cover").hidden = !on;
  $("discreet").setAttribute("aria-pressed", String(on));
  $("discreet").textContent = on ? t("discreetOn") : t("discreet");
  document.title = on ? t("discreetTitle") : t("appTitle");
  $("app-title").textContent = on ? t("discreetTitle") : t("appTitle");
  tellServiceWorker();
}
$("discreet").onclick = () => {
  localStorage.setItem("bw-discreet", localStorage.getItem("bw-discreet") === "1" ? "0" : "1");
  applyDiscreet();
};

// ---- map ---------------------------------------------------------------------------------

let map: L.Map | null = null;
const layers = {
  me: null as L.CircleMarker | null, meAcc: null as L.Circle | null, disclosure: null as L.Circle | null,
  off: null as L.Marker | null, offAcc: null as L.Circle | null, zones: [] as L.Layer[], fitted: 0,
};

function ensureMap(): L.Map {
  if (map) return map;
  map = L.map("map", { zoomControl: true, attributionControl: true }).setView([37.55, 126.98], 13);
  // The tile source is configurable (self-hosted tiles in production); without tiles the map
  // still shows people and zones on a plain grid, and says so.
  const src = (window as unknown as { BULWARK_TILES?: string }).BULWARK_TILES || localStorage.getItem("bw-tiles")
    || "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  const tiles = L.tileLayer(src, { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  let errors = 0;
  tiles.on("tileerror", () => {
    if (++errors !== 3 || !map) return;
    $("map").classList.add("offline");
    const notice = new L.Control({ position: "bottomleft" });
    notice.onAdd = () => {
      const d = L.DomUtil.create("div", "map-notice");
      d.textContent = t("tilesOffline");
      return d;
    };
    notice.addTo(map);
  });
  return map;
}

function offenderIcon(o: OffenderPos, old: boolean): L.DivIcon {
  const moving = o.course_deg != null && (o.speed_mps ?? 0) > 0.5;
  const arrow = moving ? `<div class="heading" style="transform: rotate(${o.course_deg}deg)"><div class="arrow"></div></div>` : "";
  return L.divIcon({
    className: `off-marker${old ? " old" : ""}`,
    html: `<div class="dot" role="img" aria-label="${t("offender")}">${arrow}</div>`,
    iconSize: [22, 22], iconAnchor: [11, 11],
  });
}

function drawMap(d: MyCase): void {
  const m = ensureMap();
  const own = d.own_position;
  const radius = Math.max(0, ...d.orders.map((o) => o.disclosure_radius_m));
  if (own) {
    const ll: L.LatLngTuple = [own.lat, own.lon];
    if (!layers.me) {
      layers.me = L.circleMarker(ll, { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1 }).addTo(m);
      layers.meAcc = L.circle(ll, { radius: own.accuracy_m ?? 0, color: "#1565c0", weight: 1, fillOpacity: 0.1 }).addTo(m);
      layers.disclosure = L.circle(ll, { radius, color: "#6a1b9a", weight: 1, dashArray: "6 6", fill: false, interactive: false }).addTo(m);
    }
    layers.me.setLatLng(ll).bindTooltip(`${t("me")} · ${fmtAge(own.age_s)} · ±${Math.round(own.accuracy_m ?? 0)} m`);
    layers.meAcc?.setLatLng(ll).setRadius(own.accuracy_m ?? 0);
    layers.disclosure?.setLatLng(ll).setRadius(radius);
    layers.me.setStyle({ fillColor: own.stale ? "#9e9e9e" : "#1565c0" });
  }
  const o = typeof d.offender === "object" ? d.offender : null;
  if (o) {
    const ll: L.LatLngTuple = [o.lat, o.lon];
    const old = ageS(o.device_time) > OLD_FIX_S || app.offline;
    if (!layers.off) {
      layers.off = L.marker(ll, { icon: offenderIcon(o, old), title: t("offender"), keyboard: false }).addTo(m);
      layers.offAcc = L.circle(ll, { radius: o.accuracy_m ?? 0, color: "#c62828", weight: 1, fillOpacity: 0.12 }).addTo(m);
    } else {
      layers.off.setLatLng(ll).setIcon(offenderIcon(o, old));
      layers.offAcc?.setLatLng(ll).setRadius(o.accuracy_m ?? 0);
    }
    layers.off.bindTooltip(`${t("offender")} · ${fmtAge(ageS(o.device_time))} · ±${Math.round(o.accuracy_m ?? 0)} m`);
  } else if (layers.off) {
    // Outside her radius or unknown: no marker at all (never a last-seen position as current).
    layers.off.remove();
    layers.offAcc?.remove();
    layers.off = null;
    layers.offAcc = null;
  }
  if (layers.zones.length === 0) {
    for (const order of d.orders) {
      for (const z of order.zones) {
        const style = { color: "#2e7d32", weight: 2, dashArray: "4 4", fillOpacity: 0.06 };
        const layer = z.shape.type === "circle"
          ? L.circle([z.shape.lat, z.shape.lon], { radius: z.shape.radius_m, ...style })
          : L.polygon(z.shape.ring, style);
        layers.zones.push(layer.bindTooltip(z.label).addTo(m));
      }
    }
  }
  // Fit once to her, and again when he first appears.
  const want = (own ? 1 : 0) + (o ? 1 : 0);
  if (want > layers.fitted) {
    const pts: L.LatLngTuple[] = [];
    if (own) pts.push([own.lat, own.lon]);
    if (o) pts.push([o.lat, o.lon]);
    if (pts.length === 1) m.setView(pts[0], 15);
    else m.fitBounds(L.latLngBounds(pts).pad(0.4));
    layers.fitted = want;
  }
}

// ---- home: banner and the offender's facts ------------------------------------------------

/** The newest notice about an order (not about a petition still pending). */
function latestOrderNotice(): Notice | null {
  const kinds: NoticeKind[] = ["granted", "modified", "extended", "amended", "expires_soon", "lapsed"];
  return [...app.notices].reverse().find((n) => kinds.includes(n.kind)) ?? null;
}

const ICONS: Record<Status | "unknown", string> = { safe: "✓", in_area: "!", approaching: "▲", violation: "✖", degraded: "⚠", unknown: "?" };
const RANK: Record<Status, number> = { safe: 0, in_area: 1, degraded: 2, approaching: 3, violation: 4 };

function renderBanner(): void {
  const d = app.data;
  const banner = $("banner");
  let status: Status | "unknown" = d ? d.status : "unknown";
  let detail = d ? d.status_reasons.filter((r) => r !== "in_area" || d.status === "in_area").map((r) => tr(`reason_${r}`)).join(" · ") : "";
  if (app.offline) {
    // The server is unreachable: whatever it said last may no longer be true.
    status = "degraded";
    detail = `${t("offline")}${app.lastOk ? ` · ${t("staleConn")} ${fmtAge((Date.now() - app.lastOk) / 1000)}` : ""}`;
  }
  // The newest court notice says the protection lapsed and no order is in force: say so
  // plainly instead of a generic "degraded" (a danger status still wins).
  const ended = !app.offline && d && status === "degraded" && d.status_reasons.includes("no_order_in_force")
    && latestOrderNotice()?.kind === "lapsed";
  if (ended) {
    banner.className = "banner ended";
    banner.dataset.status = "ended";
    setText($("banner-icon"), "■");
    setText($("banner-text"), t("status_ended"));
    setText($("banner-detail"), t("endedDetail"));
    return;
  }
  banner.className = `banner ${status}`;
  banner.dataset.status = status;
  setText($("banner-icon"), ICONS[status]);
  // A zone entered while he is not near her reads as that, not as "near you".
  const onlyZone = status === "violation" && d != null && !d.status_reasons.includes("proximity_violation");
  setText($("banner-text"), app.offline ? t("status_offline") : onlyZone ? t("status_zone") : tr(`status_${status}`));
  setText($("banner-detail"), detail);
}

/** The banner's "now" line: the time of his latest position the status is based on. */
function renderNow(): void {
  const el = $("banner-now");
  const n = app.data?.now;
  if (!app.data) {
    setText(el, "");
    return;
  }
  el.dataset.fresh = String(!!n?.fresh && !app.offline);
  if (!n?.as_of) {
    setText(el, t("nowNoFix"));
    return;
  }
  const at = new Date(n.as_of).toLocaleTimeString(lang === "ko" ? "ko-KR" : "en-GB");
  const basis = t("basis");
  setText(el, `${t("nowAsOf")} ${at}${basis ? ` ${basis}` : ""} (${fmtAge(ageS(n.as_of))})${n.fresh ? "" : ` · ${t("staleWarn")}`}`);
}

/** Earlier alerts, each with its time: what happened, shown apart from (and unlike) the now. */
function renderEarlier(): void {
  const box = $("earlier");
  const list = app.data?.earlier ?? [];
  box.hidden = list.length === 0;
  const ko = lang === "ko";
  setHtml($("earlier-list"), list.map((e) => {
    const when = `<time datetime="${e.raised_at}">${fmtTime(e.raised_at)}</time> (${fmtAge(ageS(e.raised_at))})`;
    const what = `${esc(tr(`reason_${e.rule}`))}${e.zone ? ` (${esc(e.zone)})` : ""}`;
    const end = e.ended_at
      ? `<span class="ended">${ko ? `${fmtTime(e.ended_at)} ${t("endedAt")}` : `${t("endedAt")} ${fmtTime(e.ended_at)}`}</span>`
      : e.still_watched ? `<span class="ended">${t("stillWatched")}</span>` : e.last_known ? `<span class="ended">${t("lastKnown")}</span>` : "";
    return `<li class="earlier-item" data-rule="${esc(e.rule)}" data-alert-id="${e.alert_id}">${when} · ${what}${end ? ` · ${end}` : ""}</li>`;
  }).join(""));
}

function renderOffender(): void {
  const el = $("offender");
  const d = app.data;
  if (!d) {
    setHtml(el, "");
    return;
  }
  const o = d.offender;
  if (o === "not_nearby" || o === "unknown") {
    el.className = `facts ${o}`;
    el.dataset.offender = o;
    setHtml(el, `<p class="off-summary">${o === "not_nearby" ? t("offNotNearby") : t("offUnknown")}</p>`);
    return;
  }
  const age = ageS(o.device_time);
  // Offline, the last answer is only a last known position: shown as old, with its age.
  const old = age > OLD_FIX_S || app.offline;
  const speed = o.speed_mps == null ? "—" : o.speed_mps < 0.5 ? t("stopped") : `${Math.round(o.speed_mps * 3.6)} ${t("kmh")}`;
  el.className = `facts disclosed${old ? " old" : ""}`;
  el.dataset.offender = "disclosed";
  el.dataset.distance = String(Math.round(o.distance_m));
  setHtml(el, `
    <div class="fact big"><span class="k">${t("distance")}</span><span class="v" id="off-distance">${Math.round(o.distance_m)} m</span></div>
    <div class="fact big"><span class="k">${t("direction")}</span><span class="v"><span class="bearing" aria-hidden="true" style="transform: rotate(${o.bearing_deg}deg)">↑</span> ${compass(o.bearing_deg)}</span></div>
    <div class="fact age${old ? " old" : ""}"><span class="k">${t("age")}</span><span class="v" id="off-age">${fmtAge(age)}</span></div>
    <div class="fact"><span class="k">${t("speed")}</span><span class="v">${speed}</span></div>
    <div class="fact"><span class="k">${t("accuracy")}</span><span class="v">±${Math.round(o.accuracy_m ?? 0)} m</span></div>
    ${old ? `<p class="old-warn" role="alert">${t("staleWarn")}</p>` : ""}`);
}

function renderSosNote(): void {
  if (app.exited) return;
  const el = $("sos-note");
  const s = sos.state;
  const remote = app.data?.sos;
  let text = "";
  if (s === "holding") text = t("sosHold");
  else if (s === "sending") text = t("sosSending");
  else if (s === "retrying") text = `${t("sosRetry")} ${sos.error}`;
  else if (s === "failed") text = sos.error;
  else if (s === "sent" && sos.sentAt) text = `${t("sosSent")} · ${t("sosAt")} ${new Date(sos.sentAt).toLocaleTimeString(lang === "ko" ? "ko-KR" : "en-GB")}`;
  if (remote && (s === "sent" || s === "idle")) text += `${text ? " · " : ""}SOS: ${tr(`sos_${remote.state}`)}`;
  setText(el, text);
  el.dataset.state = s;
  el.hidden = text === "";
}

function render(): void {
  if (app.exited) return;
  renderBanner();
  renderNow();
  renderEarlier();
  renderNotice();
  renderOffender();
  renderSosNote();
  renderShare();
  const conn = $("conn");
  conn.hidden = !app.offline;
  if (app.offline) setText(conn, $("banner-detail").textContent ?? t("offline"));
  if (app.data) drawMap(app.data);
}

// ---- polling -----------------------------------------------------------------------------

async function poll(): Promise<void> {
  if (app.exited) return;
  try {
    const d = await api<MyCase>("/api/v1/me/case");
    app.skew = Date.parse(d.server_time) - Date.now();
    app.lastOk = Date.now();
    app.offline = false;
    app.data = d;
    const worse = app.prevStatus !== null && RANK[d.status] > RANK[app.prevStatus];
    let cls: AlertClass | null = null;
    if (worse) cls = d.status === "approaching" || d.status === "violation" ? "danger" : d.status === "degraded" ? "technical" : null;
    app.prevStatus = d.status;
    cls = mostSevere(cls, await pollAlerts());
    if (cls) signalNow(cls);
    // Court notices change rarely: every fifth answer (and at once after she files).
    if (app.pollCount++ % 5 === 0) await loadNotices();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    if (Date.now() - app.lastOk > OFFLINE_AFTER_MS || !(e instanceof ApiError)) app.offline = true;
  }
  render();
}

function mostSevere(a: AlertClass | null, b: AlertClass | null): AlertClass | null {
  const rank = { danger: 3, technical: 2, test: 1 } as const;
  if (!a) return b;
  if (!b) return a;
  return rank[a] >= rank[b] ? a : b;
}

/** Plays the class's sound and vibration (nothing in silent mode); the page keeps what it did. */
function signalNow(cls: AlertClass): void {
  document.body.dataset.lastSignal = signal(cls, app.silent);
}

/** New alerts since the last poll (the class to signal), and the alerts list. */
async function pollAlerts(): Promise<AlertClass | null> {
  let list: MyAlert[];
  try {
    list = await api<MyAlert[]>("/api/v1/me/alerts");
  } catch (e) {
    if (app.exited) return null;
    if (!(e instanceof ApiError && e.status === 401)) setText($("alerts-note"), `${t("alertsFailed")}: ${(e as Error).message}`);
    return null;
  }
  if (app.exited) return null;
  setText($("alerts-note"), "");
  let cls: AlertClass | null = null;
  if (app.seenAlerts) {
    // A new alert sounds once. One already closed when it arrives does not, except her own
    // test alert, which the server stores closed and whose point is to be heard.
    for (const a of list) {
      if (!app.seenAlerts.has(a.id) && (a.state !== "resolved" || a.class === "test")) cls = mostSevere(cls, a.class);
    }
  }
  app.seenAlerts = new Set(list.map((a) => a.id));
  renderAlerts(list);
  return cls;
}

function renderAlerts(list: MyAlert[]): void {
  if (app.exited) return;
  const ol = $("alerts");
  ol.replaceChildren();
  if (list.length === 0) {
    ol.innerHTML = `<li class="empty">${t("noAlerts")}</li>`;
    return;
  }
  // Newest raised first, whatever order the server kept them in.
  const sorted = [...list].sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at) || b.id - a.id);
  for (const a of sorted) {
    const li = document.createElement("li");
    li.className = `alert ${a.class}`;
    li.dataset.alertId = String(a.id);
    li.dataset.class = a.class;
    li.innerHTML = `<strong><span class="pill ${a.class}">${esc(tr(`class_${a.class}`))}</span> ${esc(tr(`reason_${a.kind}`))}</strong>
      <div class="meta">${esc(tr(`state_${a.state}`))} · <time datetime="${a.raised_at}">${fmtTime(a.raised_at)}</time> (${fmtAge(ageS(a.raised_at))})</div>`;
    ol.appendChild(li);
  }
}

function startPolling(): void {
  window.clearInterval(app.pollTimer);
  void poll();
  app.pollTimer = window.setInterval(() => void poll(), POLL_MS);
}

// ---- her own location sharing --------------------------------------------------------------

const share = {
  on: false, watch: null as number | null, permission: "prompt", lastSent: null as string | null,
  lastAccuracy: null as number | null, error: "", lastPost: 0, lastFix: null as GeolocationPosition | null, sending: false,
};

async function permissionState(): Promise<void> {
  if (!("geolocation" in navigator)) {
    share.permission = "unsupported";
    return;
  }
  try {
    const p = await navigator.permissions.query({ name: "geolocation" });
    share.permission = p.state;
    p.onchange = () => {
      share.permission = p.state;
      renderShare();
    };
  } catch {
    /* Permissions API missing: the watch's errors will say */
  }
}

function fixBody(pos: GeolocationPosition): Record<string, unknown> {
  const c = pos.coords;
  const num = (v: number | null): number | null => (v == null || Number.isNaN(v) ? null : v);
  return {
    lat: c.latitude, lon: c.longitude, accuracy_m: c.accuracy, time: new Date(pos.timestamp).toISOString(),
    speed_mps: num(c.speed), course_deg: num(c.heading),
  };
}

async function sendFix(pos: GeolocationPosition): Promise<void> {
  share.lastFix = pos;
  // At most one report every 5 s; the server stores a resend once anyway.
  if (share.sending || Date.now() - share.lastPost < 5_000) return;
  share.sending = true;
  share.lastPost = Date.now();
  try {
    const r = await api<Stored>("/api/v1/me/location", { method: "POST", body: JSON.stringify(fixBody(pos)) });
    share.lastSent = r.received_time;
    share.lastAccuracy = pos.coords.accuracy;
    share.error = "";
  } catch (e) {
    share.error = e instanceof ApiError && e.code === "no_own_device" ? t("noDevice") : (e as Error).message;
  } finally {
    share.sending = false;
  }
  renderShare();
}

function startSharing(): void {
  if (!("geolocation" in navigator)) {
    share.permission = "unsupported";
    renderShare();
    return;
  }
  share.on = true;
  localStorage.setItem("bw-share", "1");
  share.watch = navigator.geolocation.watchPosition(
    (pos) => {
      share.permission = "granted";
      void sendFix(pos);
    },
    (err) => {
      share.error = err.code === err.PERMISSION_DENIED ? t("geoDenied") : err.code === err.TIMEOUT ? t("geoTimeout") : t("geoUnavailable");
      if (err.code === err.PERMISSION_DENIED) share.permission = "denied";
      renderShare();
    },
    { enableHighAccuracy: true, maximumAge: 5_000, timeout: 30_000 },
  );
  void permissionState().then(renderShare);
  renderShare();
}

function stopSharing(): void {
  if (share.watch != null) navigator.geolocation.clearWatch(share.watch);
  share.watch = null;
  share.on = false;
  localStorage.removeItem("bw-share");
  renderShare();
}

function renderShare(): void {
  if (app.exited) return;
  const b = $("share-toggle");
  b.setAttribute("aria-pressed", String(share.on));
  b.textContent = share.on ? t("shareOn") : t("shareOff");
  const own = app.data?.own_position;
  const rows: [string, string, string][] = [
    [t("permission"), tr(`perm_${share.permission}`), "share-permission"],
    [t("sharing"), share.on ? t("sharingOn") : t("sharingOff"), "share-status"],
    [t("lastSent"), share.lastSent ? `${fmtTime(share.lastSent)} (${fmtAge(ageS(share.lastSent))})` : "—", "share-last-sent"],
    [t("lastFix"), share.lastAccuracy != null ? `±${Math.round(share.lastAccuracy)} m` : "—", "share-accuracy"],
  ];
  if (own) rows.push([t("serverPosition"), `${fmtAge(own.age_s)} · ±${Math.round(own.accuracy_m ?? 0)} m · ${tr(`source_${own.source}`)}`, "share-server"]);
  if (share.error) rows.push([t("shareError"), share.error, "share-error"]);
  setHtml($("share-state"), rows.map(([k, v, id]) => `<dt>${esc(k)}</dt><dd id="${id}">${esc(v)}</dd>`).join(""));
}

$("share-toggle").onclick = () => (share.on ? stopSharing() : startSharing());

// ---- SOS: press and hold, silent ---------------------------------------------------------

const sos = { state: "idle" as "idle" | "holding" | "sending" | "retrying" | "sent" | "failed", started: 0, raf: 0, sentAt: 0, error: "" };
const RING = 2 * Math.PI * 45;
const ring = document.getElementById("sos-ring") as unknown as SVGCircleElement;
ring.style.strokeDasharray = String(RING);
ring.style.strokeDashoffset = String(RING);

function holdStart(): void {
  if (sos.state === "holding" || sos.state === "sending") return;
  unlockAudio();
  sos.state = "holding";
  sos.started = performance.now();
  $("sos").classList.add("holding");
  const step = (): void => {
    if (sos.state !== "holding") return;
    const f = Math.min(1, (performance.now() - sos.started) / HOLD_MS);
    ring.style.strokeDashoffset = String(RING * (1 - f));
    if (f >= 1) {
      void sendSos();
      return;
    }
    sos.raf = requestAnimationFrame(step);
  };
  sos.raf = requestAnimationFrame(step);
  renderSosNote();
}

function holdEnd(): void {
  if (sos.state !== "holding") return;
  cancelAnimationFrame(sos.raf);
  sos.state = "idle";
  ring.style.strokeDashoffset = String(RING);
  $("sos").classList.remove("holding");
  renderSosNote();
}

/** Sends the SOS (no sound, no vibration) and keeps retrying until the server has it. */
async function sendSos(): Promise<void> {
  sos.state = "sending";
  $("sos").classList.remove("holding");
  $("sos").classList.add("sending");
  $("sos-note").dataset.sendStart = String(Date.now());
  renderSosNote();
  const body: Record<string, unknown> = { time: new Date().toISOString() };
  const fix = share.lastFix;
  if (fix && Date.now() - fix.timestamp < 60_000) body.position = fixBody(fix);
  for (let attempt = 0; ; attempt++) {
    try {
      await api("/api/v1/me/sos", { method: "POST", body: JSON.stringify(body) });
      sos.state = "sent";
      sos.sentAt = Date.now();
      $("sos-note").dataset.sentAt = String(sos.sentAt);
      break;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 403 || e.status === 409 || e.status === 401)) {
        sos.state = "failed";
        sos.error = e.code === "no_own_device" ? t("noDevice") : e.message;
        break;
      }
      sos.state = "retrying";
      sos.error = (e as Error).message;
      renderSosNote();
      await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
    }
  }
  $("sos").classList.remove("sending");
  ring.style.strokeDashoffset = String(RING);
  renderSosNote();
  void poll();
}

const sosBtn = $("sos");
sosBtn.addEventListener("pointerdown", (e) => {
  sosBtn.setPointerCapture(e.pointerId);
  holdStart();
});
for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) sosBtn.addEventListener(ev, holdEnd);
sosBtn.addEventListener("contextmenu", (e) => e.preventDefault());
sosBtn.addEventListener("keydown", (e) => {
  if ((e.key === " " || e.key === "Enter") && !e.repeat) {
    e.preventDefault();
    holdStart();
  }
});
sosBtn.addEventListener("keyup", (e) => {
  if (e.key === " " || e.key === "Enter") holdEnd();
});

// ---- other screens -------------------------------------------------------------------------

function show(screen: string): void {
  app.screen = screen;
  for (const s of document.querySelectorAll<HTMLElement>("#app-screens > .screen")) s.hidden = s.id !== screen;
  for (const b of document.querySelectorAll<HTMLElement>("#tabs button")) {
    if (b.dataset.screen === screen) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  if (screen === "home") setTimeout(() => map?.invalidateSize(), 0);
  if (screen === "order-screen") {
    renderOrders();
    void loadNotices();
  }
  if (screen === "alerts-screen") void pollAlerts();
  if (screen === "log-screen") void loadAccessLog();
  if (screen === "petition-screen") void loadPetitions();
}
for (const b of document.querySelectorAll<HTMLElement>("#tabs button")) b.onclick = () => show(b.dataset.screen ?? "home");

function renderOrders(): void {
  const el = $("orders");
  const orders = app.data?.orders ?? [];
  if (orders.length === 0) {
    el.innerHTML = `<p class="note">${t("noOrders")}</p>`;
    return;
  }
  const now = serverNow();
  el.innerHTML = orders.map((o) => {
    const inForce = Date.parse(o.valid_from) <= now && (!o.valid_to || Date.parse(o.valid_to) > now);
    const days = o.valid_to ? Math.max(0, Math.ceil((Date.parse(o.valid_to) - now) / 86_400_000)) : null;
    const zones = o.zones.map((z) => esc(z.label)).join(", ") || "—";
    return `<article class="card order" data-order-id="${o.id}">
      <h3>${esc(tr(`kind_${o.kind}`))} <span class="pill ${inForce ? "ok" : "off"}">${inForce ? t("inForce") : t("notInForce")}</span></h3>
      <dl class="kv">
        <dt>${t("validFrom")}</dt><dd>${fmtDate(o.valid_from)}</dd>
        <dt>${t("validTo")}</dt><dd>${o.valid_to ? fmtDate(o.valid_to) : t("openEnded")}</dd>
        <dt>${t("daysLeft")}</dt><dd class="days-left">${days == null ? "—" : `${days} ${t("days")}`}</dd>
        <dt>${t("noApproach")}</dt><dd>${o.no_approach_m} m</dd>
        <dt>${t("warning")}</dt><dd>${o.warning_m} m</dd>
        <dt>${t("disclosure")}</dt><dd>${o.disclosure_radius_m} m</dd>
        <dt>${t("zones")}</dt><dd>${zones}</dd>
      </dl></article>`;
  }).join("");
}

/**
 * Rows of the same person doing the same thing for the same purpose are one entry with a
 * count and the time span: a case page opened twenty times is one line, not twenty.
 */
function groupAccess(rows: AccessEntry[]): { r: AccessEntry; count: number; first: string }[] {
  const key = (r: AccessEntry) => [r.actor_role, r.actor_name ?? "", r.action, r.outcome, r.purpose_code ?? "", r.purpose_text ?? ""].join("\u0000");
  const byKey = new Map<string, { r: AccessEntry; count: number; first: string }>();
  for (const r of [...rows].sort((a, b) => Date.parse(b.time) - Date.parse(a.time))) {
    const g = byKey.get(key(r));
    if (g) {
      g.count += 1;
      g.first = r.time;
    } else byKey.set(key(r), { r, count: 1, first: r.time });
  }
  return [...byKey.values()];
}

async function loadAccessLog(): Promise<void> {
  const ol = $("access-log");
  try {
    const rows = await api<AccessEntry[]>("/api/v1/me/access-log");
    if (app.exited) return;
    const groups = groupAccess(rows);
    ol.innerHTML = groups.length === 0 ? `<li class="empty">${t("noLog")}</li>` : groups.map(({ r, count, first }) => {
      const who = `${ROLES[lang][r.actor_role] ?? r.actor_role}${r.actor_name ? ` (${esc(r.actor_name)})` : ""}`;
      const why = r.purpose_code ? ` · ${esc(PURPOSES[lang][r.purpose_code] ?? r.purpose_code)}${r.purpose_text ? `: ${esc(r.purpose_text)}` : ""}` : "";
      const span = count > 1
        ? `<time datetime="${first}">${fmtTime(first)}</time> – <time datetime="${r.time}">${fmtTime(r.time)}</time> · <span class="count">${count}${lang === "ko" ? t("times") : ` ${t("times")}`}</span>`
        : `<time datetime="${r.time}">${fmtTime(r.time)}</time>`;
      return `<li class="log-row ${r.outcome}" data-count="${count}"><strong>${esc(who)}</strong> — ${esc(ACTIONS[lang][r.action] ?? r.action)}
        <div class="meta">${span}${why}${r.outcome === "denied" ? " · ✖" : ""}</div></li>`;
    }).join("");
  } catch (e) {
    ol.innerHTML = `<li class="error">${esc((e as Error).message)}</li>`;
  }
}

// ---- petitions: the form, and hers with their history -------------------------------------

function conditionsText(c: Conditions): string {
  const parts = [`${t("noApproach")} ${c.no_approach_m} m`, `${c.duration_days} ${t("days")}`];
  if (c.no_contact_by_phone) parts.push(t("pPhone"));
  if (c.electronic_monitoring) parts.push(t("pEm"));
  return parts.join(" · ");
}

async function loadPetitions(): Promise<void> {
  const ol = $("petitions");
  try {
    const rows = await api<Petition[]>("/api/v1/petitions");
    // The list has no history; each petition's own answer has it (her case only).
    const full = await Promise.all(rows.map((p) => api<Petition>(`/api/v1/petitions/${p.id}`).catch(() => p)));
    full.sort((a, b) => b.id - a.id);
    if (app.exited) return;
    ol.innerHTML = full.length === 0 ? `<li class="empty">${t("noPetitions")}</li>` : full.map((p) => {
      const events = (p.events ?? []).map((e) =>
        `<li data-event="${esc(e.event)}"><time datetime="${e.at}">${fmtTime(e.at)}</time> — ${esc(tr(`pev_${e.event}`))}${e.reasons ? ` · ${t("reasons")}: ${esc(e.reasons)}` : ""}</li>`).join("");
      return `<li class="petition" data-petition-id="${p.id}" data-state="${esc(p.state)}">
        <strong>${esc(tr(`kind_${p.kind}`))}</strong> <span class="pill ${esc(p.state)}">${esc(tr(`pstate_${p.state}`))}</span>
        <div class="meta">${fmtDate(p.filed_at)} · ${t("requested")}: ${esc(conditionsText(p.requested))}${p.order_id != null ? ` · ${t("order")} #${p.order_id}` : ""}</div>
        ${events ? `<ol class="events">${events}</ol>` : ""}</li>`;
    }).join("");
  } catch (e) {
    ol.innerHTML = `<li class="error" role="alert">${t("petitionsFailed")}: ${esc((e as Error).message)}</li>`;
  }
}

$<HTMLFormElement>("petition-form").onsubmit = async (e) => {
  e.preventDefault();
  const out = $("petition-result");
  const caseId = app.data?.case_id;
  if (caseId == null) {
    out.textContent = `${t("pFailed")}: ${t("offline")}`;
    return;
  }
  const body = {
    case_id: caseId,
    kind: $<HTMLSelectElement>("p-kind").value,
    requested: {
      no_approach_m: Number($<HTMLInputElement>("p-distance").value),
      duration_days: Number($<HTMLInputElement>("p-days").value),
      no_contact_by_phone: $<HTMLInputElement>("p-phone").checked,
      electronic_monitoring: $<HTMLInputElement>("p-em").checked,
    },
    statement: $<HTMLTextAreaElement>("p-statement").value.trim(),
  };
  try {
    const p = await api<Petition>("/api/v1/petitions", { method: "POST", body: JSON.stringify(body) });
    out.textContent = `${t("pSent")} (#${p.id}, ${tr(`pstate_${p.state}`)})`;
    out.dataset.petitionId = String(p.id);
    $<HTMLTextAreaElement>("p-statement").value = "";
    void loadPetitions();
    void loadNotices();
  } catch (x) {
    out.textContent = `${t("pFailed")}: ${(x as Error).message}`;
  }
};

// ---- court notices -------------------------------------------------------------------------

async function loadNotices(): Promise<void> {
  try {
    const list = await api<Notice[]>("/api/v1/me/notices");
    const newest = list.length ? list[list.length - 1].id : 0;
    const before = app.notices.length ? app.notices[app.notices.length - 1].id : 0;
    app.notices = list;
    app.noticesError = "";
    // A decision changes her petitions and orders: show them fresh.
    if (newest !== before && app.screen === "petition-screen") void loadPetitions();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    app.noticesError = `${t("noticesFailed")}: ${(e as Error).message}`;
  }
  if (app.exited) return;
  renderNotice();
  if (app.screen === "order-screen") renderNotices();
}

function noticeText(n: Notice): { title: string; meta: string } {
  const parts: string[] = [];
  if (n.valid_to) {
    const d = fmtDate(n.valid_to);
    if (n.kind === "lapsed" || n.kind === "expires_soon") parts.push(`${t("endsOn")}: ${d}`);
    else parts.push(lang === "ko" ? `${d}${t("until")}` : `${t("until")} ${d}`);
  }
  if (n.reasons) parts.push(`${t("reasons")}: ${n.reasons}`);
  return { title: tr(`notice_${n.kind}`), meta: parts.join(" · ") };
}

/** The newest notice, on the home screen (a lapse there reads "protection has ended"). */
function renderNotice(): void {
  if (app.exited) return;
  const el = $("notice");
  if (app.noticesError && app.notices.length === 0) {
    el.hidden = false;
    el.className = "notice";
    el.dataset.kind = "error";
    setHtml(el, `<strong>${esc(app.noticesError)}</strong>`);
    return;
  }
  const n = app.notices[app.notices.length - 1];
  el.hidden = !n;
  if (!n) return;
  const { title, meta } = noticeText(n);
  el.className = `notice ${n.kind}`;
  el.dataset.kind = n.kind;
  el.dataset.noticeId = String(n.id);
  el.setAttribute("role", n.kind === "lapsed" || n.kind === "expires_soon" ? "alert" : "status");
  setHtml(el, `<strong>${esc(title)}</strong><div class="meta">${esc(meta)}${meta ? " · " : ""}<time datetime="${n.created_at}">${fmtTime(n.created_at)}</time></div>`);
}

/** Every notice, newest first, under her orders. */
function renderNotices(): void {
  if (app.exited) return;
  const ol = $("notices");
  if (app.noticesError) {
    ol.innerHTML = `<li class="error" role="alert">${esc(app.noticesError)}</li>`;
    return;
  }
  ol.innerHTML = app.notices.length === 0 ? `<li class="empty">${t("noNotices")}</li>` : [...app.notices].reverse().map((n) => {
    const { title, meta } = noticeText(n);
    return `<li class="notice-row ${n.kind}" data-kind="${n.kind}"><strong>${esc(title)}</strong>
      <div class="meta">${esc(meta)}${meta ? " · " : ""}<time datetime="${n.created_at}">${fmtTime(n.created_at)}</time></div></li>`;
  }).join("");
}

// ---- alerts: test alert, silent mode (on the server) ----------------------------------------

$("test-alert").onclick = async () => {
  unlockAudio();
  const note = $("test-note");
  try {
    await api("/api/v1/me/alerts/test", { method: "POST" });
    note.textContent = t("testSent");
    // Fetch at once: the new test alert is listed and sounds (unless silent).
    const cls = await pollAlerts();
    if (cls) signalNow(cls);
  } catch (e) {
    note.textContent = `${t("testFailed")}: ${(e as Error).message}`;
  }
};

async function loadSettings(): Promise<void> {
  try {
    const s = await api<{ silent: boolean }>("/api/v1/me/settings");
    if (app.exited) return;
    app.silent = s.silent;
    localStorage.setItem("bw-silent", app.silent ? "1" : "0");
    setText($("settings-note"), "");
  } catch (e) {
    if (app.exited) return;
    if (!(e instanceof ApiError && e.status === 401)) setText($("settings-note"), `${t("settingsLoadFailed")}: ${(e as Error).message}`);
  }
  $<HTMLInputElement>("silent").checked = app.silent;
}
$<HTMLInputElement>("silent").onchange = async () => {
  const box = $<HTMLInputElement>("silent");
  const want = box.checked;
  // Quiet at once (he may be near); louder only once the server has it.
  if (want) app.silent = true;
  try {
    const s = await api<{ silent: boolean }>("/api/v1/me/settings", { method: "PUT", body: JSON.stringify({ silent: want }) });
    app.silent = s.silent;
    localStorage.setItem("bw-silent", app.silent ? "1" : "0");
    setText($("settings-note"), "");
    box.dataset.saved = String(s.silent);
  } catch (e) {
    setText($("settings-note"), `${t("settingsFailed")}: ${(e as Error).message}`);
  }
  box.checked = app.silent;
};

// ---- Web Push on this phone ----------------------------------------------------------------

type PushState = "unsupported" | "off" | "on" | "working" | "denied" | "unavailable" | "error";
const push = { state: "off" as PushState, error: "" };

function pushSupported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function renderPush(): void {
  if (app.exited) return;
  const b = $("push-toggle");
  const el = $("push-state");
  b.setAttribute("aria-pressed", String(push.state === "on"));
  b.textContent = push.state === "on" ? t("pushOn") : t("pushOff");
  (b as HTMLButtonElement).disabled = push.state === "unsupported" || push.state === "working";
  el.dataset.state = push.state;
  setText(el, `${tr(`push_${push.state}`)}${push.error ? ` (${push.error})` : ""}`);
}

/** The base64url VAPID key as the bytes `applicationServerKey` takes. */
function b64urlBytes(s: string): Uint8Array<ArrayBuffer> {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(b.length));
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer`)), ms))]);
}

async function pushRegistration(): Promise<ServiceWorkerRegistration> {
  return withTimeout(navigator.serviceWorker.ready, 10_000, "service worker");
}

/** What this browser can do and whether it is subscribed now. */
async function loadPush(): Promise<void> {
  push.error = "";
  if (!pushSupported()) {
    push.state = "unsupported";
  } else if (Notification.permission === "denied") {
    push.state = "denied";
  } else {
    try {
      const reg = await pushRegistration();
      const sub = await reg.pushManager.getSubscription();
      // Posted again at each sign-in (the browser may have renewed it since); the server
      // keeps one row per endpoint.
      if (sub) await api("/api/v1/me/push-subscriptions", { method: "POST", body: JSON.stringify(sub.toJSON()) });
      push.state = sub ? "on" : "off";
    } catch (e) {
      push.state = e instanceof ApiError ? "error" : "unavailable";
      push.error = (e as Error).message;
    }
  }
  renderPush();
}

async function pushOn(): Promise<void> {
  push.state = "working";
  push.error = "";
  renderPush();
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      push.state = "denied";
      return;
    }
    const { public_key } = await api<{ public_key: string }>("/api/v1/push/vapid-public-key");
    const reg = await pushRegistration();
    let sub: PushSubscription;
    try {
      sub = await withTimeout(
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(public_key) }),
        20_000, "push service");
    } catch (e) {
      // No push service behind this browser (headless, some privacy browsers): say so.
      push.state = "unavailable";
      push.error = (e as Error).message;
      return;
    }
    await api("/api/v1/me/push-subscriptions", { method: "POST", body: JSON.stringify(sub.toJSON()) });
    push.state = "on";
  } catch (e) {
    push.state = "error";
    push.error = (e as Error).message;
  } finally {
    renderPush();
  }
}

async function pushOff(): Promise<void> {
  push.state = "working";
  push.error = "";
  renderPush();
  try {
    const reg = await pushRegistration();
    const sub = await reg.pushManager.getSubscription();
    if (sub) {
      // The server first, so that it stops sending; a subscription it never had is fine.
      await api("/api/v1/me/push-subscriptions", { method: "DELETE", body: JSON.stringify({ endpoint: sub.endpoint }) })
        .catch((e) => {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
        });
      await sub.unsubscribe();
    }
    push.state = "off";
  } catch (e) {
    push.state = "error";
    push.error = (e as Error).message;
  } finally {
    renderPush();
  }
}

$("push-toggle").onclick = () => void (push.state === "on" ? pushOff() : pushOn());

/** The service worker words notifications; it needs her language and discreet mode. */
function tellServiceWorker(): void {
  const msg = { type: "prefs", lang, discreet: localStorage.getItem("bw-discreet") === "1" };
  navigator.serviceWorker?.ready.then((r) => r.active?.postMessage(msg)).catch(() => {});
}

// ---- language, sign-in, start ------------------------------------------------------------

function applyLang(): void {
  document.documentElement.lang = lang;
  document.querySelectorAll<HTMLElement>("[data-i18n]").forEach((el) => {
    el.textContent = tr(el.dataset.i18n ?? "");
  });
  $("lang").textContent = lang === "ko" ? "EN" : "한국어";
  $("lang").setAttribute("aria-label", lang === "ko" ? "EN — English" : "한국어 — Korean");
  $("map").setAttribute("aria-label", t("mapLabel"));
  // The tiles' offline notice was written in the language of its moment.
  document.querySelectorAll<HTMLElement>("#map .map-notice").forEach((n) => { n.textContent = t("tilesOffline"); });
  $("tabs").setAttribute("aria-label", lang === "ko" ? "메뉴" : "Menu");
  applyDiscreet();
  render();
  if (app.screen === "order-screen") {
    renderOrders();
    renderNotices();
  }
  renderPush();
}
$("lang").onclick = () => {
  lang = lang === "ko" ? "en" : "ko";
  localStorage.setItem("bw-lang", lang);
  applyLang();
};

function signedIn(on: boolean): void {
  document.body.classList.toggle("signed-in", on);
  $("login-screen").hidden = on;
  $("app-screens").hidden = !on;
  $("tabs").hidden = !on;
  $("sos").hidden = !on;
}

function showLogin(): void {
  window.clearInterval(app.pollTimer);
  stopSharing();
  setToken(null);
  signedIn(false);
  $("username-input").focus();
}
setUnauthorizedHandler(showLogin);

async function enter(): Promise<void> {
  const me = await api<{ role: string }>("/api/v1/auth/me");
  if (me.role !== "victim") {
    setToken(null);
    throw new Error(t("notVictim"));
  }
  signedIn(true);
  show("home");
  ensureMap();
  startPolling();
  void loadSettings();
  void loadNotices();
  void loadPush();
  if (localStorage.getItem("bw-share") === "1") startSharing();
  void permissionState().then(renderShare);
}

$<HTMLFormElement>("login-form").onsubmit = async (e) => {
  e.preventDefault();
  unlockAudio();
  const err = $("login-error");
  try {
    await login($<HTMLInputElement>("username-input").value.trim(), $<HTMLInputElement>("password-input").value);
    await enter();
  } catch (x) {
    err.textContent = x instanceof ApiError && x.status === 401 ? t("loginFailed") : (x as Error).message;
    err.hidden = false;
    setToken(null);
    return;
  }
  $<HTMLInputElement>("password-input").value = "";
  err.hidden = true;
};
document.addEventListener("pointerdown", unlockAudio, { once: true });

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
}

applyLang();
if (token()) enter().catch(showLogin);
else showLogin();
// Ages change with time even when nothing arrives; the offline banner must appear by itself.
setInterval(() => {
  if (app.lastOk && Date.now() - app.lastOk > OFFLINE_AFTER_MS) app.offline = true;
  render();
}, 1_000);
