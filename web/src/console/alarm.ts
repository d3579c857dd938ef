// The monitoring centre's alarm: what makes a new critical alert or an SOS impossible to miss.
// - An audible alarm (Web Audio tones, no files) that repeats every few seconds while any
//   critical alert or SOS is still `raised` (not acknowledged), until it is acknowledged or
//   the officer mutes it (the mute lasts until the next new alarming alert).
// - A desktop notification per new alarming alert (permission asked at sign-in), tagged with
//   the alert id so a repeat replaces it, naming the person and the rule.
// - The page title flashes while the alarm sounds, so a console in a background tab shows it.
// The state is on `document.body.dataset` (`alarm`: off / ringing / muted; `alarmBeeps`;
// `notified`) so that the browser tests can read what the page did.
import { t } from "./i18n";
import type { Alert } from "./util";

/** A critical alert or an SOS nobody has acknowledged yet. */
export const alarming = (a: Alert): boolean => a.state === "raised" && (a.rule === "sos" || a.severity === "critical");

const REPEAT_MS = 4_000;
const FLASH_MS = 1_000;

let ctx: AudioContext | null = null;
let timer: ReturnType<typeof setInterval> | undefined;
let flashTimer: ReturnType<typeof setInterval> | undefined;
let muted = false;
let beeps = 0;
let baseTitle = document.title;
let flashText = "";
/** Alerts already announced (notification, unmute): each alarms once. */
const announced = new Set<number>();
let primed = false;

/** Browsers allow sound only after a gesture: called from the sign-in and the mute button. */
export function unlockAlarmAudio(): void {
  try {
    ctx ??= new AudioContext();
    if (ctx.state === "suspended") void ctx.resume();
  } catch {
    ctx = null;
  }
}

/** Asks for notification permission (from a gesture); nothing if already decided. */
export function askNotificationPermission(): void {
  if ("Notification" in window && Notification.permission === "default") void Notification.requestPermission().catch(() => {});
}

function tone(): void {
  beeps += 1;
  document.body.dataset.alarmBeeps = String(beeps);
  if (!ctx) return;
  // Three loud alternating square-wave tones: unlike the victim app's, meant for a room.
  let at = ctx.currentTime + 0.02;
  for (const f of [880, 660, 880]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = f;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.27);
    at += 0.3;
  }
}

function setState(state: "off" | "ringing" | "muted"): void {
  document.body.dataset.alarm = state;
  const b = document.getElementById("mute");
  if (b) {
    b.hidden = state === "off";
    b.setAttribute("aria-pressed", String(state === "muted"));
    b.textContent = state === "muted" ? t("alarmMuted") : t("mute");
  }
}

function startRinging(text: string): void {
  flashText = text;
  // A new wording (another alert, another language) shows at once, not at the next flash.
  if (document.title.startsWith("⚠")) document.title = `⚠ ${flashText}`;
  if (!timer) {
    tone();
    timer = setInterval(tone, REPEAT_MS);
  }
  if (!flashTimer) {
    baseTitle = document.title.startsWith("⚠") ? baseTitle : document.title;
    let on = false;
    flashTimer = setInterval(() => {
      on = !on;
      document.title = on ? `⚠ ${flashText}` : baseTitle;
    }, FLASH_MS);
    document.title = `⚠ ${flashText}`;
  }
  setState("ringing");
}

function stopRinging(state: "off" | "muted"): void {
  if (timer) clearInterval(timer);
  if (flashTimer) clearInterval(flashTimer);
  timer = flashTimer = undefined;
  if (document.title.startsWith("⚠")) document.title = baseTitle;
  setState(state);
}

/** The officer silences the alarm; a new alarming alert sounds again. */
export function mute(): void {
  muted = true;
  stopRinging("muted");
}

function notify(a: Alert, title: string, body: string): void {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification(title, { body, tag: `alert-${a.id}`, requireInteraction: true });
    n.onclick = () => {
      window.focus();
      location.hash = "#/live";
      n.close();
    };
    document.body.dataset.notified = String(Number(document.body.dataset.notified ?? "0") + 1);
  } catch {
    /* some browsers allow notifications only from a service worker */
  }
}

/**
 * Called with every alert list the console holds (snapshot or live event). `describe` gives
 * the alert's title and text (the person, the rule). Alerts present at the first call (the
 * snapshot when the officer signs in) ring but are not notified one by one.
 */
export function updateAlarm(alerts: Iterable<Alert>, describe: (a: Alert) => { title: string; body: string }): void {
  const ringing = [...alerts].filter(alarming).sort((a, b) => (b.rule === "sos" ? 1 : 0) - (a.rule === "sos" ? 1 : 0) || Date.parse(b.raised_at) - Date.parse(a.raised_at));
  let fresh = false;
  for (const a of ringing) {
    if (announced.has(a.id)) continue;
    announced.add(a.id);
    fresh = true;
    if (primed) {
      const d = describe(a);
      notify(a, d.title, d.body);
    }
  }
  primed = true;
  if (fresh) muted = false;
  if (!ringing.length) {
    stopRinging("off");
    muted = false;
    return;
  }
  if (muted) {
    setState("muted");
    return;
  }
  startRinging(describe(ringing[0]).title);
}

/** The page's own title in the current language; kept while the alarm flashes its own. */
export function setBaseTitle(text: string): void {
  baseTitle = text;
  if (!document.title.startsWith("⚠")) document.title = text;
}

/** Sign-out: silence and forget. */
export function resetAlarm(): void {
  stopRinging("off");
  announced.clear();
  primed = false;
  muted = false;
}
