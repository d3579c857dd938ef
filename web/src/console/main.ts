// Bulwark monitoring console: log-in, role-based navigation (hash routes) and the screens.
// Screens: police "my tasks" (dispatches with the victim's position while the grant lasts),
// live map + alert queue, cases and the case page (with the zone editor), track
// replay, alert measures, unknown devices and accounts (administrators), court (clerks and
// judges), access log (auditors). Every screen shows a clear message when the server refuses.
import "leaflet/dist/leaflet.css";
import "./style.css";
import { api, login, setToken, setUnauthorizedHandler, token, ApiError } from "../shared/api";
import { ROLES, label, lang, setLang, t, type Key } from "./i18n";
import { askNotificationPermission, mute, resetAlarm, setBaseTitle, unlockAlarmAudio } from "./alarm";
import { alertChanged, connect, disconnect, liveScreen } from "./live";
import { casePage, casesScreen } from "./casepage";
import { replayScreen } from "./replay";
import { accountsScreen, unknownDevicesScreen } from "./admin";
import { courtScreen } from "./court";
import { auditScreen } from "./audit";
import { measuresScreen } from "./measures";
import { tasksScreen } from "./tasks";
import { h, type Me } from "./util";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

interface Route { path: string; key: Key; screen: (root: HTMLElement, arg?: string) => Promise<() => void> | (() => void) }
/** The stream's state, kept as a key so that a language change re-renders it. */
let statusKey: Key | null = null;
const setStatus = (key: Key | null, degraded = false): void => {
  statusKey = key;
  const el = $("status");
  el.textContent = key ? t(key) : "";
  el.classList.toggle("degraded", degraded);
};
/** A message about something just done (e.g. a fallback taken); it goes away after a while. */
let flashTimer: ReturnType<typeof setTimeout> | undefined;
const flash = (text: string): void => {
  $("flash").textContent = text;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { $("flash").textContent = ""; }, 15_000);
};
const ROUTES: Record<string, Route> = {
  tasks: { path: "#/tasks", key: "navTasks", screen: tasksScreen },
  live: { path: "#/live", key: "navLive", screen: (r) => liveScreen(r, flash) },
  cases: { path: "#/cases", key: "navCases", screen: (r, arg) => (arg ? casePage(r, Number(arg)) : casesScreen(r)) },
  replay: { path: "#/replay", key: "navReplay", screen: replayScreen },
  measures: { path: "#/measures", key: "navMeasures", screen: measuresScreen },
  unknown: { path: "#/devices/unknown", key: "navUnknown", screen: unknownDevicesScreen },
  accounts: { path: "#/accounts", key: "navAccounts", screen: accountsScreen },
  court: { path: "#/court", key: "navCourt", screen: courtScreen },
  audit: { path: "#/audit", key: "navAudit", screen: auditScreen },
};
/** What each role is shown in the navigation. The server decides access; this only avoids dead ends. */
const NAV: Record<string, string[]> = {
  monitoring_officer: ["live", "cases", "replay", "measures"],
  police: ["tasks", "live", "cases", "replay"],
  administrator: ["unknown", "accounts"],
  court_clerk: ["court"],
  judge: ["court"],
  auditor: ["audit"],
};

let me: Me | null = null;
let cleanup: () => void = () => {};

function routeOf(hash: string): { name: string; arg?: string } {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "devices" && parts[1] === "unknown") return { name: "unknown" };
  return { name: parts[0] ?? "", arg: parts[1] };
}

function renderNav(): void {
  const nav = $("nav");
  nav.setAttribute("aria-label", t("mainNav"));
  const current = routeOf(location.hash).name;
  nav.replaceChildren(h("ul", {}, ...(NAV[me?.role ?? ""] ?? []).map((n) =>
    h("li", {}, h("a", { href: ROUTES[n].path, "aria-current": n === current ? "page" : null, "data-route": n, text: t(ROUTES[n].key) })))));
}

