// The case list and the case page: people, devices (battery, charging, signal, last seen),
// orders (conditions, validity, zones on the map), a timeline of the case's alerts and the
// steps taken on them, and a zone editor that saves a new order version.
import L from "leaflet";
import { api } from "../shared/api";
import { ACTIONS, CAUSES, DEVICE_KINDS, ORDER_KINDS, PERSON_ROLES, PROTOCOL_NAMES, ROLES, RULES, STATES, ZONE_KINDS, ZONE_KIND_LABELS, label, lang, t } from "./i18n";
import { alertText } from "./alerts";
import { createMap, PositionLayer, zoneBounds, zoneLayer } from "./mapkit";
import { live } from "./live";
import {
  ageSeconds, errorBox, field, fmtAge, fmtTime, h, select,
  type Alert, type AlertAction, type Case, type Device, type Order, type Person, type Shape, type Zone,
} from "./util";

export async function casesScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("cases") }));
  try {
    const cases = await api<Case[]>("/api/v1/cases");
    const ul = h("ul", { class: "case-list" });
    for (const c of cases) ul.append(h("li", {}, h("a", { href: `#/cases/${c.id}`, text: `${c.reference} (#${c.id})` })));
    if (!cases.length) ul.append(h("li", { text: t("none") }));
    root.append(ul);
  } catch (e) {
    root.append(errorBox(e));
  }
  return () => {};
}

const validNow = (o: Order): boolean => Date.parse(o.valid_from) <= Date.now() && (!o.valid_to || Date.parse(o.valid_to) > Date.now());

function deviceRow(d: Device, people: Person[]): HTMLElement {
  const owner = people.find((p) => p.id === d.owner_id);
  const hl = d.health;
  const pos = live.positions.get(d.id);
  const seen = pos ? fmtAge(ageSeconds(pos.device_time)) : hl ? fmtAge(ageSeconds(hl.reported_at)) : t("never");
  return h("tr", { "data-device-id": d.id },
    h("td", { text: `#${d.id}` }), h("td", { text: `${label(DEVICE_KINDS, d.kind)} / ${label(PROTOCOL_NAMES, d.protocol)}` }), h("td", { translate: "no", text: d.hardware_id }),
    h("td", { text: owner ? `${owner.display_name} (${label(PERSON_ROLES, owner.role)})` : "—" }),
    h("td", { class: `battery${hl?.battery_percent != null && hl.battery_percent < 20 ? " low" : ""}`,
      text: hl?.battery_percent != null ? `${Math.round(hl.battery_percent)}%${hl.charging ? ` ⚡ ${t("charging")}` : ""}` : "—" }),
    h("td", { text: hl?.signal != null ? String(hl.signal) + (hl.satellites != null ? ` · ${hl.satellites} sat` : "") : "—" }),
    h("td", { text: seen }));
}

