// Track replay: pick a device and a time window, state why the history is read (the server
// refuses staff without a purpose and logs it), then draw the track and move a marker along it
// with a slider or play/pause. Each step shows its time, accuracy, source and quality flags.
import L from "leaflet";
import { api } from "../shared/api";
import { PURPOSES, label, t } from "./i18n";
import { createMap, markerIcon } from "./mapkit";
import { errorBox, field, fmtTime, h, select, type Device, type Person, type Position } from "./util";

const localInput = (d: Date): string => {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};

export async function replayScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navReplay") }));
  let devices: Device[] = [], people: Person[] = [];
  try {
    [devices, people] = await Promise.all([api<Device[]>("/api/v1/devices"), api<Person[]>("/api/v1/people").catch(() => [] as Person[])]);
  } catch (e) {
    root.append(errorBox(e));
    return () => {};
  }
  const who = (d: Device) => people.find((p) => p.id === d.owner_id)?.display_name ?? `#${d.owner_id ?? "?"}`;
  const device = select(devices.map((d) => [String(d.id), `#${d.id} ${d.kind} — ${who(d)}`]), undefined, { name: "device", id: "replay-device" });
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
  let fixes: Position[] = [];
  let marker: L.Marker | null = null;
  let accuracy: L.Circle | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;
  const role = () => { const d = devices.find((x) => String(x.id) === device.value); return people.find((p) => p.id === d?.owner_id)?.role ?? null; };

  const show = (i: number) => {
    const f = fixes[i];
    if (!f) return;
    const p: Position = { ...f, role: role() };
    const ll: L.LatLngTuple = [f.lat, f.lon];
    if (!marker) {
      marker = L.marker(ll, { icon: markerIcon(p, false, "replay-marker"), keyboard: false }).addTo(group);
      accuracy = L.circle(ll, { radius: f.accuracy_m || 0, weight: 1, fillOpacity: 0.1, interactive: false }).addTo(group);
    } else {
      marker.setLatLng(ll);
      accuracy?.setLatLng(ll).setRadius(f.accuracy_m || 0);
    }
    const flags = f.flags?.length ? f.flags.join(", ") : "—";
    info.replaceChildren(
      h("span", { class: "replay-time", text: `${t("time")}: ${fmtTime(f.device_time)}` }), " · ",
      h("span", { text: `${t("accuracy")} ±${Math.round(f.accuracy_m ?? 0)} m` }), " · ",
      h("span", { text: `${t("source")}: ${f.source}` }), " · ",
      h("span", { class: f.flags?.length ? "flags warn" : "flags", text: `${t("flags")}: ${flags}` }),
      ` · ${i + 1} ${t("of")} ${fixes.length}`);
    slider.setAttribute("aria-valuetext", fmtTime(f.device_time));
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
    if (Number(slider.value) >= fixes.length - 1) slider.value = "0";
    play.textContent = t("pause");
    play.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      const i = Number(slider.value) + 1;
      if (i >= fixes.length) { stop(); return; }
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
    try {
      fixes = await api<Position[]>(`/api/v1/devices/${device.value}/track?${q}`);
    } catch (x) {
      err.append(errorBox(x));
      return;
    }
    group.clearLayers();
    marker = null;
    accuracy = null;
    if (!fixes.length) { info.textContent = t("noFixes"); slider.disabled = play.disabled = true; return; }
    const line = L.polyline(fixes.map((f) => [f.lat, f.lon] as L.LatLngTuple), { color: "#ad1457", weight: 2, opacity: 0.7, className: "replay-track" }).addTo(group);
    // Flagged fixes (late, integrity suspect) are marked along the track.
    for (const f of fixes.filter((x) => x.flags?.length)) {
      L.circleMarker([f.lat, f.lon], { radius: 4, color: "#e65100", interactive: false }).addTo(group);
    }
    map.fitBounds(line.getBounds().pad(0.2), { animate: false });
    slider.max = String(fixes.length - 1);
    slider.value = "0";
    slider.disabled = play.disabled = false;
    show(0);
  };
  return () => { stop(); map.remove(); };
}
