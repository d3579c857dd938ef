// The access log for auditors: every decision (allowed or refused) with who, what, which case
// and the stated purpose; filters; and a check that each record links to the one before it.
import { api } from "../shared/api";
import { AUDIT_ACTIONS, OUTCOMES, PURPOSES, ROLES, label, t } from "./i18n";
import { errorBox, field, fmtTime, h, select } from "./util";

interface Rec {
  seq: number; time_us: number; actor_kind: string; actor_id: number; actor_role: string; action: string;
  case_id?: number | null; person_id?: number | null; device_id?: number | null;
  purpose_code?: string | null; purpose_text?: string | null; outcome: string; details: string; prev_hash: string; hash: string;
}

const PAGE = 5000;
const MAX_PAGES = 20;

export async function auditScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navAudit") }));
  const recs: Rec[] = [];
  try {
    for (let page = 0, after = 0; page < MAX_PAGES; page++) {
      const rows = await api<Rec[]>(`/api/v1/audit?after=${after}&limit=${PAGE}`);
      recs.push(...rows.filter((r) => r && typeof r.seq === "number"));
      if (rows.length < PAGE) break;
      after = recs[recs.length - 1].seq;
    }
  } catch (e) {
    root.append(errorBox(e));
    return () => {};
  }
  // Each record's prev_hash must be the hash of the record before it. (The hashes themselves
  // are verified by `bulwark audit verify` on the server; this is the visible part of it.)
  let broken: number | null = null;
  for (let i = 1; i < recs.length; i++) {
    if (recs[i].seq === recs[i - 1].seq + 1 && recs[i].prev_hash !== recs[i - 1].hash) { broken = recs[i].seq; break; }
  }
  // `prev_hash` is the record's field name, shown as code (the same in both languages).
  const [before, after] = t("chainOk").split("{code}");
  root.append(broken == null
    ? h("p", { id: "chain-status", class: "ok", role: "status" }, before, h("code", { translate: "no", text: "prev_hash" }), after ?? "", ` · ${recs.length} ${t("records")}`)
    : h("p", { id: "chain-status", class: "error", role: "status", text: `${t("chainBroken")} ${broken}` }));

  const actionCodes = [...new Set(recs.map((r) => r.action))].sort();
  // A code field with the codes offered by name (the datalist shows each action in words).
  const action = h("input", { name: "action", list: "audit-actions" });
  const datalist = h("datalist", { id: "audit-actions" }, ...actionCodes.map((a) => h("option", { value: a, label: label(AUDIT_ACTIONS, a) })));
  const actor = h("input", { name: "actor", type: "number", min: 0 });
  const caseIn = h("input", { name: "case", type: "number", min: 0 });
  const outcome = select([["", "—"], ["allowed", label(OUTCOMES, "allowed")], ["denied", label(OUTCOMES, "denied")]], "", { name: "outcome" });
  const text = h("input", { name: "text", type: "search" });
  const tbody = h("tbody", {});
  const count = h("p", { role: "status" });
  const render = () => {
    const f = recs.filter((r) => (!action.value || r.action === action.value.trim())
      && (!actor.value || r.actor_id === Number(actor.value))
      && (!caseIn.value || r.case_id === Number(caseIn.value))
      && (!outcome.value || r.outcome === outcome.value)
      && (!text.value || `${r.details} ${r.purpose_text ?? ""} ${r.purpose_code ?? ""}`.toLowerCase().includes(text.value.toLowerCase())));
    const shown = f.slice(-500).reverse();
    count.textContent = `${f.length} ${t("records")}${f.length > shown.length ? ` (${shown.length})` : ""}`;
    tbody.replaceChildren(...shown.map((r) => h("tr", { "data-action": r.action },
      h("td", { text: String(r.seq) }), h("td", { text: fmtTime(r.time_us / 1000) }),
      h("td", { text: `${label(ROLES, r.actor_role)} #${r.actor_id}` }), h("td", { text: label(AUDIT_ACTIONS, r.action) }), h("td", { text: r.case_id != null ? String(r.case_id) : "—" }),
      // What staff typed, and the record's own details, are shown as recorded: they are the
      // evidence, not interface text (`translate="no"`).
      h("td", { class: "purpose" }, r.purpose_code ? label(PURPOSES, r.purpose_code) : "—",
        r.purpose_text ? h("span", { translate: "no", text: `: ${r.purpose_text}` }) : null),
      h("td", { text: label(OUTCOMES, r.outcome) }), h("td", { class: "details", translate: "no", text: r.details }))));
  };
  const form = h("form", { class: "filters", role: "search", "aria-label": t("auditFilter") },
    field(t("auditAction"), action), field(`${t("actor")} #`, actor), field(`${t("case")} #`, caseIn), field(t("outcome"), outcome), field(t("details"), text), datalist);
  form.oninput = render;
  form.onsubmit = (e) => e.preventDefault();
  root.append(form, count, h("table", { class: "audit" },
    h("thead", {}, h("tr", {}, ...[t("seq"), t("time"), t("actor"), t("auditAction"), t("case"), t("purpose"), t("outcome"), t("details")].map((x) => h("th", { scope: "col", text: x })))),
    tbody));
  render();
  return () => {};
}