export async function casePage(root: HTMLElement, caseId: number): Promise<() => void> {
  let cleanup = () => {};
  try {
    const [cases, people, devices, orders, alerts] = await Promise.all([
      api<Case[]>("/api/v1/cases"), api<Person[]>("/api/v1/people"), api<Device[]>("/api/v1/devices"),
      api<Order[]>("/api/v1/orders"), api<Alert[]>("/api/v1/alerts?active=false").catch(() => [] as Alert[]),
    ]);
    const c = cases.find((x) => x.id === caseId);
    if (!c) { root.append(h("p", { class: "error", role: "alert", text: `${t("case")} #${caseId}: ${t("forbidden")}` })); return cleanup; }
    const partyIds = [c.offender_id, ...c.protected_ids];
    const parties = people.filter((p) => partyIds.includes(p.id));
    const caseDevices = devices.filter((d) => d.owner_id != null && partyIds.includes(d.owner_id));
    const caseOrders = orders.filter((o) => o.case_id === caseId);
    const caseAlerts = alerts.filter((a) => a.case_id === caseId).sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));

    const mapEl = h("div", { class: "map case-map", id: "case-map" });
    const editorBox = h("div", { class: "zone-editor" });
    const timeline = h("ol", { class: "timeline", id: "timeline" });
    root.append(h("h2", { text: `${t("case")} ${c.reference}` }),
      h("div", { class: "case-grid" },
        h("div", {},
          h("section", { "aria-labelledby": "ppl-h" }, h("h3", { id: "ppl-h", text: t("parties") }),
            h("ul", {}, ...parties.map((p) => h("li", { text: `${p.display_name} · ${p.role === "offender" ? t("offender") : t("protected")} #${p.id}` })))),
          h("section", { "aria-labelledby": "dev-h" }, h("h3", { id: "dev-h", text: t("devices") }),
            h("table", { class: "devices" },
              h("thead", {}, h("tr", {}, ...["#", t("kind"), t("hardwareId"), t("owner"), t("battery"), t("signal"), t("lastSeen")].map((x) => h("th", { scope: "col", text: x })))),
              h("tbody", {}, ...caseDevices.map((d) => deviceRow(d, people))))),
          h("section", { "aria-labelledby": "ord-h" }, h("h3", { id: "ord-h", text: t("orders") }),
            ...caseOrders.map((o) => h("div", { class: "order", "data-order-id": o.id },
              h("p", {}, h("strong", { text: `#${o.id} ${label(ORDER_KINDS, o.kind)}` }), ` · ${validNow(o) ? t("validNow") : t("notValid")}`),
              h("p", { text: `${t("validFrom")} ${fmtTime(o.valid_from)} · ${t("validTo")} ${o.valid_to ? fmtTime(o.valid_to) : "—"}` }),
              h("p", { text: `${t("noApproach")} ${o.no_approach_m} m · ${t("warning")} ${o.warning_m} m · ${t("disclosure")} ${o.disclosure_radius_m} m` }),
              h("ul", { class: "zones" }, ...o.zones.map((z) => h("li", { text: `${z.label} (${label(ZONE_KIND_LABELS, z.kind)}, ${z.shape.type === "circle" ? t("shapeCircle") : t("shapePolygon")})` })))))),
          editorBox),
        h("div", {}, mapEl,
          h("section", { "aria-labelledby": "tl-h" }, h("h3", { id: "tl-h", text: t("timeline") }), timeline))));

    const map = createMap(mapEl, `${t("case")} ${c.reference}`);
    const zonesGroup = L.layerGroup().addTo(map);
    const drawZones = (zs: Zone[]) => { zonesGroup.clearLayers(); zs.forEach((z) => zonesGroup.addLayer(zoneLayer(z))); };
    const current = caseOrders.filter(validNow).at(-1) ?? caseOrders.at(-1);
    drawZones(current?.zones ?? []);
    const b = zoneBounds(current?.zones ?? []);
    const layer = new PositionLayer(map);
    const ids = new Set(caseDevices.map((d) => d.id));
    const drawPositions = () => { for (const p of live.positions.values()) if (ids.has(p.device_id)) layer.draw(p); };
    drawPositions();
    const pts = [...live.positions.values()].filter((p) => ids.has(p.device_id)).map((p) => [p.lat, p.lon] as L.LatLngTuple);
    const all = b ?? (pts.length ? L.latLngBounds(pts) : null);
    if (all) { pts.forEach((p) => all.extend(p)); map.fitBounds(all.pad(0.2), { animate: false }); }
    live.listeners.add(drawPositions);
    cleanup = () => { live.listeners.delete(drawPositions); map.remove(); };

    if (current) zoneEditor(editorBox, map, current, drawZones, zonesGroup);

    // Timeline: the case's alerts (newest first) with the steps taken on each.
    const logs = await Promise.all(caseAlerts.slice(0, 20).map((a) => api<AlertAction[]>(`/api/v1/alerts/${a.id}/history`).catch(() => [] as AlertAction[])));
    const entries: { at: string; text: string; cls: string }[] = [];
    caseAlerts.slice(0, 20).forEach((a, i) => {
      entries.push({ at: a.raised_at, cls: a.severity, text: `#${a.id} ${label(RULES, a.rule)} — ${alertText(live, a, a.raise_distance_m ?? a.min_distance_m)} (${STATES[lang][a.state] ?? a.state})` });
      for (const x of logs[i]) {
        if (x.action === "raise") continue;
        entries.push({ at: x.at, cls: "step", text: `#${a.id} ${label(ACTIONS, x.action)}${x.cause ? ` · ${label(CAUSES, x.cause)}` : ""}${x.note ? ` · “${x.note}”` : ""} · ${label(ROLES, x.actor_role)} #${x.actor_account_id}` });
      }
    });
    entries.sort((x, y) => Date.parse(y.at) - Date.parse(x.at));
    for (const e of entries) timeline.append(h("li", { class: e.cls }, h("time", { datetime: e.at, text: fmtTime(e.at) }), " ", e.text));
    if (!entries.length) timeline.append(h("li", { text: t("none") }));
  } catch (e) {
    root.append(errorBox(e));
  }
  return () => cleanup();
}

