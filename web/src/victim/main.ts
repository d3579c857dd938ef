// Bulwark victim app: a phone-first PWA for the protected person. It shows her status (safe,
// in the area, approaching, violation, protection degraded), the offender only when her
// disclosure rule allows it (always with the fix's age and accuracy), a one-hand silent SOS,
// her own location sharing, her order and the court's notices, her alerts (class sounds, a test
// alert, silent mode kept on the server, Web Push on this phone), who viewed her data, her
// petitions with their history, a quick exit and a discreet mode. It talks only to the
// `/api/v1/me/*` routes, petitions and the VAPID key, so it can never open another case.
//
// One module per screen, all rendering with the shared `h` (../shared/dom): `home` (banner,
// earlier alerts, offender facts; `map`, `share`, `sos` beside it), `alerts`, `orders`
// (orders and notices), `accesslog`, `petitions`, `push`, `exit` (quick exit, discreet mode);
// `state` holds what they share. This file signs her in, polls, and switches screens.
import "leaflet/dist/leaflet.css";
import "./style.css";
import { api, ApiError, login, setToken, setUnauthorizedHandler, token } from "../shared/api";
import { byId } from "../shared/dom";
import type { Me } from "../shared/wire";
import { loadAccessLog } from "./accesslog";
import { loadSettings, mostSevere, pollAlerts, signalNow, wireAlerts } from "./alerts";
import { applyDiscreet, wireExit } from "./exit";
import { RANK, render } from "./home";
import { ensureMap, mapShown, relabelMap } from "./map";
import { loadNotices, noticeHooks, renderNotices, renderOrders } from "./orders";
import { loadPetitions, wirePetitions } from "./petitions";
import { loadPush, renderPush, wirePush } from "./push";
import { permissionState, renderShare, startSharing, stopSharing, wireShare } from "./share";
import { wireSos } from "./sos";
import { app, hooks, lang, OFFLINE_AFTER_MS, POLL_MS, setLang, t, tr, type MyCase } from "./state";
import { type AlertClass, unlockAudio } from "./signal";

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
hooks.poll = () => void poll();
noticeHooks.changed = () => {
  if (app.screen === "petition-screen") void loadPetitions();
};

function startPolling(): void {
  window.clearInterval(app.pollTimer);
  void poll();
  app.pollTimer = window.setInterval(() => void poll(), POLL_MS);
}

function show(screen: string): void {
  app.screen = screen;
  for (const s of document.querySelectorAll<HTMLElement>("#app-screens > .screen")) s.hidden = s.id !== screen;
  for (const b of document.querySelectorAll<HTMLElement>("#tabs button")) {
    if (b.dataset.screen === screen) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  if (screen === "home") mapShown();
  if (screen === "order-screen") {
    renderOrders();
    void loadNotices();
  }
  if (screen === "alerts-screen") void pollAlerts();
  if (screen === "log-screen") void loadAccessLog();
  if (screen === "petition-screen") void loadPetitions();
}

function applyLang(): void {
  document.documentElement.lang = lang;
  document.querySelectorAll<HTMLElement>("[data-i18n]").forEach((el) => {
    el.textContent = tr(el.dataset.i18n ?? "");
  });
  byId("lang").textContent = lang === "ko" ? "EN" : "한국어";
  byId("lang").setAttribute("aria-label", lang === "ko" ? "EN — English" : "한국어 — Korean");
  relabelMap();
  byId("tabs").setAttribute("aria-label", t("menu"));
  applyDiscreet();
  render();
  if (app.screen === "order-screen") {
    renderOrders();
    renderNotices();
  }
  // Screens whose rows carry words re-render in the new language.
  if (app.screen === "alerts-screen") void pollAlerts();
  if (app.screen === "log-screen") void loadAccessLog();
  if (app.screen === "petition-screen") void loadPetitions();
  renderPush();
}

function signedIn(on: boolean): void {
  document.body.classList.toggle("signed-in", on);
  byId("login-screen").hidden = on;
  byId("app-screens").hidden = !on;
  byId("tabs").hidden = !on;
  byId("sos").hidden = !on;
}

function showLogin(): void {
  window.clearInterval(app.pollTimer);
  stopSharing();
  setToken(null);
  signedIn(false);
  byId("username-input").focus();
}

async function enter(): Promise<void> {
  const me = await api<Me>("/api/v1/auth/me");
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

wireExit();
wireShare();
wireSos();
wireAlerts();
wirePetitions();
wirePush();
setUnauthorizedHandler(showLogin);
for (const b of document.querySelectorAll<HTMLElement>("#tabs button")) b.onclick = () => show(b.dataset.screen ?? "home");
byId("lang").onclick = () => {
  setLang(lang === "ko" ? "en" : "ko");
  applyLang();
};
byId<HTMLFormElement>("login-form").onsubmit = async (e) => {
  e.preventDefault();
  unlockAudio();
  const err = byId("login-error");
  try {
    await login(byId<HTMLInputElement>("username-input").value.trim(), byId<HTMLInputElement>("password-input").value);
    await enter();
  } catch (x) {
    err.textContent = x instanceof ApiError && x.status === 401 ? t("loginFailed") : (x as Error).message;
    err.hidden = false;
    setToken(null);
    return;
  }
  byId<HTMLInputElement>("password-input").value = "";
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
