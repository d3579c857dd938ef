// The live screen: a map of the cases in the officer's scope (zones, latest positions with time,
// accuracy and source, grey when stale), the alert queue, and the list of positions. The live
// stream (SSE `/api/v1/live`) keeps the shared state current while other screens are open.
import L from "leaflet";
import { api, token } from "../shared/api";
import { RULES, SOURCES, label, t, type Key } from "./i18n";
import { alertText, renderQueue, whoOf } from "./alerts";
import { updateAlarm } from "./alarm";
import { addLegend, createMap, PositionLayer, roleLabel, zoneLayer } from "./mapkit";
import {
  ageSeconds, errorBox, fmtAge, fmtClock, h, setSkew, STALE_AFTER_S,
  type Alert, type Case, type Device, type Health, type Order, type Person, type Position, type Snapshot,
} from "./util";

export const live = {
  positions: new Map<number, Position>(),
  alerts: new Map<number, Alert>(),
  orders: [] as Order[],
  cases: [] as Case[],
  health: new Map<number, Health>(),
  /** Devices and people, to name who an alert is about ("Protected person 1", not "device 2"). */
  devices: [] as Device[],
  people: [] as Person[],
  loaded: false,
  listeners: new Set<(kind: Kind) => void>(),
  error: null as unknown,
};
export type Kind = "all" | "positions" | "alerts" | "tick";
const notify = (kind: Kind = "all") => {
  if (kind !== "positions" && live.loaded) {
    updateAlarm(live.alerts.values(), (a) => ({
      title: `${label(RULES, a.rule)} — ${whoOf(live, a)}`,
      body: `${alertText(live, a)} · ${fmtClock(a.raised_at)}`,
    }));
  }
  live.listeners.forEach((f) => f(kind));
};

export async function loadSnapshot(): Promise<void> {
  try {
    const s = await api<Snapshot>("/api/v1/snapshot");
    setSkew(s.server_time);
    live.orders = s.orders;
    live.cases = s.cases ?? [];
    live.alerts = new Map(s.alerts.map((a) => [a.id, a]));
    live.positions = new Map(s.positions.map((p) => [p.device_id, p]));
    // Device health (battery, charging) is shown beside each position; not fatal if refused.
    const [devices, people] = await Promise.all([
      api<Device[]>("/api/v1/devices").catch(() => [] as Device[]),
      api<Person[]>("/api/v1/people").catch(() => [] as Person[]),
    ]);
    live.devices = devices;
    live.people = people;
    live.health = new Map(devices.filter((d) => d.health).map((d) => [d.id, d.health as Health]));
    live.loaded = true;
    live.error = null;
  } catch (e) {
    live.error = e;
  }
  notify();
}

let es: EventSource | null = null;
export function connect(setStatus: (key: Key, degraded?: boolean) => void): void {
  if (es) return;
  es = new EventSource(`/api/v1/live?access_token=${encodeURIComponent(token() ?? "")}`);
  es.onopen = () => {
    setStatus("live");
    void loadSnapshot();
  };
  es.onerror = () => setStatus("reconnecting", true);
  es.addEventListener("position", (e) => {
    const p = JSON.parse((e as MessageEvent).data) as Position;
    live.positions.set(p.device_id, p);
    notify("positions");
  });
  es.addEventListener("alert", (e) => {
    const a = JSON.parse((e as MessageEvent).data) as Alert;
    live.alerts.set(a.id, a);
    notify("alerts");
  });
  es.addEventListener("resync", () => void loadSnapshot());
}
export function disconnect(): void {
  es?.close();
  es = null;
}
export function alertChanged(a?: Alert): void {
  if (a) live.alerts.set(a.id, a);
  notify("alerts");
}