async function route(): Promise<void> {
  if (!me) return;
  cleanup();
  cleanup = () => {};
  const view = $("view");
  view.replaceChildren();
  const allowed = NAV[me.role] ?? [];
  let { name, arg } = routeOf(location.hash);
  if (!name) {
    if (!allowed.length) { view.append(h("p", { class: "error", role: "alert", text: `${t("forbidden")} ${t("partyApp")}` })); renderNav(); return; }
    location.replace(ROUTES[allowed[0]].path);
    return;
  }
  renderNav();
  const r = ROUTES[name];
  if (!r) { view.append(h("p", { class: "error", role: "alert", text: t("notAvailable") })); return; }
  // Screens outside the role's navigation are still asked of the server, which refuses with
  // 403 and logs it; the screen then says so.
  const myView = h("div", { class: `screen screen-${name}` });
  view.append(myView);
  const c = await r.screen(myView, arg);
  if (view.contains(myView)) cleanup = c;
  else c();
}

async function start(): Promise<void> {
  try {
    me = await api<Me>("/api/v1/auth/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    $("view").replaceChildren(h("p", { class: "error", role: "alert", text: String((e as Error).message) }));
    return;
  }
  $("who").textContent = `${sessionStorage.getItem("bw-user") ?? ""} (${label(ROLES, me.role)})`;
  $("logout").hidden = false;
  if (me.role === "monitoring_officer" || me.role === "police") connect(setStatus);
  await route();
}

function showLogin(): void {
  setToken(null);
  disconnect();
  resetAlarm();
  setStatus(null);
  me = null;
  cleanup();
  cleanup = () => {};
  $("view").replaceChildren();
  $("nav").replaceChildren();
  $("who").textContent = "";
  $("logout").hidden = true;
  $("login").hidden = false;
  $("username-input").focus();
}
setUnauthorizedHandler(showLogin);

function applyLang(): void {
  setLang(lang);
  document.querySelectorAll<HTMLElement>("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n as Key);
  });
  const other = lang === "ko" ? "EN" : "한국어";
  $("lang").textContent = other;
  // The accessible name starts with the visible text (WCAG 2.5.3).
  $("lang").setAttribute("aria-label", `${other} — Language / 언어`);
  setBaseTitle(t("appTitle"));
  $("nav").setAttribute("aria-label", t("mainNav"));
  const st = $("status");
  if (statusKey) st.textContent = t(statusKey);
  if (me) $("who").textContent = `${sessionStorage.getItem("bw-user") ?? ""} (${label(ROLES, me.role)})`;
  const mute = $("mute");
  mute.textContent = document.body.dataset.alarm === "muted" ? t("alarmMuted") : t("mute");
}

$("lang").onclick = () => {
  setLang(lang === "ko" ? "en" : "ko");
  applyLang();
  // The alarm's title flash and notifications are worded anew in this language.
  if (me) alertChanged();
  void route();
};
$("logout").onclick = async () => {
  await api("/api/v1/auth/logout", { method: "POST" }).catch(() => undefined);
  showLogin();
};
$("mute").onclick = () => mute();
$<HTMLFormElement>("login-form").onsubmit = async (e) => {
  e.preventDefault();
  // The sign-in is the gesture that lets the alarm sound and asks to notify on this desktop.
  unlockAlarmAudio();
  askNotificationPermission();
  const err = $("login-error");
  try {
    const v = await login($<HTMLInputElement>("username-input").value, $<HTMLInputElement>("password-input").value,
      $<HTMLInputElement>("totp-input").value.trim() || undefined);
    sessionStorage.setItem("bw-user", v.account.username);
  } catch (x) {
    err.textContent = x instanceof ApiError && x.status === 401 ? t("loginFailed") : String((x as Error).message);
    err.hidden = false;
    return;
  }
  $<HTMLInputElement>("password-input").value = "";
  err.hidden = true;
  $("login").hidden = true;
  await start();
};
window.addEventListener("hashchange", () => {
  void route().then(() => {
    // After moving to another screen, keyboard and screen-reader users start at its content.
    if (!document.querySelector(".overlay")) $("view").focus({ preventScroll: true });
  });
});

applyLang();
if (token()) void start();
else showLogin();
