// Court staff: the petitions of the court's queue with their state and history; the clerk
// starts the review, the judge decides (grant, grant with changed conditions, deny: reasons
// are required to modify or deny); an order's versions and its extension (judges); the
// notices addressed to the court. Every step goes to the server, which decides who may.
import { api } from "../shared/api";
import { PETITION_STATES, label, t } from "./i18n";
import { openDialog } from "./dialog";
import { errorBox, field, fmtTime, h, select, type Me } from "./util";

interface Conditions { no_approach_m: number; duration_days: number; no_contact_by_phone?: boolean; electronic_monitoring?: boolean }
interface PetitionEvent { at: string; actor_account_id?: number | null; actor_role: string; event: string; reasons?: string | null; details?: string | null }
export interface Petition {
  id: number; case_id: number; kind: string; state: string; petitioner: string; petitioner_account_id: number;
  requested: Conditions; statement: string; filed_at: string; updated_at: string; order_id?: number | null; events?: PetitionEvent[];
}
export interface OrderVersion {
  order_id: number; version: number; valid_from: string; valid_to?: string | null; in_force: boolean; kind: string;
  no_approach_m: number; warning_m?: number | null; disclosure_radius_m?: number | null; no_contact_by_phone: boolean;
  electronic_monitoring: boolean; zones: unknown[]; reasons?: string | null; issued_at: string; issued_by?: number | null;
}
interface Notice { id: number; case_id: number; order_id?: number | null; petition_id?: number | null; kind: string; valid_to?: string | null; reasons?: string | null; created_at: string }

const condText = (c: Conditions): string =>
  `${t("noApproach")} ${c.no_approach_m} m · ${c.duration_days} d${c.no_contact_by_phone ? ` · ${t("noContactPhone")}` : ""}${c.electronic_monitoring ? " · EM" : ""}`;

function decideDialog(p: Petition, reload: () => Promise<void>): void {
  const decision = select([["grant", t("grant")], ["modify", t("modify")], ["deny", t("deny")]], "grant", { name: "decision" });
  const na = h("input", { name: "no_approach_m", type: "number", min: 1, step: 1, value: p.requested.no_approach_m });
  const days = h("input", { name: "duration_days", type: "number", min: 1, step: 1, value: p.requested.duration_days });
  const phone = h("input", { name: "no_contact_by_phone", type: "checkbox", checked: !!p.requested.no_contact_by_phone });
  const reasons = h("textarea", { name: "reasons", rows: 3 });
  const conds = h("fieldset", { class: "conditions", disabled: true }, h("legend", { text: t("conditions") }),
    field(t("noApproach"), na), field(t("durationDays"), days), field(t("noContactPhone"), phone));
  decision.onchange = () => { conds.disabled = decision.value !== "modify"; };
  openDialog(`${t("decide")} #${p.id}`, [field(t("decision"), decision), conds, field(t("reasons"), reasons)], t("save"), async (d) => {
    const why = reasons.value.trim();
    if (decision.value !== "grant" && !why) { d.error(t("reasonsNeeded")); reasons.focus(); return false; }
    const body: Record<string, unknown> = { decision: decision.value, reasons: why };
    if (decision.value === "modify") {
      body.conditions = { no_approach_m: Number(na.value), duration_days: Number(days.value), no_contact_by_phone: phone.checked,
        electronic_monitoring: !!p.requested.electronic_monitoring };
    }
    try {
      await api(`/api/v1/petitions/${p.id}/decision`, { method: "POST", body: JSON.stringify(body) });
    } catch (e) {
      d.error(errorBox(e).textContent ?? "");
      return false;
    }
    await reload();
    return true;
  });
}

function historyOf(p: Petition): HTMLElement {
  return h("ol", { class: "petition-history" }, ...(p.events ?? []).map((e) =>
    h("li", {}, h("time", { datetime: e.at, text: fmtTime(e.at) }), ` · `, h("strong", { text: e.event }),
      ` · ${e.actor_role}${e.actor_account_id != null ? ` #${e.actor_account_id}` : ""}`,
      e.reasons ? ` · “${e.reasons}”` : "", e.details ? ` · ${e.details}` : "")));
}

