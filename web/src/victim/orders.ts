// Her orders and the court's notices: each order with its validity, days left, distances and
// zones; every notice, newest first; and the newest one on the home screen.
import { api, ApiError } from "../shared/api";
import { byId, h, swap } from "../shared/dom";
import { app, fmtDate, fmtTime, lang, serverNow, t, timeEl, tr, type Notice, type NoticeKind } from "./state";

/** Called when a new notice arrived (main.ts refreshes her petitions then). */
export const noticeHooks = { changed: (): void => {} };

export function renderOrders(): void {
  const el = byId("orders");
  const orders = app.data?.orders ?? [];
  if (orders.length === 0) {
    el.replaceChildren(h("p", { class: "note", text: t("noOrders") }));
    return;
  }
  const now = serverNow();
  el.replaceChildren(...orders.map((o) => {
    const inForce = Date.parse(o.valid_from) <= now && (!o.valid_to || Date.parse(o.valid_to) > now);
    const days = o.valid_to ? Math.max(0, Math.ceil((Date.parse(o.valid_to) - now) / 86_400_000)) : null;
    const zones = o.zones.map((z) => z.label).join(", ") || "—";
    const row = (k: string, v: string, cls?: string) => [h("dt", { text: k }), h("dd", { class: cls, text: v })];
    return h("article", { class: "card order", "data-order-id": o.id },
      h("h3", {}, `${tr(`kind_${o.kind}`)} `, h("span", { class: `pill ${inForce ? "ok" : "off"}`, text: inForce ? t("inForce") : t("notInForce") })),
      h("dl", { class: "kv" },
        ...row(t("validFrom"), fmtDate(o.valid_from)),
        ...row(t("validTo"), o.valid_to ? fmtDate(o.valid_to) : t("openEnded")),
        ...row(t("daysLeft"), days == null ? "—" : `${days} ${t("days")}`, "days-left"),
        ...row(t("noApproach"), `${o.no_approach_m} m`),
        ...row(t("warning"), `${o.warning_m} m`),
        ...row(t("disclosure"), `${o.disclosure_radius_m} m`),
        ...row(t("zones"), zones)));
  }));
}

/** The newest notice about an order (not about a petition still pending). */
export function latestOrderNotice(): Notice | null {
  const kinds: NoticeKind[] = ["granted", "modified", "extended", "amended", "expires_soon", "lapsed"];
  return [...app.notices].reverse().find((n) => kinds.includes(n.kind)) ?? null;
}

export async function loadNotices(): Promise<void> {
  try {
    const list = await api<Notice[]>("/api/v1/me/notices");
    const newest = list.length ? list[list.length - 1].id : 0;
    const before = app.notices.length ? app.notices[app.notices.length - 1].id : 0;
    app.notices = list;
    app.noticesError = "";
    // A decision changes her petitions and orders: show them fresh.
    if (newest !== before) noticeHooks.changed();
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

const noticeMeta = (n: Notice, meta: string): HTMLElement =>
  h("div", { class: "meta" }, `${meta}${meta ? " · " : ""}`, timeEl(n.created_at, fmtTime(n.created_at)));

/** The newest notice, on the home screen (a lapse there reads "protection has ended"). */
export function renderNotice(): void {
  if (app.exited) return;
  const el = byId("notice");
  if (app.noticesError && app.notices.length === 0) {
    el.hidden = false;
    el.className = "notice";
    el.dataset.kind = "error";
    swap(el, h("strong", { text: app.noticesError }));
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
  swap(el, h("strong", { text: title }), noticeMeta(n, meta));
}

/** Every notice, newest first, under her orders. */
export function renderNotices(): void {
  if (app.exited) return;
  const ol = byId("notices");
  if (app.noticesError) {
    ol.replaceChildren(h("li", { class: "error", role: "alert", text: app.noticesError }));
    return;
  }
  if (app.notices.length === 0) {
    ol.replaceChildren(h("li", { class: "empty", text: t("noNotices") }));
    return;
  }
  ol.replaceChildren(...[...app.notices].reverse().map((n) => {
    const { title, meta } = noticeText(n);
    return h("li", { class: `notice-row ${n.kind}`, "data-kind": n.kind }, h("strong", { text: title }), noticeMeta(n, meta));
  }));
}
