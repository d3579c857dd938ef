// The alert queue: acknowledge, record actions, dispatch, resolve with a cause through an
// accessible dialog, and each alert's history. Alerts of the same case and order are grouped
// so that one incident (e.g. a no-approach violation and the warning before it) reads as one.
import { api, ApiError } from "../shared/api";
import { ACTIONS, CAUSES, PERSON_ROLES, RECORDABLE, ROLES, RULES, STATES, SUMMARIES, fill, label, lang, t } from "./i18n";
import { openDialog } from "./dialog";
import { alarming } from "./alarm";
import {
  ageSeconds, errorBox, field, fmtAge, fmtTime, h, select,
  type Alert, type AlertAction, type Case, type Device, type Order, type Person,
} from "./util";

export interface QueueState {
  alerts: Map<number, Alert>;
  cases: Case[];
  devices?: Device[];
  people?: Person[];
  orders?: Order[];
}

const personText = (p: Person): string => `${p.display_name} (${label(PERSON_ROLES, p.role)})`;

/**
 * Who an alert is about, by name and role: the device's wearer for device alerts (an SOS
 * names the person who pressed it), else the case's offender and protected person.
 */
export function whoOf(s: QueueState, a: Alert): string {
  const people = s.people ?? [];
  const dev = a.device_id != null ? s.devices?.find((d) => d.id === a.device_id) : undefined;
  const owner = dev?.owner_id != null ? people.find((p) => p.id === dev.owner_id) : undefined;
  if (owner) return personText(owner);
  const c = a.case_id != null ? s.cases.find((x) => x.id === a.case_id) : undefined;
  if (c) {
    const names = [c.offender_id, ...c.protected_ids].map((id) => people.find((p) => p.id === id)).filter((p): p is Person => !!p);
    if (names.length) return names.map(personText).join(" → ");
  }
  return t("nobody");
}

/** The alert in the reader's language, from its rule and structured fields; `distance` overrides. */
export function alertText(s: QueueState, a: Alert, distance: number | null | undefined = a.min_distance_m): string {
  const zone = s.orders?.flatMap((o) => o.zones).find((z) => z.id != null && z.id === a.zone_id)?.label ?? "";
  const params = { who: whoOf(s, a), d: distance != null ? Math.round(distance) : "—", zone: zone ? `«${zone}»` : "" };
  const parts = [fill(SUMMARIES[lang][a.rule] ?? label(RULES, a.rule), params)];
  if (a.closing_speed_mps != null && a.closing_speed_mps > 0.3) parts.push(fill(SUMMARIES[lang].closing, { c: a.closing_speed_mps.toFixed(1) }));
  if (a.time_to_contact_s != null && a.heading_toward) parts.push(fill(SUMMARIES[lang].contact, { t: Math.round(a.time_to_contact_s) }));
  if (a.late) parts.push(t("late"));
  if (a.certainty === "possible") parts.push(t("possible"));
  return parts.join(" · ");
}

type Changed = (a?: Alert) => void;

const caseRef = (s: QueueState, id?: number | null): string =>
  id == null ? t("noCase") : s.cases.find((c) => c.id === id)?.reference ?? `#${id}`;

export async function setState(id: number, body: Record<string, unknown>): Promise<Alert> {
  return api<Alert>(`/api/v1/alerts/${id}/state`, { method: "POST", body: JSON.stringify(body) });
}

function resolveDialog(a: Alert, done: Changed): void {
  const causes = select(Object.keys(CAUSES.en).map((c) => [c, label(CAUSES, c)]), undefined, { name: "cause", required: true });
  causes.prepend(h("option", { value: "", text: "—", selected: true }));
  const note = h("textarea", { name: "note", rows: 3, maxlength: 2000 });
  openDialog(`${t("resolveTitle")} #${a.id}`, [field(t("cause"), causes), field(t("note"), note)], t("resolve"), async (d) => {
    if (!causes.value) { d.error(t("cause")); causes.focus(); return false; }
    const body: Record<string, string> = { state: "resolved", cause: causes.value };
    if (note.value.trim()) body.note = note.value.trim();
    done(await setState(a.id, body));
    return true;
  });
}

