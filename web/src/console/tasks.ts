// "My tasks": the dispatch tasks of the signed-in account (police: to the victim; officers:
// to the offender). Each task shows its target's latest position with its time, age,
// accuracy and source while the server allows it (for police: only while the dispatch grant
// lasts). When the server answers a task without a position the screen says "dispatch ended"
// (or "no position yet" while the task is still open) and draws no pin: an old pin kept from
// an earlier answer would be a stale position shown as current.
import L from "leaflet";
import { api } from "../shared/api";
import { TASK_STATES, label, t } from "./i18n";
import { createMap, PositionLayer, positionText } from "./mapkit";
import { errorBox, fmtAge, fmtTime, h, type Position } from "./util";

export interface TaskPosition {
  lat: number; lon: number; accuracy_m?: number | null; source: string;
  device_time: string; received_time: string; age_s: number; device_id: number;
}
export interface Task {
  id: number; alert_id: number; case_id: number; kind: string; assignee_account_id: number;
  state: string; created_at: string; updated_at: string;
  target: { person_id: number; role: string; position?: TaskPosition | null };
}

const OPEN = ["open", "en_route", "on_scene"];
const STEPS: [string, "enRoute" | "onScene" | "taskDone"][] = [["en_route", "enRoute"], ["on_scene", "onScene"], ["done", "taskDone"]];
const REFRESH_MS = 10_000;

export async function tasksScreen(root: HTMLElement): Promise<() => void> {
  const status = h("p", { role: "status", class: "msg" });
  const list = h("ol", { class: "task-list", id: "task-list" });
  const mapEl = h("div", { class: "map task-map", id: "task-map" });
  root.append(h("h2", { text: t("myTasks") }), h("div", { class: "case-grid" },
    h("div", {}, list, status), h("div", {}, mapEl)));
  const map = createMap(mapEl, t("victimPosition"));
  let layer = new PositionLayer(map);
  let fitted = false;
  let stopped = false;

  const render = (tasks: Task[]) => {
    // Redraw every pin from this answer only: a task that lost its position loses its pin.
    map.eachLayer((l) => { if (!(l instanceof L.TileLayer)) map.removeLayer(l); });
    layer = new PositionLayer(map);
    list.replaceChildren();
    if (!tasks.length) list.append(h("li", { text: t("noTasks") }));
    const pts: L.LatLngTuple[] = [];
    for (const task of tasks) {
      const p = task.target.position;
      const open = OPEN.includes(task.state);
      const where = p
        ? h("p", { class: "task-position" },
          h("strong", { text: `${task.target.role === "protected" ? t("victimPosition") : t("offender")}: ` }),
          `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)} · `, h("time", { datetime: p.device_time, text: fmtTime(p.device_time) }),
          ` (${fmtAge(p.age_s)}) · ${t("accuracy")} ±${Math.round(p.accuracy_m ?? 0)} m · ${t("source")} ${p.source}`)
        : h("p", { class: "task-ended", text: task.target.role === "protected" ? t("dispatchEnded") : t("noPositionYet") });
      if (p) {
        const pos: Position = { device_id: p.device_id, lat: p.lat, lon: p.lon, accuracy_m: p.accuracy_m, device_time: p.device_time,
          received_time: p.received_time, source: p.source, role: task.target.role };
        layer.draw(pos);
        pts.push([p.lat, p.lon]);
        where.setAttribute("title", positionText(pos));
      }
      const bar = h("div", { class: "buttons", role: "group", "aria-label": `${t("taskKinds")} #${task.id}` });
      if (open) {
        for (const [state, key] of STEPS) {
          if (state === task.state) continue;
          bar.append(h("button", { type: "button", class: `to-${state}`, text: t(key), onclick: async () => {
            status.replaceChildren();
            try {
              await api(`/api/v1/tasks/${task.id}/state`, { method: "POST", body: JSON.stringify({ state }) });
              await load();
            } catch (e) {
              status.append(errorBox(e));
            }
          } }));
        }
      }
      list.append(h("li", { class: `task ${task.state}`, "data-task-id": task.id, "data-state": task.state, "data-has-position": p ? "yes" : "no" },
        h("h3", { text: `${t("taskKinds")} #${task.id} · ${t("alertNo")} #${task.alert_id} · ${t("case")} #${task.case_id}` }),
        h("p", { class: "meta" }, `${t("taskState")}: `, h("strong", { class: "task-state", text: label(TASK_STATES, task.state) }),
          ` · ${fmtTime(task.updated_at)}`),
        where, bar));
    }
    if (pts.length && !fitted) { map.fitBounds(L.latLngBounds(pts).pad(0.5), { animate: false, maxZoom: 16 }); fitted = true; }
  };

  const load = async () => {
    try {
      const tasks = await api<Task[]>("/api/v1/tasks");
      if (stopped) return;
      render(tasks);
    } catch (e) {
      list.replaceChildren(h("li", {}, errorBox(e)));
    }
  };
  await load();
  const timer = setInterval(() => void load(), REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); map.remove(); };
}
