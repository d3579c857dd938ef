// Her petitions: the form (filed for her own case only) and hers, each with its history.
import { api } from "../shared/api";
import { byId, h } from "../shared/dom";
import type { ConditionsDto, PetitionDto } from "../shared/wire";
import { app, fmtDate, fmtTime, t, timeEl, tr } from "./state";
import { loadNotices } from "./orders";

function conditionsText(c: ConditionsDto): string {
  const parts = [`${t("noApproach")} ${c.no_approach_m} m`, `${c.duration_days} ${t("days")}`];
  if (c.no_contact_by_phone) parts.push(t("pPhone"));
  if (c.electronic_monitoring) parts.push(t("pEm"));
  return parts.join(" · ");
}

export async function loadPetitions(): Promise<void> {
  const ol = byId("petitions");
  try {
    const rows = await api<PetitionDto[]>("/api/v1/petitions");
    // The list has no history; each petition's own answer has it (her case only).
    const full = await Promise.all(rows.map((p) => api<PetitionDto>(`/api/v1/petitions/${p.id}`).catch(() => p)));
    full.sort((a, b) => b.id - a.id);
    if (app.exited) return;
    if (full.length === 0) {
      ol.replaceChildren(h("li", { class: "empty", text: t("noPetitions") }));
      return;
    }
    ol.replaceChildren(...full.map((p) => {
      const events = (p.events ?? []).map((e) =>
        h("li", { "data-event": e.event }, timeEl(e.at, fmtTime(e.at)), ` — ${tr(`pev_${e.event}`)}${e.reasons ? ` · ${t("reasons")}: ${e.reasons}` : ""}`));
      return h("li", { class: "petition", "data-petition-id": p.id, "data-state": p.state },
        h("strong", { text: tr(`kind_${p.kind}`) }), " ", h("span", { class: `pill ${p.state}`, text: tr(`pstate_${p.state}`) }),
        h("div", { class: "meta", text: `${fmtDate(p.filed_at)} · ${t("requested")}: ${conditionsText(p.requested)}${p.order_id != null ? ` · ${t("order")} #${p.order_id}` : ""}` }),
        events.length ? h("ol", { class: "events" }, ...events) : null);
    }));
  } catch (e) {
    ol.replaceChildren(h("li", { class: "error", role: "alert", text: `${t("petitionsFailed")}: ${(e as Error).message}` }));
  }
}

export function wirePetitions(): void {
  byId<HTMLFormElement>("petition-form").onsubmit = async (e) => {
    e.preventDefault();
    const out = byId("petition-result");
    const caseId = app.data?.case_id;
    if (caseId == null) {
      out.textContent = `${t("pFailed")}: ${t("offline")}`;
      return;
    }
    const body = {
      case_id: caseId,
      kind: byId<HTMLSelectElement>("p-kind").value,
      requested: {
        no_approach_m: Number(byId<HTMLInputElement>("p-distance").value),
        duration_days: Number(byId<HTMLInputElement>("p-days").value),
        no_contact_by_phone: byId<HTMLInputElement>("p-phone").checked,
        electronic_monitoring: byId<HTMLInputElement>("p-em").checked,
      },
      statement: byId<HTMLTextAreaElement>("p-statement").value.trim(),
    };
    try {
      const p = await api<PetitionDto>("/api/v1/petitions", { method: "POST", body: JSON.stringify(body) });
      out.textContent = `${t("pSent")} (#${p.id}, ${tr(`pstate_${p.state}`)})`;
      out.dataset.petitionId = String(p.id);
      byId<HTMLTextAreaElement>("p-statement").value = "";
      void loadPetitions();
      void loadNotices();
    } catch (x) {
      out.textContent = `${t("pFailed")}: ${(x as Error).message}`;
    }
  };
}