function actionDialog(a: Alert, done: Changed): void {
  const kind = select(RECORDABLE.map((k) => [k, label(ACTIONS, k)]), "victim_called", { name: "action" });
  const note = h("textarea", { name: "note", rows: 3, maxlength: 2000 });
  openDialog(`${t("actionTitle")} #${a.id}`, [field(t("action"), kind), field(t("note"), note)], t("record"), async (d) => {
    if (kind.value === "note" && !note.value.trim()) { d.error(t("note")); return false; }
    const body: Record<string, string> = { action: kind.value };
    if (note.value.trim()) body.note = note.value.trim();
    await api(`/api/v1/alerts/${a.id}/actions`, { method: "POST", body: JSON.stringify(body) });
    done();
    return true;
  });
}

export interface PoliceUnit { account_id: number; username: string }

/** Dual dispatch: the officer goes to the offender; a police unit, if chosen, to the victim. */
function dispatchDialog(a: Alert, done: Changed, status: (s: string) => void): void {
  const police = select([["", t("officerOnly")]], "", { name: "police_account_id" });
  const d = openDialog(`${t("dispatchTitle")} #${a.id}`, [field(t("policeUnit"), police)], t("dispatch"), async () => {
    const body: Record<string, number> = {};
    if (police.value) body.police_account_id = Number(police.value);
    const r = await api<{ alert: Alert }>(`/api/v1/alerts/${a.id}/dispatch`, { method: "POST", body: JSON.stringify(body) });
    done(r.alert);
    return true;
  });
  api<PoliceUnit[]>("/api/v1/police-units").then((units) => {
    for (const u of units) police.append(h("option", { value: u.account_id, text: `${u.username} (#${u.account_id})` }));
  }).catch((e) => { d.error(errorBox(e).textContent ?? ""); status(errorBox(e).textContent ?? ""); });
}

/** The alert as it was at this step (stored with the step), not as it is now. */
export function stepState(x: AlertAction): string {
  const parts: string[] = [];
  if (x.min_distance_m != null) parts.push(`${Math.round(x.min_distance_m)} m`);
  if (x.condition_active != null) parts.push(x.condition_active ? t("conditionHeld") : t("conditionCleared"));
  return parts.length ? ` · (${t("at")}: ${parts.join(", ")})` : "";
}

export function historyList(log: AlertAction[]): HTMLElement {
  const ol = h("ol", { class: "history" });
  for (const x of log) {
    ol.append(h("li", {}, h("time", { datetime: x.at, text: fmtTime(x.at) }), " · ", h("strong", { text: label(ACTIONS, x.action) }),
      x.cause ? ` · ${label(CAUSES, x.cause)}` : "", x.note ? ` · “${x.note}”` : "", ` · ${label(ROLES, x.actor_role)} #${x.actor_account_id}`,
      stepState(x)));
  }
  if (!log.length) ol.append(h("li", { text: "—" }));
  return ol;
}

async function toggleHistory(li: HTMLElement, a: Alert, btn: HTMLButtonElement): Promise<void> {
  const old = li.querySelector(".history-box");
  if (old) { old.remove(); btn.setAttribute("aria-expanded", "false"); return; }
  const box = h("div", { class: "history-box" });
  li.append(box);
  btn.setAttribute("aria-expanded", "true");
  try {
    box.append(historyList(await api<AlertAction[]>(`/api/v1/alerts/${a.id}/history`)));
  } catch (e) {
    box.append(errorBox(e));
  }
}

function alertItem(s: QueueState, a: Alert, done: Changed, status: (s: string) => void): HTMLElement {
  const li = h("li", { class: `alert-item ${a.severity}${a.condition_active ? "" : " cleared"}${a.rule === "sos" ? " sos" : ""}${alarming(a) ? " alarming" : ""}`,
    "data-alert-id": a.id, "data-state": a.state, "data-rule": a.rule, "data-case-id": a.case_id ?? "" });
  li.append(
    h("div", { class: "rule", text: label(RULES, a.rule) }),
    h("div", { class: "who", text: whoOf(s, a) }),
    h("div", { class: "text", text: alertText(s, a) }),
    h("div", { class: "meta" }, `#${a.id} · ${STATES[lang][a.state] ?? a.state} · `,
      h("time", { datetime: a.raised_at, text: fmtTime(a.raised_at) }), ` (${fmtAge(ageSeconds(a.raised_at))})`,
      a.condition_active ? "" : ` · ${t("conditionCleared")}`),
  );
  const bar = h("div", { class: "buttons", role: "group", "aria-label": `${label(RULES, a.rule)} #${a.id}` });
  const btn = (text: string, cls: string, onclick: () => void) => bar.append(h("button", { type: "button", class: cls, text, onclick }));
  if (a.state === "raised") {
    btn(t("ack"), "ack", async () => {
      try { done(await setState(a.id, { state: "acknowledged" })); } catch (e) { status(errorBox(e).textContent ?? ""); }
    });
  }
  btn(t("actions"), "act", () => actionDialog(a, done));
  if (a.state !== "dispatched") btn(t("dispatch"), "dispatch", () => dispatchDialog(a, done, status));
  btn(t("resolve"), "resolve", () => resolveDialog(a, done));
  const hist = h("button", { type: "button", class: "hist", "aria-expanded": "false", text: t("history") });
  hist.onclick = () => toggleHistory(li, a, hist);
  bar.append(hist);
  li.append(bar);
  return li;
}

