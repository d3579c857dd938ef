// A keyboard-usable modal dialog: focus moves into it, Tab cycles inside it, Escape closes it,
// and focus returns to the control that opened it.
import { h } from "./util";
import { t } from "./i18n";

export interface DialogHandle { root: HTMLElement; close: () => void; error: (text: string) => void }

/** Opens a modal with `body` (form fields) and a submit button; `onSubmit` returning true closes it. */
export function openDialog(title: string, body: HTMLElement[], submitLabel: string, onSubmit: (d: DialogHandle) => Promise<boolean>): DialogHandle {
  const opener = document.activeElement as HTMLElement | null;
  const titleId = `dlg-${Date.now()}`;
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": titleId },
    h("h2", { id: titleId, text: title }), ...body, err,
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary", text: submitLabel }),
      h("button", { type: "button", class: "cancel", text: t("cancel"), onclick: () => close() })));
  const overlay = h("div", { class: "overlay" }, form);
  const handle: DialogHandle = {
    root: form,
    close: () => close(),
    error: (text) => { err.textContent = text; err.hidden = false; },
  };
  function close(): void {
    overlay.remove();
    document.removeEventListener("keydown", onKey, true);
    opener?.focus();
  }
  function focusables(): HTMLElement[] {
    return [...form.querySelectorAll<HTMLElement>("button, input, select, textarea, [tabindex]:not([tabindex='-1'])")]
      .filter((e) => !(e as HTMLInputElement).disabled && e.offsetParent !== null);
  }
  function onKey(e: KeyboardEvent): void {
    if (e.key === "Escape") { e.preventDefault(); close(); return; }
    if (e.key !== "Tab") return;
    const f = focusables();
    if (!f.length) return;
    const first = f[0], last = f[f.length - 1];
    if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    else if (!form.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    const submit = form.querySelector<HTMLButtonElement>("button[type=submit]");
    if (submit) submit.disabled = true;
    try {
      if (await onSubmit(handle)) close();
    } catch (x) {
      handle.error((x as Error).message);
    } finally {
      if (submit) submit.disabled = false;
    }
  });
  document.addEventListener("keydown", onKey, true);
  document.body.append(overlay);
  (focusables()[0] ?? form).focus();
  return handle;
}