/** Renders the live screen into `root`; returns a cleanup function. */
export function liveScreen(root: HTMLElement, setStatus: (s: string) => void): () => void {
  const mapEl = h("div", { id: "map", class: "map" });
  const ol = h("ol", { id: "alerts", "aria-live": "polite" });
  const empty = h("p", { id: "no-alerts", text: t("noAlerts") });
  const people = h("ul", { id: "people" });
  const err = h("div");
  root.append(h("div", { class: "split" }, mapEl,
    h("aside", {},
      err,
      h("section", { "aria-labelledby": "alerts-h" }, h("h2", { id: "alerts-h", text: t("alerts") }), ol, empty),
      h("section", { "aria-labelledby": "people-h" }, h("h2", { id: "people-h", text: t("people") }), people))));
  const map = createMap(mapEl, t("navLive"));
  addLegend(map);
  const layer = new PositionLayer(map);
  let zones: L.Layer[] = [];
  let zonesOf: Order[] | null = null;
  let fitted = 0;
  let userMoved = false;
  map.on("dragstart", () => { userMoved = true; });
  mapEl.addEventListener("wheel", () => { userMoved = true; }, { passive: true });
  mapEl.addEventListener("click", (e) => { if ((e.target as HTMLElement).closest(".leaflet-control-zoom")) userMoved = true; });

  /** Fits the map to a case's parties and zones (from the queue's "show on map"). */
  const fitCase = (caseId: number) => {
    const c = live.cases.find((x) => x.id === caseId);
    if (!c) return;
    const ids = [c.offender_id, ...c.protected_ids];
    const pts = [...live.positions.values()].filter((p) => ids.includes(p.person_id ?? -1)).map((p) => [p.lat, p.lon] as L.LatLngTuple);
    userMoved = true; // the officer chose this case: later positions do not pull the map away
    if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.5), { animate: false, maxZoom: 17 });
    mapEl.dataset.fittedCase = String(caseId);
  };
  const renderPeople = () => {
    people.replaceChildren();
    for (const p of [...live.positions.values()].sort((a, b) => a.device_id - b.device_id)) {
      const age = ageSeconds(p.device_time);
      const hl = live.health.get(p.device_id);
      const li = h("li", {}, h("strong", { text: `${roleLabel(p.role)} #${p.person_id ?? "?"}` }),
        ` · ${fmtAge(age)} · ±${Math.round(p.accuracy_m ?? 0)} m · ${label(SOURCES, p.source)}`);
      if (hl && hl.battery_percent != null) {
        li.append(" · ", h("span", { class: hl.battery_percent < 20 ? "stale" : "", text: `${t("battery")} ${Math.round(hl.battery_percent)}%${hl.charging ? " ⚡" : ""}` }));
      }
      if (age > STALE_AFTER_S) li.append(" ", h("span", { class: "stale", text: t("stale") }));
      people.append(li);
    }
  };
  const render = (kind: Kind = "all") => {
    err.replaceChildren();
    if (live.error) err.append(errorBox(live.error));
    if (zonesOf !== live.orders) {
      zones.forEach((z) => z.remove());
      zones = live.orders.flatMap((o) => o.zones.map((z) => zoneLayer(z).addTo(map)));
      zonesOf = live.orders;
    }
    const alarmCases = new Set([...live.alerts.values()].filter((a) => a.state !== "resolved" && a.condition_active && a.severity !== "info").map((a) => a.case_id));
    for (const p of live.positions.values()) {
      const person = live.people.find((x) => x.id === p.person_id);
      const c = live.cases.find((x) => x.offender_id === p.person_id || x.protected_ids.includes(p.person_id ?? -1));
      layer.draw(p, {
        label: person ? `${person.display_name}${c ? ` · ${c.reference}` : ""}` : undefined,
        alarm: c ? alarmCases.has(c.id) : false,
        onClick: c ? () => {
          const g = ol.querySelector<HTMLElement>(`.alert-group[data-case-id="${c.id}"]`);
          g?.classList.add("focused");
          g?.scrollIntoView({ block: "nearest" });
          g?.querySelector<HTMLElement>("button")?.focus();
        } : undefined,
      });
    }
    // Fit to everyone while positions keep arriving (the first answer may hold only some),
    // until the officer moves the map himself.
    if (!userMoved && live.positions.size > fitted) {
      map.fitBounds(L.latLngBounds([...live.positions.values()].map((p) => [p.lat, p.lon] as L.LatLngTuple)).pad(0.2), { animate: false, maxZoom: 16 });
      fitted = live.positions.size;
    }
    // Re-rendering the queue replaces its buttons: not while someone is using them.
    const busy = ol.contains(document.activeElement) && kind === "tick";
    if (kind !== "positions" && !busy) renderQueue(ol, empty, live, alertChanged, setStatus, fitCase);
    renderPeople();
  };
  live.listeners.add(render);
  if (live.loaded || live.error) render();
  // Roles without the live stream (or before it opens) still get the snapshot, or its refusal.
  else void loadSnapshot();
  // Ages and staleness change with time even when nothing arrives.
  const timer = setInterval(() => render("tick"), 5000);
  return () => {
    live.listeners.delete(render);
    clearInterval(timer);
    map.remove();
  };
}