/** Renders the open alerts of `s` into `ol`, grouped by case and order; notices are counted only. */
export function renderQueue(ol: HTMLElement, empty: HTMLElement, s: QueueState, done: Changed, status: (s: string) => void,
  onShowCase?: (caseId: number) => void): void {
  // Keep an open history box open across re-renders.
  const openHistory = new Set([...ol.querySelectorAll<HTMLElement>(".alert-item")].filter((li) => li.querySelector(".history-box")).map((li) => li.dataset.alertId));
  // ... and keep keyboard focus on the same control of the same alert.
  const focused = document.activeElement as HTMLElement | null;
  const focusId = ol.contains(focused) ? focused?.closest<HTMLElement>(".alert-item")?.dataset.alertId : undefined;
  const focusCls = focused?.className;
  ol.replaceChildren();
  // Informational notices (the offender is in the wider area) are for the victim's app; in the
  // queue they would teach officers to skim, so they are only counted here.
  const open = [...s.alerts.values()].filter((a) => a.state !== "resolved");
  const notices = open.filter((a) => a.severity === "info").length;
  const active = open.filter((a) => a.severity !== "info");
  empty.hidden = active.length > 0;
  if (notices > 0) ol.append(h("li", { class: "notice-count", text: `+ ${notices} ${t("notices")}` }));
  // An SOS above everything, then what still holds above what has cleared, then severity.
  const rank = (a: Alert) => (a.rule === "sos" ? 100 : 0) + (a.condition_active ? 10 : 0)
    + (a.severity === "critical" ? 2 : a.severity === "warning" ? 1 : 0);
  const groups = new Map<string, Alert[]>();
  for (const a of active) {
    const key = a.case_id != null ? `c${a.case_id}/o${a.order_id ?? "-"}` : `d${a.device_id ?? a.id}`;
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  const sorted = [...groups.values()].map((g) => g.sort((a, b) => rank(b) - rank(a) || Date.parse(b.updated_at) - Date.parse(a.updated_at)))
    .sort((a, b) => rank(b[0]) - rank(a[0]) || Date.parse(b[0].updated_at) - Date.parse(a[0].updated_at));
  for (const g of sorted) {
    const head = g[0];
    const inner = h("ol", { class: "group-items" });
    for (const a of g) {
      const li = alertItem(s, a, done, status);
      inner.append(li);
      if (openHistory.has(String(a.id))) li.querySelector<HTMLButtonElement>(".hist")?.click();
    }
    const title = head.case_id != null
      ? h("a", { href: `#/cases/${head.case_id}`, text: `${t("case")} ${caseRef(s, head.case_id)}` })
      : h("span", { text: whoOf(s, head) });
    const onMap = head.case_id != null && onShowCase
      ? h("button", { type: "button", class: "show-on-map", text: t("showOnMap"), onclick: () => onShowCase?.(head.case_id as number) })
      : null;
    ol.append(h("li", { class: `alert-group ${head.severity}${head.rule === "sos" ? " sos" : ""}`, "aria-label": `${t("group")}: ${g.length}`,
      "data-case-id": head.case_id ?? "" },
      h("div", { class: "group-head" }, title, g.length > 1 ? ` · ${g.length} ${t("alerts")}` : "", onMap ? " " : "", onMap), inner));
  }
  if (focusId && focusCls) {
    const again = ol.querySelector<HTMLElement>(`[data-alert-id="${focusId}"] button.${focusCls.split(" ")[0]}`)
      ?? ol.querySelector<HTMLElement>(`[data-alert-id="${focusId}"] button`);
    again?.focus();
  }
}

export const isForbidden = (e: unknown): boolean => e instanceof ApiError && e.status === 403;
