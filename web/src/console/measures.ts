// Alert measures over a window: alerts per rule and per case-day, time to acknowledge and to
// dispatch (median, 90th percentile), resolution causes and the false-alarm share.
import { api } from "../shared/api";
import { CAUSES, RULES, label, t } from "./i18n";
import { errorBox, fmtDur, fmtTime, h } from "./util";

interface Pct { count: number; median?: number | null; p90?: number | null }
interface Measures {
  from: string; to: string; alerts: number; per_rule: Record<string, number>; case_days: number; alerts_per_case_day?: number | null;
  time_to_ack_s: Pct; time_to_dispatch_s: Pct; resolved: number; per_cause: Record<string, number>; false_alarm_share?: number | null;
}

export async function measuresScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navMeasures") }));
  try {
    const m = await api<Measures>("/api/v1/alerts/measures");
    const row = (k: string, v: string) => h("tr", {}, h("th", { scope: "row", text: k }), h("td", { text: v }));
    const pct = (p: Pct) => `${t("median")} ${fmtDur(p.median)} · ${t("p90")} ${fmtDur(p.p90)} (n=${p.count})`;
    const kv = (o: Record<string, number>, table: typeof RULES) =>
      h("table", {}, h("tbody", {}, ...Object.entries(o).map(([k, v]) => row(label(table, k), String(v)))));
    root.append(
      h("table", { class: "measures", id: "measures" }, h("tbody", {},
        row(t("measuresWindow"), `${fmtTime(m.from)} – ${fmtTime(m.to)}`),
        row(t("alertsCount"), String(m.alerts)),
        row(t("perCaseDay"), m.alerts_per_case_day == null ? "—" : m.alerts_per_case_day.toFixed(2)),
        row(t("timeToAck"), pct(m.time_to_ack_s)),
        row(t("timeToDispatch"), pct(m.time_to_dispatch_s)),
        row(t("resolved"), String(m.resolved)),
        row(t("falseAlarm"), m.false_alarm_share == null ? "—" : `${(m.false_alarm_share * 100).toFixed(0)}%`))),
      h("h3", { text: t("perRule") }), kv(m.per_rule, RULES),
      h("h3", { text: t("perCause") }), kv(m.per_cause, CAUSES));
  } catch (e) {
    root.append(errorBox(e));
  }
  return () => {};
}
