// Track replay: pick a case (both parties together) or one device and a time window, state why
// the history is read (the server refuses staff without a purpose and logs it), then draw the
// tracks and move one marker per party along them with a slider or play/pause. Each step shows
// its time and, for each party, the position's accuracy, source and quality flags; with both
// parties, the distance between them at that moment.
import L from "leaflet";
import { api } from "../shared/api";
import { DEVICE_KINDS, FLAGS, PURPOSES, SOURCES, label, t } from "./i18n";
import { createMap, markerIcon, roleLabel } from "./mapkit";
import { errorBox, field, fmtTime, h, select, type Case, type Device, type Person, type Position } from "./util";

const localInput = (d: Date): string => {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};

/** Great-circle distance in metres (haversine, mean Earth radius 6 371 008.8 m). */
export function distanceM(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const r = Math.PI / 180;
  const s = Math.sin(((b.lat - a.lat) * r) / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(((b.lon - a.lon) * r) / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.min(1, Math.sqrt(s)));
}

/** One party's track in a replay. */
interface Track { device: Device; role: string | null; name: string; fixes: Position[]; marker: L.Marker | null; accuracy: L.Circle | null }

/** The last fix at or before `at` (ms), by binary search over a track sorted by device time. */
function fixAt(fixes: Position[], at: number): Position | null {
  let lo = 0, hi = fixes.length - 1, best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (Date.parse(fixes[mid].device_time) <= at) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return best < 0 ? null : fixes[best];
}

export async function replayScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navReplay") }));
  let devices: Device[] = [], people: Person[] = [], cases: Case[] = [];
  try {
    [devices, people, cases] = await Promise.all([
      api<Device[]>("/api/v1/devices"),
      api<Person[]>("/api/v1/people").catch(() => [] as Person[]),
      api<Case[]>("/api/v1/cases").catch(() => [] as Case[]),
    ]);
  } catch (e) {
    root.append(errorBox(e));
    return () => {};
  }
  const personOf = (d: Device) => people.find((p) => p.id === d.owner_id);
  const who = (d: Device) => personOf(d)?.display_name ?? `#${d.owner_id ?? "?"}`;
  // A case first: both parties together is what an officer reviewing an alert needs.
  const options: [string, string][] = [
    ...cases.map((c): [string, string] => [`case:${c.id}`, `${t("bothParties")}: ${c.reference}`]),
    ...devices.map((d): [string, string] => [`device:${d.id}`, `#${d.id} ${label(DEVICE_KINDS, d.kind)} — ${who(d)}`]),
  ];
  const device = select(options, undefined, { name: "device", id: "replay-device" });
  const now = new Date();
  const from = h("input", { type: "datetime-local", name: "from", id: "replay-from", value: localInput(new Date(now.getTime() - 15 * 60_000)), required: true });
  const to = h("input", { type: "datetime-local", name: "to", id: "replay-to", value: localInput(new Date(now.getTime() + 60_000)), required: true });
  const purpose = select(Object.keys(PURPOSES.en).map((k) => [k, label(PURPOSES, k)]), "supervision", { name: "purpose_code", id: "replay-purpose" });
  const text = h("input", { name: "purpose_text", id: "replay-purpose-text", required: true, minlength: 10, maxlength: 500 });
  const err = h("div", { role: "alert" });
  const form = h("form", { class: "replay-form" }, field(t("device"), device), field(t("from"), from), field(t("to"), to),
    field(t("purpose"), purpose), field(t("purposeText"), text), h("button", { type: "submit", class: "primary", text: t("showTrack") }));
  const slider = h("input", { type: "range", min: 0, max: 0, value: 0, step: 1, id: "replay-slider", disabled: true });
  const play = h("button", { type: "button", id: "replay-play", disabled: true, text: t("play"), "aria-pressed": "false" });
  const info = h("div", { id: "replay-info", class: "replay-info", "aria-live": "polite" });
  const mapEl = h("div", { class: "map replay-map", id: "replay-map" });
  root.append(form, err, h("div", { class: "replay-controls" }, field(t("time"), slider), play), info, mapEl);

  const map = createMap(mapEl, t("navReplay"));
  const group = L.layerGroup().addTo(map);
  let tracks: Track[] = [];
  /** Every moment any party reported, in order: the slider's steps. */
  let steps: number[] = [];
  let timer: ReturnType<typeof setInterval> | null = null;

  const partyText = (tr: Track, f: Position | null): HTMLElement => {
    const flags = f?.flags?.length ? f.flags.map((x) => label(FLAGS, x)).join(", ") : "—";
    return h("li", { class: `replay-party bw-${tr.role ?? "unknown"}`, "data-device-id": tr.device.id },
      h("strong", { text: `${roleLabel(tr.role) || label(DEVICE_KINDS, tr.device.kind)} — ${tr.name}` }), ": ",
      f ? h("span", {},
        `${fmtTime(f.device_time)} · ${t("accuracy")} ±${Math.round(f.accuracy_m ?? 0)} m · ${t("source")}: ${label(SOURCES, f.source)} · `,
        h("span", { class: f.flags?.length ? "flags warn" : "flags", text: `${t("flags")}: ${flags}` }))
        : h("span", { text: t("noPositionYet") }));
  };
  const show = (i: number) => {
    const at = steps[i];
    if (at == null) return;
    const now: (Position | null)[] = [];
    for (const tr of tracks) {
      const f = fixAt(tr.fixes, at);
      now.push(f);
      if (!f) { tr.marker?.remove(); tr.accuracy?.remove(); tr.marker = tr.accuracy = null; continue; }
      const ll: L.LatLngTuple = [f.lat, f.lon];
      const p: Position = { ...f, role: tr.role };
      // The offender above the protected person, as on the live map.
      const z = tr.role === "offender" ? 1000 : 0;
      if (!tr.marker) {
        tr.marker = L.marker(ll, { icon: markerIcon(p, false, "replay-marker"), keyboard: false, zIndexOffset: z, title: `${roleLabel(tr.role)} ${tr.name}` }).addTo(group);
        tr.marker.bindTooltip(tr.name, { permanent: true, direction: tr.role === "offender" ? "right" : "left", className: "bw-label", offset: tr.role === "offender" ? [10, 0] : [-10, 0] });
        tr.accuracy = L.circle(ll, { radius: f.accuracy_m || 0, weight: 1, fillOpacity: 0.1, interactive: false, color: tr.role === "offender" ? "#c62828" : "#1565c0" }).addTo(group);
      } else {
        tr.marker.setLatLng(ll).setIcon(markerIcon(p, false, "replay-marker"));
        tr.accuracy?.setLatLng(ll).setRadius(f.accuracy_m || 0);
      }
      tr.marker.getElement()?.setAttribute("data-device-id", String(tr.device.id));
    }
    const off = tracks.findIndex((x) => x.role === "offender");
    const prot = tracks.findIndex((x) => x.role === "protected");
    const between = off >= 0 && prot >= 0 && now[off] && now[prot] ? Math.round(distanceM(now[off] as Position, now[prot] as Position)) : null;
    info.replaceChildren(
      h("span", { class: "replay-time", text: `${t("time")}: ${fmtTime(new Date(at).toISOString())}` }),
      between != null ? h("span", { class: "replay-distance", "data-distance": between, text: ` · ${t("betweenParties")}: ${between} m` }) : "",
      ` · ${i + 1} ${t("of")} ${steps.length}`,
      h("ul", { class: "replay-parties" }, ...tracks.map((tr, k) => partyText(tr, now[k]))));
    slider.setAttribute("aria-valuetext", fmtTime(new Date(at).toISOString()));
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
    play.textContent = t("play");
    play.setAttribute("aria-pressed", "false");
  };
  slider.oninput = () => show(Number(slider.value));
  play.onclick = () => {
    if (timer) { stop(); return; }
    if (Number(slider.value) >= steps.length - 1) slider.value = "0";
    play.textContent = t("pause");
    play.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      const i = Number(slider.value) + 1;
      if (i >= steps.length) { stop(); return; }
      slider.value = String(i);
      show(i);
    }, 300);
  };
  form.onsubmit = async (e) => {
    e.preventDefault();
    stop();
    err.replaceChildren();
    const q = new URLSearchParams({
      from: new Date(from.value).toISOString(), to: new Date(to.value).toISOString(),
      purpose_code: purpose.value, purpose_text: text.value.trim(),
    });
    const [kind, id] = device.value.split(":");
    const c = kind === "case" ? cases.find((x) => String(x.id) === id) : undefined;
    const chosen = c
      ? devices.filter((d) => d.owner_id != null && (d.owner_id === c.offender_id || c.protected_ids.includes(d.owner_id)))
      : devices.filter((d) => String(d.id) === id);
    try {
      const got = await Promise.all(chosen.map((d) => api<Position[]>(`/api/v1/devices/${d.id}/track?${q}`)));
      tracks = chosen.map((d, k) => ({
        device: d, role: personOf(d)?.role ?? null, name: who(d), marker: null, accuracy: null,
        fixes: [...got[k]].sort((a, b) => Date.parse(a.device_time) - Date.parse(b.device_time)),
      }));
    } catch (x) {
      err.append(errorBox(x));
      return;
    }
    group.clearLayers();
    steps = [...new Set(tracks.flatMap((tr) => tr.fixes.map((f) => Date.parse(f.device_time))))].sort((a, b) => a - b);
    if (!steps.length) { info.textContent = t("noFixes"); slider.disabled = play.disabled = true; return; }
    const lines = tracks.filter((tr) => tr.fixes.length).map((tr) =>
      L.polyline(tr.fixes.map((f) => [f.lat, f.lon] as L.LatLngTuple), {
        color: tr.role === "protected" ? "#1565c0" : "#ad1457", weight: 2, opacity: 0.7, className: `replay-track replay-track-${tr.role ?? "unknown"}`,
      }).addTo(group));
    // Flagged fixes (late, integrity suspect) are marked along the track.
    for (const f of tracks.flatMap((tr) => tr.fixes).filter((x) => x.flags?.length)) {
      L.circleMarker([f.lat, f.lon], { radius: 4, color: "#e65100", interactive: false }).addTo(group);
    }
    const bounds = lines.reduce((b, l) => b.extend(l.getBounds()), lines[0].getBounds());
    map.fitBounds(bounds.pad(0.2), { animate: false });
    mapEl.dataset.parties = String(tracks.filter((tr) => tr.fixes.length).length);
    slider.max = String(steps.length - 1);
    slider.value = "0";
    slider.disabled = play.disabled = false;
    show(0);
  };
  return () => { stop(); map.remove(); };
}