export async function courtScreen(root: HTMLElement): Promise<() => void> {
  const me = await api<Me>("/api/v1/auth/me").catch(() => null);
  const role = me?.role ?? "";
  const petitionsBox = h("div", { "aria-live": "polite" });
  const msg = h("p", { role: "status", class: "msg" });
  const versionsBox = h("div", { class: "versions", id: "versions", "aria-live": "polite" });
  const noticesBox = h("div", { class: "notices" });
  let shownOrder: number | null = null;

  const orderId = h("input", { name: "order_id", type: "number", min: 1, required: true });
  const days = h("input", { name: "extend_days", type: "number", min: 1, max: 3650, value: 30 });
  const extReasons = h("textarea", { name: "reasons", rows: 2 });
  const extMsg = h("p", { role: "status", class: "msg ext-msg" });

  const loadVersions = async (id: number) => {
    shownOrder = id;
    orderId.value = String(id);
    versionsBox.replaceChildren(h("h4", { text: `${t("order")} #${id}` }));
    try {
      const vs = await api<OrderVersion[]>(`/api/v1/orders/${id}/versions`);
      versionsBox.append(h("table", { class: "order-versions" },
        h("thead", {}, h("tr", {}, ...[t("version"), t("validFrom"), t("validTo"), t("noApproach"), t("reasons"), ""].map((x) => h("th", { scope: "col", text: x })))),
        h("tbody", {}, ...vs.map((v) => h("tr", { "data-version": v.version, class: v.in_force ? "in-force" : "" },
          h("td", { text: `v${v.version}` }), h("td", { text: fmtTime(v.valid_from) }), h("td", { text: v.valid_to ? fmtTime(v.valid_to) : "—" }),
          h("td", { text: `${v.no_approach_m} m` }), h("td", { text: v.reasons ?? "—" }), h("td", { text: v.in_force ? t("inForce") : "" }))))));
    } catch (e) {
      versionsBox.append(errorBox(e));
    }
  };

  const act = async (b: HTMLButtonElement, f: () => Promise<unknown>) => {
    msg.replaceChildren();
    b.disabled = true;
    try { await f(); await load(); } catch (x) { msg.append(errorBox(x)); } finally { b.disabled = false; }
  };

  const petitionItem = (p: Petition): HTMLElement => {
    const bar = h("div", { class: "buttons", role: "group", "aria-label": `${t("petitions")} #${p.id}` });
    if (p.state === "filed" && role !== "judge") {
      bar.append(h("button", { type: "button", class: "review", text: t("review"), onclick: (e: Event) =>
        act(e.currentTarget as HTMLButtonElement, () => api(`/api/v1/petitions/${p.id}/review`, { method: "POST", body: "{}" })) }));
    }
    if (p.state === "under_review" && role !== "court_clerk") {
      bar.append(h("button", { type: "button", class: "decide", text: t("decide"), onclick: () => decideDialog(p, load) }));
    }
    if (p.order_id != null) {
      const oid = p.order_id;
      bar.append(h("button", { type: "button", class: "show-versions", text: `${t("openOrder")} #${oid}`, onclick: () => void loadVersions(oid) }));
    }
    return h("li", { class: `petition ${p.state}`, "data-petition-id": p.id, "data-state": p.state },
      h("h4", { text: `#${p.id} · ${t("case")} #${p.case_id} · ${p.kind}` }),
      h("p", {}, `${t("petitionState")}: `, h("strong", { class: "petition-state", text: label(PETITION_STATES, p.state) }),
        ` · ${t("petitioner")}: ${p.petitioner} · ${t("filedAt")} ${fmtTime(p.filed_at)}`, p.order_id != null ? ` · ${t("order")} #${p.order_id}` : ""),
      h("p", { text: `${t("requested")}: ${condText(p.requested)}` }),
      h("p", { class: "statement", text: `${t("statement")}: ${p.statement}` }),
      h("details", {}, h("summary", { text: t("petitionHistory") }), historyOf(p)),
      bar);
  };

  const load = async (): Promise<void> => {
    try {
      const rows = await api<Petition[]>("/api/v1/petitions");
      // The list has no history; each petition's own answer has it.
      const full = await Promise.all(rows.map((p) => api<Petition>(`/api/v1/petitions/${p.id}`).catch(() => p)));
      full.sort((a, b) => b.id - a.id);
      petitionsBox.replaceChildren(full.length ? h("ol", { class: "petitions" }, ...full.map(petitionItem)) : h("p", { text: t("none") }));
    } catch (e) {
      petitionsBox.replaceChildren(errorBox(e));
    }
    try {
      const ns = await api<Notice[]>("/api/v1/notices");
      noticesBox.replaceChildren(ns.length ? h("ol", { class: "court-notices" }, ...ns.slice().reverse().slice(0, 50).map((n) =>
        h("li", {}, h("time", { datetime: n.created_at, text: fmtTime(n.created_at) }), ` · ${n.kind} · ${t("case")} #${n.case_id}`,
          n.petition_id != null ? ` · #${n.petition_id}` : "", n.order_id != null ? ` · ${t("order")} #${n.order_id}` : "",
          n.valid_to ? ` · ${t("validTo")} ${fmtTime(n.valid_to)}` : "", n.reasons ? ` · “${n.reasons}”` : ""))) : h("p", { text: t("none") }));
    } catch (e) {
      noticesBox.replaceChildren(errorBox(e));
    }
    if (shownOrder != null) await loadVersions(shownOrder);
  };

  const extendForm = h("form", { class: "inline extend-form", onsubmit: async (e: Event) => {
    e.preventDefault();
    extMsg.replaceChildren();
    if (!orderId.value) { orderId.focus(); return; }
    if (extReasons.value.trim().length < 10) { extMsg.textContent = t("reasonsRequired"); extReasons.focus(); return; }
    try {
      const v = await api<OrderVersion>(`/api/v1/orders/${orderId.value}/versions`, { method: "POST", body: JSON.stringify({ extend_days: Number(days.value), reasons: extReasons.value.trim() }) });
      extMsg.textContent = `${t("savedVersion")} v${v.version}`;
      await loadVersions(v.order_id);
    } catch (x) {
      extMsg.append(errorBox(x));
    }
  } }, field(t("extendDays"), days), field(t("reasons"), extReasons), h("button", { type: "submit", class: "extend", text: t("extend") }));

  root.append(
    h("section", { "aria-labelledby": "pet-h" }, h("h3", { id: "pet-h", text: t("petitions") }), msg, petitionsBox),
    h("section", { "aria-labelledby": "ver-h" }, h("h3", { id: "ver-h", text: t("versions") }),
      h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); if (orderId.value) void loadVersions(Number(orderId.value)); } },
        field(t("orderId"), orderId), h("button", { type: "submit", class: "load-versions", text: t("versions") })),
      versionsBox, role === "court_clerk" ? null : extendForm, extMsg),
    h("section", { "aria-labelledby": "not-h" }, h("h3", { id: "not-h", text: t("courtNotices") }), noticesBox));
  await load();
  return () => {};
}
