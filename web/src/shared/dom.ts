// The one way both apps build their pages: elements made with `h` (text is always text, never
// parsed as HTML), and `swap`, which replaces an element's children only when what they say
// changed, so live regions announce changes and not every tick.

export type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;
export type Child = Node | string | null | undefined | false;

/** Creates an element; `on*` attributes become listeners, `false`/`null` attributes are skipped. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (typeof v === "function") e.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === "text") e.textContent = String(v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c != null && c !== false) e.append(c);
  return e;
}

/**
 * Replaces `el`'s children with `children` unless they would read and look exactly the same
 * (compared as serialised markup), so a screen re-rendered every second stays still.
 */
export function swap(el: HTMLElement, ...children: Child[]): void {
  const next = document.createElement("div");
  for (const c of children) if (c != null && c !== false) next.append(c);
  const markup = next.innerHTML;
  if (el.dataset.rendered === markup) return;
  el.dataset.rendered = markup;
  el.replaceChildren(...next.childNodes);
}

/** Sets text only when it changed, so live regions announce changes, not every tick. */
export function setText(el: HTMLElement, v: string): void {
  if (el.textContent !== v) el.textContent = v;
}

let uid = 0;
/** A labelled form field: `<label for>` + control. */
export function field(text: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement): HTMLElement {
  if (!control.id) control.id = `f${++uid}`;
  return h("div", { class: "field" }, h("label", { for: control.id, text }), control);
}

export function select(options: [string, string][], value?: string, attrs: Attrs = {}): HTMLSelectElement {
  const s = h("select", attrs);
  for (const [v, l] of options) s.append(h("option", { value: v, selected: v === value, text: l }));
  return s;
}

/** An element by id, typed (the pages' static skeletons have them). */
export const byId = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
