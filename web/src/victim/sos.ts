// The SOS: press and hold for 1.5 s (pointer or keyboard), sent silently (no sound, no
// vibration) with her last position if it is fresh, retried until the server has it.
import { api, ApiError } from "../shared/api";
import { byId, setText } from "../shared/dom";
import { fixBody, share } from "./share";
import { app, fmtClock, hooks, t, tr } from "./state";
import { unlockAudio } from "./signal";

const HOLD_MS = 1_500;
const RING = 2 * Math.PI * 45;
const sos = { state: "idle" as "idle" | "holding" | "sending" | "retrying" | "sent" | "failed", started: 0, raf: 0, sentAt: 0, error: "" };

const ring = (): SVGCircleElement => document.getElementById("sos-ring") as unknown as SVGCircleElement;

export function renderSosNote(): void {
  if (app.exited) return;
  const el = byId("sos-note");
  const s = sos.state;
  const remote = app.data?.sos;
  let text = "";
  if (s === "holding") text = t("sosHold");
  else if (s === "sending") text = t("sosSending");
  else if (s === "retrying") text = `${t("sosRetry")} ${sos.error}`;
  else if (s === "failed") text = sos.error;
  else if (s === "sent" && sos.sentAt) text = `${t("sosSent")} · ${t("sosAt")} ${fmtClock(sos.sentAt)}`;
  if (remote && (s === "sent" || s === "idle")) text += `${text ? " · " : ""}SOS: ${tr(`sos_${remote.state}`)}`;
  setText(el, text);
  el.dataset.state = s;
  el.hidden = text === "";
}

function holdStart(): void {
  if (sos.state === "holding" || sos.state === "sending") return;
  unlockAudio();
  sos.state = "holding";
  sos.started = performance.now();
  byId("sos").classList.add("holding");
  const step = (): void => {
    if (sos.state !== "holding") return;
    const f = Math.min(1, (performance.now() - sos.started) / HOLD_MS);
    ring().style.strokeDashoffset = String(RING * (1 - f));
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
  ring().style.strokeDashoffset = String(RING);
  byId("sos").classList.remove("holding");
  renderSosNote();
}

/** Sends the SOS (no sound, no vibration) and keeps retrying until the server has it. */
async function sendSos(): Promise<void> {
  sos.state = "sending";
  byId("sos").classList.remove("holding");
  byId("sos").classList.add("sending");
  byId("sos-note").dataset.sendStart = String(Date.now());
  renderSosNote();
  const body: Record<string, unknown> = { time: new Date().toISOString() };
  const fix = share.lastFix;
  if (fix && Date.now() - fix.timestamp < 60_000) body.position = fixBody(fix);
  for (let attempt = 0; ; attempt++) {
    try {
      await api("/api/v1/me/sos", { method: "POST", body: JSON.stringify(body) });
      sos.state = "sent";
      sos.sentAt = Date.now();
      byId("sos-note").dataset.sentAt = String(sos.sentAt);
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
  byId("sos").classList.remove("sending");
  ring().style.strokeDashoffset = String(RING);
  renderSosNote();
  hooks.poll();
}

export function wireSos(): void {
  ring().style.strokeDasharray = String(RING);
  ring().style.strokeDashoffset = String(RING);
  const btn = byId("sos");
  btn.addEventListener("pointerdown", (e) => {
    btn.setPointerCapture(e.pointerId);
    holdStart();
  });
  for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) btn.addEventListener(ev, holdEnd);
  btn.addEventListener("contextmenu", (e) => e.preventDefault());
  btn.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      holdStart();
    }
  });
  btn.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") holdEnd();
  });
}
