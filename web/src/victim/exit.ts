// Leaving fast and hiding: the quick exit (button, or Escape twice) ends the session, forgets
// everything and replaces the page; discreet mode ("가리기" / "Hide") covers the whole app with a
// neutral weather page, its title too, leaving only the SOS usable.
import { token, setToken } from "../shared/api";
import { byId } from "../shared/dom";
import { tellServiceWorker } from "./push";
import { stopSharing } from "./share";
import { app, t } from "./state";

const DEFAULT_EXIT = "https://www.weather.go.kr/";

function exitUrl(): string {
  return (window as unknown as { BULWARK_EXIT_URL?: string }).BULWARK_EXIT_URL || localStorage.getItem("bw-exit-url") || DEFAULT_EXIT;
}

/** Leaves at once: ends the session, forgets everything, and replaces this page in history. */
export function quickExit(): void {
  const url = exitUrl();
  const tok = token();
  stopSharing();
  app.exited = true;
  window.clearInterval(app.pollTimer);
  if (tok) {
    void fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${tok}` }, keepalive: true }).catch(() => {});
  }
  setToken(null);
  sessionStorage.clear();
  for (const k of Object.keys(localStorage)) if (k.startsWith("bw-")) localStorage.removeItem(k);
  document.body.replaceChildren();
  document.title = t("discreetTitle");
  history.replaceState(null, "", "/app/");
  location.replace(url);
}

export function applyDiscreet(): void {
  const on = localStorage.getItem("bw-discreet") === "1";
  document.body.classList.toggle("discreet", on);
  // Nothing of the case stays on screen: a neutral cover instead (the SOS stays usable).
  byId("cover").hidden = !on;
  byId("discreet").setAttribute("aria-pressed", String(on));
  byId("discreet").textContent = on ? t("discreetOn") : t("discreet");
  document.title = on ? t("discreetTitle") : t("appTitle");
  byId("app-title").textContent = on ? t("discreetTitle") : t("appTitle");
  // Over her shoulder the covered page must read as a weather page throughout: the buttons
  // that stay (exit, un-hide, SOS) say nothing of safety. The SOS keeps its name for a screen
  // reader (heard only by her, through her own earphones or speaker).
  byId("exit").textContent = on ? t("discreetExit") : t("exit");
  const sos = byId("sos");
  const label = sos.querySelector<HTMLElement>(".sos-label");
  if (label) label.textContent = on ? "☀" : "SOS";
  if (on) sos.setAttribute("aria-label", "SOS");
  else sos.removeAttribute("aria-label");
  tellServiceWorker();
}

export function wireExit(): void {
  let lastEscape = 0;
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const now = Date.now();
    if (now - lastEscape < 1_000) quickExit();
    lastEscape = now;
  });
  byId("exit").onclick = quickExit;
  byId("discreet").onclick = () => {
    localStorage.setItem("bw-discreet", localStorage.getItem("bw-discreet") === "1" ? "0" : "1");
    applyDiscreet();
  };
}
