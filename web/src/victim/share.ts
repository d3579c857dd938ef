// Her own location sharing: the browser's permission, a watch on her position, at most one
// report every 5 s to `POST /api/v1/me/location`, and what the server last stored.
import { api, ApiError } from "../shared/api";
import { byId, h, swap } from "../shared/dom";
import type { OwnFixStored } from "../shared/wire";
import { ageS, app, fmtAge, fmtTime, t, tr } from "./state";

export const share = {
  on: false, watch: null as number | null, permission: "prompt", lastSent: null as string | null,
  lastAccuracy: null as number | null, error: "", lastPost: 0, lastFix: null as GeolocationPosition | null, sending: false,
};

export async function permissionState(): Promise<void> {
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

/** A browser position as the body of `POST /api/v1/me/location` (and an SOS's position). */
export function fixBody(pos: GeolocationPosition): Record<string, unknown> {
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
    const r = await api<OwnFixStored>("/api/v1/me/location", { method: "POST", body: JSON.stringify(fixBody(pos)) });
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

export function startSharing(): void {
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

export function stopSharing(): void {
  if (share.watch != null) navigator.geolocation.clearWatch(share.watch);
  share.watch = null;
  share.on = false;
  localStorage.removeItem("bw-share");
  renderShare();
}

export function renderShare(): void {
  if (app.exited) return;
  const b = byId("share-toggle");
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
  swap(byId("share-state"), ...rows.flatMap(([k, v, id]) => [h("dt", { text: k }), h("dd", { id, text: v })]));
}

export function wireShare(): void {
  byId("share-toggle").onclick = () => (share.on ? stopSharing() : startSharing());
}
