// Web Push on this phone: whether the browser can, its permission, subscribing with the
// server's VAPID key, and telling the service worker her language and discreet mode.
import { api, ApiError } from "../shared/api";
import { byId, setText } from "../shared/dom";
import type { VapidPublicKey } from "../shared/wire";
import { app, lang, t, tr } from "./state";

type PushState = "unsupported" | "off" | "on" | "working" | "denied" | "unavailable" | "error";
const push = { state: "off" as PushState, error: "" };

function pushSupported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

export function renderPush(): void {
  if (app.exited) return;
  const b = byId<HTMLButtonElement>("push-toggle");
  const el = byId("push-state");
  b.setAttribute("aria-pressed", String(push.state === "on"));
  b.textContent = push.state === "on" ? t("pushOn") : t("pushOff");
  b.disabled = push.state === "unsupported" || push.state === "working";
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
export async function loadPush(): Promise<void> {
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
    const { public_key } = await api<VapidPublicKey>("/api/v1/push/vapid-public-key");
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

/** The service worker words notifications; it needs her language and discreet mode. */
export function tellServiceWorker(): void {
  const msg = { type: "prefs", lang, discreet: localStorage.getItem("bw-discreet") === "1" };
  navigator.serviceWorker?.ready.then((r) => r.active?.postMessage(msg)).catch(() => {});
}

export function wirePush(): void {
  byId("push-toggle").onclick = () => void (push.state === "on" ? pushOff() : pushOn());
}