/** Draft zones edited on the map; saving posts a new order version (orders are never edited in place). */
function zoneEditor(box: HTMLElement, map: L.Map, order: Order, drawZones: (z: Zone[]) => void, group: L.LayerGroup): void {
  let draft: Zone[] = order.zones.map((z) => ({ kind: z.kind, label: z.label, shape: structuredClone(z.shape) }));
  let mode: "idle" | "circle" | "polygon" = "idle";
  let vertices: [number, number][] = [];
  let preview: L.Layer | null = null;
  const hint = h("p", { class: "hint", role: "status" });
  const list = h("ol", { class: "zone-list" });
  const radius = h("input", { type: "number", min: 10, max: 20000, value: 150, name: "radius" });
  const reasons = h("textarea", { name: "reasons", rows: 2 });
  const msg = h("p", { role: "status", class: "msg" });
  const finish = h("button", { type: "button", class: "finish-polygon", hidden: true, text: t("finishPolygon") });

  const redraw = () => {
    drawZones(draft);
    preview?.remove();
    preview = vertices.length ? L.polyline(vertices, { color: "#e65100" }).addTo(group) : null;
    list.replaceChildren();
    draft.forEach((z, i) => {
      const name = h("input", { value: z.label, name: `label-${i}` });
      name.oninput = () => { z.label = name.value; };
      const kind = select(ZONE_KINDS.map((k) => [k, label(ZONE_KIND_LABELS, k)]), z.kind, { name: `kind-${i}` });
      kind.onchange = () => { z.kind = kind.value; };
      list.append(h("li", { class: "zone-row" }, field(t("label"), name), field(t("kind"), kind),
        h("span", { text: z.shape.type === "circle" ? `○ ${Math.round(z.shape.radius_m)} m` : `▱ ${z.shape.ring.length}` }),
        h("button", { type: "button", class: "delete", "aria-label": `${t("delete")} ${z.label}`, text: t("delete"),
          onclick: () => { draft.splice(i, 1); redraw(); } })));
    });
  };
  const add = (shape: Shape) => { draft.push({ kind: "other", label: `Zone ${draft.length + 1}`, shape }); redraw(); };
  map.on("click", (e: L.LeafletMouseEvent) => {
    const ll: [number, number] = [Number(e.latlng.lat.toFixed(6)), Number(e.latlng.lng.toFixed(6))];
    if (mode === "circle") {
      mode = "idle";
      hint.textContent = "";
      map.getContainer().classList.remove("picking");
      add({ type: "circle", lat: ll[0], lon: ll[1], radius_m: Number(radius.value) || 150 });
    } else if (mode === "polygon") {
      vertices.push(ll);
      finish.disabled = vertices.length < 3;
      redraw();
    }
  });
  finish.onclick = () => {
    if (vertices.length >= 3) add({ type: "polygon", ring: vertices });
    vertices = [];
    mode = "idle";
    finish.hidden = true;
    hint.textContent = "";
    map.getContainer().classList.remove("picking");
    redraw();
  };
  const start = (m: "circle" | "polygon") => {
    mode = m;
    vertices = [];
    hint.textContent = m === "circle" ? t("clickCentre") : t("clickVertices");
    finish.hidden = m !== "polygon";
    finish.disabled = true;
    map.getContainer().classList.add("picking");
  };
  const save = h("button", { type: "button", class: "primary save-zones", text: t("saveVersion") });
  save.onclick = async () => {
    msg.replaceChildren();
    if (reasons.value.trim().length < 10) { msg.textContent = t("reasonsRequired"); reasons.focus(); return; }
    save.disabled = true;
    try {
      // A zones-only amendment: the server answers with the new version; the editor and the
      // map are redrawn from that answer (what is stored), not from the draft.
      const v = await api<{ version: number; zones: Zone[] }>(`/api/v1/orders/${order.id}/versions`, { method: "POST", body: JSON.stringify({ zones: draft.map((z) => ({ kind: z.kind, label: z.label, shape: z.shape })), reasons: reasons.value.trim() }) });
      draft = v.zones.map((z) => ({ kind: z.kind, label: z.label, shape: structuredClone(z.shape) }));
      reasons.value = "";
      redraw();
      msg.replaceChildren(h("span", { class: "saved-version", "data-version": v.version, text: `${t("savedVersion")} v${v.version}` }));
      const zonesList = document.querySelector(`.order[data-order-id="${order.id}"] .zones`);
      zonesList?.replaceChildren(...v.zones.map((z) => h("li", { text: `${z.label} (${label(ZONE_KIND_LABELS, z.kind)}, ${z.shape.type === "circle" ? t("shapeCircle") : t("shapePolygon")})` })));
    } catch (e) {
      msg.append(errorBox(e));
    } finally {
      save.disabled = false;
    }
  };
  box.append(h("section", { "aria-labelledby": "ze-h", "data-order-id": order.id }, h("h3", { id: "ze-h", text: `${t("editZones")} — #${order.id}` }),
    h("div", { class: "buttons" },
      h("button", { type: "button", class: "add-circle", text: t("addCircle"), onclick: () => start("circle") }),
      field(t("radius"), radius),
      h("button", { type: "button", class: "add-polygon", text: t("addPolygon"), onclick: () => start("polygon") }), finish),
    hint, list, field(t("reasons"), reasons), save, msg));
  redraw();
}
