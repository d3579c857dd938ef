// Leaflet maps of the console: a configurable tile source with an offline fallback, zones,
// and position markers that carry their time, accuracy and source and turn grey with age.
import L from "leaflet";
import { t } from "./i18n";
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
  const map = L.map(el, { zoomControl: true, zoomAnimation: false }).setView([37.54, 126.98], 12);
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
  return `${roleLabel(p.role)} · ${fmtAge(ageSeconds(p.device_time))} · ${t("accuracy")} ±${Math.round(p.accuracy_m ?? 0)} m · ${p.source}`;
}

/** Keeps one marker + accuracy circle per device on a map. */
export class PositionLayer {
  private drawn = new Map<number, { marker: L.Marker; circle: L.Circle }>();
  constructor(private map: L.Map) {}
  draw(p: Position): void {
    const stale = ageSeconds(p.device_time) > STALE_AFTER_S;
    const ll: L.LatLngTuple = [p.lat, p.lon];
    let m = this.drawn.get(p.device_id);
    if (!m) {
      m = {
        marker: L.marker(ll, { icon: markerIcon(p, stale), title: roleLabel(p.role), alt: roleLabel(p.role) }).addTo(this.map),
        circle: L.circle(ll, { radius: p.accuracy_m || 0, weight: 1, opacity: 0.5, fillOpacity: 0.08, color: p.role === "offender" ? "#c62828" : "#1565c0", interactive: false }).addTo(this.map),
      };
      this.drawn.set(p.device_id, m);
    } else {
      m.marker.setLatLng(ll).setIcon(markerIcon(p, stale));
      m.circle.setLatLng(ll).setRadius(p.accuracy_m || 0);
    }
    m.marker.getElement()?.setAttribute("aria-label", positionText(p));
    m.marker.bindTooltip(positionText(p));
  }
}

export const ZONE_STYLE = { color: "#6a1b9a", weight: 2, dashArray: "4 4", fillOpacity: 0.06 };

export function zoneLayer(z: Zone, style: L.PathOptions = ZONE_STYLE): L.Layer {
  const layer = z.shape.type === "circle"
    ? L.circle([z.shape.lat, z.shape.lon], { radius: z.shape.radius_m, ...style })
    : L.polygon(z.shape.ring, style);
  layer.bindTooltip(`${z.label} (${z.kind})`);
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
