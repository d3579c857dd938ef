// Leaflet maps of the console: a configurable tile source with an offline fallback, zones,
// and position markers that carry their time, accuracy and source and turn grey with age.
import L from "leaflet";
import { SOURCES, ZONE_KIND_LABELS, label, t } from "./i18n";
import { ageSeconds, fmtAge, STALE_AFTER_S, type Position, type Zone } from "./util";

/**
 * The tile URL template: the server's `map_tiles` setting (put into the page as
 * `<meta name="bulwark-tiles">`, e.g. a tile server inside an air-gapped control room), else
 * `window.BULWARK_TILES`, else OpenStreetMap.
 */
export function tileUrl(): string {
  return document.querySelector<HTMLMetaElement>('meta[name="bulwark-tiles"]')?.content
    || (window as unknown as { BULWARK_TILES?: string }).BULWARK_TILES
    || "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
}

export function createMap(el: HTMLElement, label: string): L.Map {
  el.setAttribute("role", "region");
  el.setAttribute("aria-label", label);
  // No zoom animation: a screen change removes its map, and Leaflet throws from an animation
  // that ends after its map is gone.
  const map = L.map(el, { zoomControl: false, zoomAnimation: false }).setView([37.54, 126.98], 12);
  L.control.zoom({ zoomInTitle: t("zoomIn"), zoomOutTitle: t("zoomOut") }).addTo(map);
  L.control.scale({ metric: true, imperial: false, position: "bottomright" }).addTo(map);
  const tiles = L.tileLayer(tileUrl(), { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  let tileErrors = 0;
  tiles.on("tileerror", () => {
    if (++tileErrors === 3) {
      el.classList.add("offline");
      const notice = new L.Control({ position: "bottomleft" });
      notice.onAdd = () => {
        const d = L.DomUtil.create("div", "map-notice");
        d.setAttribute("role", "status");
        d.textContent = t("tilesOffline");
        return d;
      };
      notice.addTo(map);
    }
  });
  return map;
}

export const roleLabel = (r?: string | null): string => (r === "offender" ? t("offender") : r === "protected" ? t("protected") : "");

export function markerIcon(p: Position, stale: boolean, extraClass = ""): L.DivIcon {
  const cls = `bw-${p.role || "unknown"}${stale ? " bw-stale" : ""} ${extraClass}`;
  const arrow = p.course_deg != null && (p.speed_mps ?? 0) > 0.5
    ? `<div class="bw-heading" style="transform: rotate(${p.course_deg}deg)"><div class="bw-arrow"></div></div>` : "";
  return L.divIcon({ className: cls, html: `<div class="bw-marker">${arrow}</div>`, iconSize: [18, 18], iconAnchor: [9, 9] });
}

/** The text every shown position carries: who, how old, how accurate, from what source. */
export function positionText(p: Position): string {
  return `${roleLabel(p.role)} · ${fmtAge(ageSeconds(p.device_time))} · ${t("accuracy")} ±${Math.round(p.accuracy_m ?? 0)} m · ${label(SOURCES, p.source)}`;
}

/** A legend of the live map's markers and zones. */
export function addLegend(map: L.Map): void {
  const c = new L.Control({ position: "topright" });
  c.onAdd = () => {
    const d = L.DomUtil.create("div", "map-legend");
    d.setAttribute("role", "note");
    d.innerHTML = "";
    const row = (cls: string, text: string) => {
      const r = L.DomUtil.create("div", "legend-row", d);
      L.DomUtil.create("span", `legend-key ${cls}`, r).setAttribute("aria-hidden", "true");
      r.append(text);
    };
    L.DomUtil.create("strong", "", d).textContent = t("legend");
    row("k-offender", t("legendOffender"));
    row("k-protected", t("legendProtected"));
    row("k-zone", t("legendZone"));
    row("k-alarm", t("legendAlarm"));
    return d;
  };
  c.addTo(map);
}

/** How a marker is drawn: its permanent label, whether its case is in alarm, what a click does. */
export interface MarkerOptions { label?: string; alarm?: boolean; onClick?: () => void }

/** Keeps one marker + accuracy circle per device on a map. */
export class PositionLayer {
  private drawn = new Map<number, { marker: L.Marker; circle: L.Circle }>();
  constructor(private map: L.Map) {}
  draw(p: Position, o: MarkerOptions = {}): void {
    const stale = ageSeconds(p.device_time) > STALE_AFTER_S;
    const ll: L.LatLngTuple = [p.lat, p.lon];
    let m = this.drawn.get(p.device_id);
    const cls = o.alarm ? "bw-alarm" : "";
    // The offender's marker is drawn above the protected person's, so that at the same spot
    // the one that matters is on top; a case in alarm above both.
    const z = (p.role === "offender" ? 1000 : 0) + (o.alarm ? 2000 : 0);
    if (!m) {
      m = {
        marker: L.marker(ll, { icon: markerIcon(p, stale, cls), title: roleLabel(p.role), alt: roleLabel(p.role), zIndexOffset: z }).addTo(this.map),
        circle: L.circle(ll, { radius: p.accuracy_m || 0, weight: 1, opacity: 0.5, fillOpacity: 0.08, color: p.role === "offender" ? "#c62828" : "#1565c0", interactive: false }).addTo(this.map),
      };
      this.drawn.set(p.device_id, m);
    } else {
      m.marker.setLatLng(ll).setIcon(markerIcon(p, stale, cls)).setZIndexOffset(z);
      m.circle.setLatLng(ll).setRadius(p.accuracy_m || 0);
    }
    const text = o.label ? `${o.label} · ${positionText(p)}` : positionText(p);
    const el = m.marker.getElement();
    el?.setAttribute("aria-label", text);
    if (el) el.dataset.deviceId = String(p.device_id);
    // A permanent label names the person; the details are in the hover text.
    m.marker.unbindTooltip();
    if (o.label) m.marker.bindTooltip(o.label, { permanent: true, direction: p.role === "offender" ? "right" : "left", className: `bw-label${o.alarm ? " alarm" : ""}`, offset: p.role === "offender" ? [10, 0] : [-10, 0] });
    else m.marker.bindTooltip(text);
    m.marker.options.title = text;
    el?.setAttribute("title", text);
    m.marker.off("click");
    if (o.onClick) m.marker.on("click", o.onClick);
  }
}

export const ZONE_STYLE = { color: "#6a1b9a", weight: 2, dashArray: "4 4", fillOpacity: 0.06 };

export function zoneLayer(z: Zone, style: L.PathOptions = ZONE_STYLE): L.Layer {
  const layer = z.shape.type === "circle"
    ? L.circle([z.shape.lat, z.shape.lon], { radius: z.shape.radius_m, ...style })
    : L.polygon(z.shape.ring, style);
  layer.bindTooltip(`${z.label} (${label(ZONE_KIND_LABELS, z.kind)})`);
  return layer;
}

export function zoneBounds(zones: Zone[]): L.LatLngBounds | null {
  const pts: L.LatLngTuple[] = [];
  for (const z of zones) {
    if (z.shape.type === "circle") {
      const b = L.latLng(z.shape.lat, z.shape.lon).toBounds(z.shape.radius_m * 2);
      pts.push([b.getSouth(), b.getWest()], [b.getNorth(), b.getEast()]);
    } else pts.push(...z.shape.ring);
  }
  return pts.length ? L.latLngBounds(pts) : null;
}
