// Her alerts screen: the list (newest raised first, each with its class, what happened, its
// state and time), a test alert, and silent mode, which the server keeps.
import { api, ApiError } from "../shared/api";
import { byId, h, setText } from "../shared/dom";
import type { Settings } from "../shared/wire";
import { ageS, app, fmtAge, t, timeEl, tr, type MyAlert } from "./state";
import { type AlertClass, signal, unlockAudio } from "./signal";

export function mostSevere(a: AlertClass | null, b: AlertClass | null): AlertClass | null {
  const rank = { danger: 3, technical: 2, test: 1 } as const;
  if (!a) return b;
  if (!b) return a;
  return rank[a] >= rank[b] ? a : b;
}

/** Plays the class's sound and vibration (nothing in silent mode); the page keeps what it did. */
export function signalNow(cls: AlertClass): void {
  document.body.dataset.lastSignal = signal(cls, app.silent);
}

/** New alerts since the last poll (the class to signal), and the alerts list. */
export async function pollAlerts(): Promise<AlertClass | null> {
  let list: MyAlert[];
  try {
    list = await api<MyAlert[]>("/api/v1/me/alerts");
  } catch (e) {
    if (app.exited) return null;
    if (!(e instanceof ApiError && e.status === 401)) setText(byId("alerts-note"), `${t("alertsFailed")}: ${(e as Error).message}`);
    return null;
  }
  if (app.exited) return null;
  setText(byId("alerts-note"), "");
  let cls: AlertClass | null = null;
  if (app.seenAlerts) {
    // A new alert sounds once. One already closed when it arrives does not, except her own
    // test alert, which the server stores closed and whose point is to be heard.
    for (const a of list) {
      if (!app.seenAlerts.has(a.id) && (a.state !== "resolved" || a.class === "test")) cls = mostSevere(cls, a.class);
    }
  }
  app.seenAlerts = new Set(list.map((a) => a.id));
  renderAlerts(list);
  return cls;
}

function renderAlerts(list: MyAlert[]): void {
  if (app.exited) return;
  const ol = byId("alerts");
  if (list.length === 0) {
    ol.replaceChildren(h("li", { class: "empty", text: t("noAlerts") }));
    return;
  }
  // Newest raised first, whatever order the server kept them in.
  const sorted = [...list].sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at) || b.id - a.id);
  ol.replaceChildren(...sorted.map((a) =>
    h("li", { class: `alert ${a.class}`, "data-alert-id": a.id, "data-class": a.class },
      h("strong", {}, h("span", { class: `pill ${a.class}`, text: tr(`class_${a.class}`) }), ` ${tr(`reason_${a.kind}`)}`),
      h("div", { class: "meta" }, `${tr(`state_${a.state}`)} · `, timeEl(a.raised_at), ` (${fmtAge(ageS(a.raised_at))})`))));
}

export async function loadSettings(): Promise<void> {
  try {
    const s = await api<Settings>("/api/v1/me/settings");
    if (app.exited) return;
    app.silent = s.silent;
    localStorage.setItem("bw-silent", app.silent ? "1" : "0");
    setText(byId("settings-note"), "");
  } catch (e) {
    if (app.exited) return;
    if (!(e instanceof ApiError && e.status === 401)) setText(byId("settings-note"), `${t("settingsLoadFailed")}: ${(e as Error).message}`);
  }
  byId<HTMLInputElement>("silent").checked = app.silent;
}

export function wireAlerts(): void {
  byId("test-alert").onclick = async () => {
    unlockAudio();
    const note = byId("test-note");
    try {
      await api("/api/v1/me/alerts/test", { method: "POST" });
      note.textContent = t("testSent");
      note.dataset.i18n = "testSent"; // re-worded when she switches language
      // Fetch at once: the new test alert is listed and sounds (unless silent).
      const cls = await pollAlerts();
      if (cls) signalNow(cls);
    } catch (e) {
      delete note.dataset.i18n;
      note.textContent = `${t("testFailed")}: ${(e as Error).message}`;
    }
  };
  byId<HTMLInputElement>("silent").onchange = async () => {
    const box = byId<HTMLInputElement>("silent");
    const want = box.checked;
    // Quiet at once (he may be near); louder only once the server has it.
    if (want) app.silent = true;
    try {
      const s = await api<Settings>("/api/v1/me/settings", { method: "PUT", body: JSON.stringify({ silent: want }) });
      app.silent = s.silent;
      localStorage.setItem("bw-silent", app.silent ? "1" : "0");
      setText(byId("settings-note"), "");
      box.dataset.saved = String(s.silent);
    } catch (e) {
      setText(byId("settings-note"), `${t("settingsFailed")}: ${(e as Error).message}`);
    }
    box.checked = app.silent;
  };
}
