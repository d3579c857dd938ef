// The home screen: the banner (what holds now, with the time of his fix it is based on), the
// earlier alerts apart from it (each with its time, unlike the now), the newest court notice,
// the map, the offender's facts when disclosed, the SOS note and her location sharing.
import { byId, h, setText, swap } from "../shared/dom";
import { drawMap } from "./map";
import { latestOrderNotice, renderNotice } from "./orders";
import { renderShare } from "./share";
import { renderSosNote } from "./sos";
import { ageS, app, compass, fmtAge, fmtClock, fmtTime, lang, OLD_FIX_S, t, timeEl, tr, type Status } from "./state";

const ICONS: Record<Status | "unknown", string> = { safe: "✓", in_area: "!", approaching: "▲", violation: "✖", degraded: "⚠", unknown: "?" };
export const RANK: Record<Status, number> = { safe: 0, in_area: 1, degraded: 2, approaching: 3, violation: 4 };

function renderBanner(): void {
  const d = app.data;
  const banner = byId("banner");
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
    setText(byId("banner-icon"), "■");
    setText(byId("banner-text"), t("status_ended"));
    setText(byId("banner-detail"), t("endedDetail"));
    return;
  }
  banner.className = `banner ${status}`;
  banner.dataset.status = status;
  setText(byId("banner-icon"), ICONS[status]);
  // A zone entered while he is not near her reads as that, not as "near you".
  const onlyZone = status === "violation" && d != null && !d.status_reasons.includes("proximity_violation");
  setText(byId("banner-text"), app.offline ? t("status_offline") : onlyZone ? t("status_zone") : tr(`status_${status}`));
  setText(byId("banner-detail"), detail);
}

/** The banner's "now" line: the time of his latest position the status is based on. */
function renderNow(): void {
  const el = byId("banner-now");
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
  const basis = t("basis");
  setText(el, `${t("nowAsOf")} ${fmtClock(n.as_of)}${basis ? ` ${basis}` : ""} (${fmtAge(ageS(n.as_of))})${n.fresh ? "" : ` · ${t("staleWarn")}`}`);
}

/** Earlier alerts, each with its time: what happened, shown apart from (and unlike) the now. */
function renderEarlier(): void {
  const list = app.data?.earlier ?? [];
  byId("earlier").hidden = list.length === 0;
  const ko = lang === "ko";
  swap(byId("earlier-list"), ...list.map((e) => {
    const end = e.ended_at
      ? h("span", { class: "ended", text: ko ? `${fmtTime(e.ended_at)} ${t("endedAt")}` : `${t("endedAt")} ${fmtTime(e.ended_at)}` })
      : e.still_watched ? h("span", { class: "ended", text: t("stillWatched") })
        : e.last_known ? h("span", { class: "ended", text: t("lastKnown") }) : null;
    return h("li", { class: "earlier-item", "data-rule": e.rule, "data-alert-id": e.alert_id },
      timeEl(e.raised_at), ` (${fmtAge(ageS(e.raised_at))}) · ${tr(`reason_${e.rule}`)}`,
      e.zone ? h("span", { translate: "no", text: ` (${e.zone})` }) : null,
      end ? " · " : null, end);
  }));
}

function fact(k: string, v: Node | string, cls = "fact", id?: string): HTMLElement {
  return h("div", { class: cls }, h("span", { class: "k", text: k }), h("span", { class: "v", id }, v));
}

function renderOffender(): void {
  const el = byId("offender");
  const d = app.data;
  if (!d) {
    swap(el);
    return;
  }
  const o = d.offender;
  if (o === "not_nearby" || o === "unknown") {
    el.className = `facts ${o}`;
    el.dataset.offender = o;
    swap(el, h("p", { class: "off-summary", text: o === "not_nearby" ? t("offNotNearby") : t("offUnknown") }));
    return;
  }
  const age = ageS(o.device_time);
  // Offline, the last answer is only a last known position: shown as old, with its age.
  const old = age > OLD_FIX_S || app.offline;
  const speed = o.speed_mps == null ? "—" : o.speed_mps < 0.5 ? t("stopped") : `${Math.round(o.speed_mps * 3.6)} ${t("kmh")}`;
  el.className = `facts disclosed${old ? " old" : ""}`;
  el.dataset.offender = "disclosed";
  el.dataset.distance = String(Math.round(o.distance_m));
  const arrow = h("span", { class: "bearing", "aria-hidden": "true", text: "↑" });
  arrow.style.transform = `rotate(${o.bearing_deg}deg)`;
  const direction = h("span", {}, arrow, ` ${compass(o.bearing_deg)}`);
  swap(el,
    fact(t("distance"), `${Math.round(o.distance_m)} m`, "fact big", "off-distance"),
    fact(t("direction"), direction, "fact big"),
    fact(t("age"), fmtAge(age), `fact age${old ? " old" : ""}`, "off-age"),
    fact(t("speed"), speed),
    fact(t("accuracy"), `±${Math.round(o.accuracy_m ?? 0)} m`),
    old ? h("p", { class: "old-warn", role: "alert", text: t("staleWarn") }) : null);
}

/** Renders everything the home screen shows (every second, and after every answer). */
export function render(): void {
  if (app.exited) return;
  renderBanner();
  renderNow();
  renderEarlier();
  renderNotice();
  renderOffender();
  renderSosNote();
  renderShare();
  const conn = byId("conn");
  conn.hidden = !app.offline;
  if (app.offline) setText(conn, byId("banner-detail").textContent ?? t("offline"));
  if (app.data) drawMap(app.data);
}
