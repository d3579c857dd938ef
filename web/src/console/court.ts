// Court staff: petitions (clerks review, judges decide: grant, modify or deny with reasons),
// an order's versions and its extension. The petition and order-version routes are newer than
// this console on some servers: a 404 shows "not available yet".
import { api } from "../shared/api";
import { t } from "./i18n";
import { openDialog } from "./dialog";
import { errorBox, field, fmtTime, h, isMissing, select } from "./util";

type Petition = Record<string, unknown> & { id: number };

const show = (v: unknown): string => (v == null ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));

function decideDialog(p: Petition, reload: () => void): void {
  const decision = select([["grant", "grant"], ["modify", "modify"], ["deny", "deny"]], "grant", { name: "decision" });
  const conditions = h("textarea", { name: "conditions", rows: 4, placeholder: '{"no_approach_m": 100}' });
  const reasons = h("textarea", { name: "reasons", rows: 3, required: true, minlength: 10 });
  openDialog(`${t("decide")} #${p.id}`, [field(t("decision"), decision), field(t("conditions"), conditions), field(t("reasons"), reasons)], t("save"), async (d) => {
    const body: Record<string, unknown> = { decision: decision.value, reasons: reasons.value.trim() };
    if (conditions.value.trim()) {
      try { body.conditions = JSON.parse(conditions.value); } catch { d.error("conditions: JSON"); return false; }
    }
    try {
      await api(`/api/v1/petitions/${p.id}/decision`, { method: "POST", body: JSON.stringify(body) });
    } catch (e) {
      d.error(isMissing(e) ? t("notAvailable") : errorBox(e).textContent ?? "");
      return false;
    }
    reload();
    return true;
  });
}

export async function courtScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navCourt") }));
  const petitions = h("section", { "aria-labelledby": "pet-h" }, h("h3", { id: "pet-h", text: t("petitions") }));
  const body = h("div");
  petitions.append(body);
  const load = async () => {
    body.replaceChildren(h("p", { text: t("loading") }));
    try {
      const rows = await api<Petition[]>("/api/v1/petitions");
      const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !["id"].includes(k)).slice(0, 8);
      body.replaceChildren(rows.length ? h("table", { class: "petitions" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "#" }), ...keys.map((k) => h("th", { scope: "col", text: k })), h("th", { scope: "col", text: "" }))),
        h("tbody", {}, ...rows.map((p) => h("tr", { "data-petition-id": p.id }, h("td", { text: String(p.id) }),
          ...keys.map((k) => h("td", { text: /(_at|time)$/.test(k) && typeof p[k] === "string" ? fmtTime(p[k] as string) : show(p[k]) })),
          h("td", {},
            h("button", { type: "button", text: t("review"), "aria-label": `${t("review")} #${p.id}`, onclick: async (e: Event) => {
              const b = e.currentTarget as HTMLButtonElement;
              try { await api(`/api/v1/petitions/${p.id}/review`, { method: "POST", body: "{}" }); await load(); }
              catch (x) { b.after(errorBox(x)); }
            } }),
            h("button", { type: "button", text: t("decide"), "aria-label": `${t("decide")} #${p.id}`, onclick: () => decideDialog(p, () => void load()) })))))) : h("p", { text: t("none") }));
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
  };

  const orderId = h("input", { name: "order_id", type: "number", min: 1, required: true });
  const versions = h("div", { "aria-live": "polite" });
  const days = h("input", { name: "extend_days", type: "number", min: 1, max: 365, value: 30 });
  const reasons = h("textarea", { name: "reasons", rows: 2 });
  const msg = h("p", { role: "status" });
  const loadVersions = async () => {
    versions.replaceChildren();
    try {
      const v = await api<Record<string, unknown>[]>(`/api/v1/orders/${orderId.value}/versions`);
      versions.append(h("ol", {}, ...v.map((x) => h("li", { text: Object.entries(x).filter(([k]) => k !== "zones").map(([k, y]) => `${k}: ${show(y)}`).join(" · ") }))));
    } catch (e) {
      versions.append(errorBox(e));
    }
  };
  const orders = h("section", { "aria-labelledby": "ver-h" }, h("h3", { id: "ver-h", text: t("versions") }),
    h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); void loadVersions(); } },
      field(t("orderId"), orderId), h("button", { type: "submit", text: t("versions") })),
    versions,
    h("form", { class: "inline", onsubmit: async (e: Event) => {
      e.preventDefault();
      msg.replaceChildren();
      if (reasons.value.trim().length < 10) { msg.textContent = t("reasonsRequired"); return; }
      try {
        await api(`/api/v1/orders/${orderId.value}/versions`, { method: "POST", body: JSON.stringify({ extend_days: Number(days.value), reasons: reasons.value.trim() }) });
        msg.textContent = t("versionSaved");
        await loadVersions();
      } catch (x) {
        msg.append(errorBox(x));
      }
    } }, field(t("extendDays"), days), field(t("reasons"), reasons), h("button", { type: "submit", text: t("extend") })),
    msg);
  root.append(petitions, orders);
  await load();
  return () => {};
}
