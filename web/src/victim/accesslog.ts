// "Who viewed my data": the access-log rows about her case, grouped so that a case page opened
// twenty times by one person for one purpose is one line with a count and its time span.
import { api } from "../shared/api";
import { byId, h } from "../shared/dom";
import type { AccessLogEntry } from "../shared/wire";
import { ACTIONS, PURPOSES, ROLES } from "./i18n";
import { app, fmtTime, lang, t, timeEl } from "./state";

interface Group { r: AccessLogEntry; count: number; first: string }

/** Rows of the same person doing the same thing for the same purpose are one entry. */
export function groupAccess(rows: AccessLogEntry[]): Group[] {
  const key = (r: AccessLogEntry) => [r.actor_role, r.actor_name ?? "", r.action, r.outcome, r.purpose_code ?? "", r.purpose_text ?? ""].join("\u0000");
  const byKey = new Map<string, Group>();
  for (const r of [...rows].sort((a, b) => Date.parse(b.time) - Date.parse(a.time))) {
    const g = byKey.get(key(r));
    if (g) {
      g.count += 1;
      g.first = r.time;
    } else byKey.set(key(r), { r, count: 1, first: r.time });
  }
  return [...byKey.values()];
}

function row({ r, count, first }: Group): HTMLElement {
  const who = h("strong", {}, ROLES[lang][r.actor_role] ?? r.actor_role,
    r.actor_name ? h("span", { translate: "no", text: ` (${r.actor_name})` }) : null);
  // What staff typed as the purpose is shown as typed (`translate="no"`: data, not interface).
  const why = r.purpose_code
    ? [` · ${PURPOSES[lang][r.purpose_code] ?? r.purpose_code}`, r.purpose_text ? h("span", { translate: "no", text: `: ${r.purpose_text}` }) : null]
    : [];
  const span = count > 1
    ? [timeEl(first, fmtTime(first)), " – ", timeEl(r.time, fmtTime(r.time)), " · ",
      h("span", { class: "count", text: `${count}${lang === "ko" ? t("times") : ` ${t("times")}`}` })]
    : [timeEl(r.time, fmtTime(r.time))];
  return h("li", { class: `log-row ${r.outcome}`, "data-count": count }, who, ` — ${ACTIONS[lang][r.action] ?? r.action}`,
    h("div", { class: "meta" }, ...span, ...why, r.outcome === "denied" ? " · ✖" : ""));
}

export async function loadAccessLog(): Promise<void> {
  const ol = byId("access-log");
  try {
    const rows = await api<AccessLogEntry[]>("/api/v1/me/access-log");
    if (app.exited) return;
    const groups = groupAccess(rows);
    ol.replaceChildren(...(groups.length === 0 ? [h("li", { class: "empty", text: t("noLog") })] : groups.map(row)));
  } catch (e) {
    ol.replaceChildren(h("li", { class: "error", text: (e as Error).message }));
  }
}
