// The home screen's map: her own position with its accuracy and her disclosure radius, the
// offender only when the server disclosed him (never a last-seen position as current), and
// the zones of her orders. Without tiles it still shows people and zones on a plain grid.
import L from "leaflet";
import { h } from "../shared/dom";
import { ageS, app, fmtAge, OLD_FIX_S, t, type MyCase, type OffenderPos } from "./state";

let map: L.Map | null = null;
const layers = {
  me: null as L.CircleMarker | null, meAcc: null as L.Circle | null, disclosure: null as L.Circle | null,
  off: null as L.Marker | null, offAcc: null as L.Circle | null, zones: [] as L.Layer[], fitted: 0,
};

export function ensureMap(): L.Map {
  if (map) return map;
  map = L.map("map", { zoomControl: false, attributionControl: true }).setView([37.55, 126.98], 13);
  L.control.zoom({ zoomInTitle: t("zoomIn"), zoomOutTitle: t("zoomOut") }).addTo(map);
  // The tile source is configurable (self-hosted tiles in production).
  const src = (window as unknown as { BULWARK_TILES?: string }).BULWARK_TILES || localStorage.getItem("bw-tiles")
    || "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  const tiles = L.tileLayer(src, { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  let errors = 0;
  tiles.on("tileerror", () => {
    if (++errors !== 3 || !map) return;
    document.getElementById("map")?.classList.add("offline");
    const notice = new L.Control({ position: "bottomleft" });
    notice.onAdd = () => h("div", { class: "map-notice", text: t("tilesOffline") });
    notice.addTo(map);
  });
  return map;
}

/** After the home screen was hidden, Leaflet must measure its box again. */
export function mapShown(): void {
  setTimeout(() => map?.invalidateSize(), 0);
}

function offenderIcon(o: OffenderPos, old: boolean): L.DivIcon {
  const moving = o.course_deg != null && (o.speed_mps ?? 0) > 0.5;
  const dot = h("div", { class: "dot", role: "img", "aria-label": t("offender") });
  if (moving) {
    const heading = h("div", { class: "heading" }, h("div", { class: "arrow" }));
    heading.style.transform = `rotate(${o.course_deg}deg)`;
    dot.append(heading);
  }
  return L.divIcon({ className: `off-marker${old ? " old" : ""}`, html: dot, iconSize: [22, 22], iconAnchor: [11, 11] });
}

export function drawMap(d: MyCase): void {
  const m = ensureMap();
  const own = d.own_position;
  const radius = Math.max(0, ...d.orders.map((o) => o.disclosure_radius_m));
  if (own) {
    const ll: L.LatLngTuple = [own.lat, own.lon];
    if (!layers.me) {
      layers.me = L.circleMarker(ll, { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1 }).addTo(m);
      layers.meAcc = L.circle(ll, { radius: own.accuracy_m ?? 0, color: "#1565c0", weight: 1, fillOpacity: 0.1 }).addTo(m);
      layers.disclosure = L.circle(ll, { radius, color: "#6a1b9a", weight: 1, dashArray: "6 6", fill: false, interactive: false }).addTo(m);
    }
    layers.me.setLatLng(ll).bindTooltip(`${t("me")} · ${fmtAge(own.age_s)} · ±${Math.round(own.accuracy_m ?? 0)} m`);
    layers.meAcc?.setLatLng(ll).setRadius(own.accuracy_m ?? 0);
    layers.disclosure?.setLatLng(ll).setRadius(radius);
    layers.me.setStyle({ fillColor: own.stale ? "#9e9e9e" : "#1565c0" });
  }
  const o = typeof d.offender === "object" ? d.offender : null;
  if (o) {
    const ll: L.LatLngTuple = [o.lat, o.lon];
    const old = ageS(o.device_time) > OLD_FIX_S || app.offline;
    if (!layers.off) {
      layers.off = L.marker(ll, { icon: offenderIcon(o, old), title: t("offender"), keyboard: false }).addTo(m);
      layers.offAcc = L.circle(ll, { radius: o.accuracy_m ?? 0, color: "#c62828", weight: 1, fillOpacity: 0.12 }).addTo(m);
    } else {
      layers.off.options.title = t("offender"); // setIcon writes it again, in her language now
      layers.off.setLatLng(ll).setIcon(offenderIcon(o, old));
      layers.offAcc?.setLatLng(ll).setRadius(o.accuracy_m ?? 0);
    }
    layers.off.bindTooltip(`${t("offender")} · ${fmtAge(ageS(o.device_time))} · ±${Math.round(o.accuracy_m ?? 0)} m`);
  } else if (layers.off) {
    // Outside her radius or unknown: no marker at all (never a last-seen position as current).
    layers.off.remove();
    layers.offAcc?.remove();
    layers.off = null;
    layers.offAcc = null;
  }
  if (layers.zones.length === 0) {
    for (const order of d.orders) {
      for (const z of order.zones) {
        const style = { color: "#2e7d32", weight: 2, dashArray: "4 4", fillOpacity: 0.06 };
        const layer = z.shape.type === "circle"
          ? L.circle([z.shape.lat, z.shape.lon], { radius: z.shape.radius_m, ...style })
          : L.polygon(z.shape.ring as L.LatLngTuple[], style);
        layers.zones.push(layer.bindTooltip(z.label).addTo(m));
      }
    }
  }
  // Fit once to her, and again when he first appears.
  const want = (own ? 1 : 0) + (o ? 1 : 0);
  if (want > layers.fitted) {
    const pts: L.LatLngTuple[] = [];
    if (own) pts.push([own.lat, own.lon]);
    if (o) pts.push([o.lat, o.lon]);
    if (pts.length === 1) m.setView(pts[0], 15);
    else m.fitBounds(L.latLngBounds(pts).pad(0.4));
    layers.fitted = want;
  }
}

/** The tiles' offline notice is written in the language of its moment: rewrite it. */
export function relabelMap(): void {
  document.getElementById("map")?.setAttribute("aria-label", t("mapLabel"));
  document.querySelectorAll<HTMLElement>("#map .map-notice").forEach((n) => { n.textContent = t("tilesOffline"); });
  for (const [sel, key] of [[".leaflet-control-zoom-in", "zoomIn"], [".leaflet-control-zoom-out", "zoomOut"]] as const) {
    const a = document.querySelector<HTMLElement>(`#map ${sel}`);
    a?.setAttribute("title", t(key));
    a?.setAttribute("aria-label", t(key));
  }
  layers.off?.getElement()?.setAttribute("title", t("offender"));
}
