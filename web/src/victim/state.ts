// What every screen of the victim app shares: her language and its words, the server's clock,
// the latest answer about her case, and the wire shapes of the `/api/v1/me/*` routes.
//
// The generated wire types (`../shared/wire`) cover every answer the server documents by
// schema; `GET /api/v1/me/case` is documented as free-form JSON (its shape depends on the
// caller's role), so its victim view is written out here.
import { type Key, type Lang, WORDS } from "./i18n";
import type { NoticeDto, OrderDto, VictimAlertDto } from "../shared/wire";
import type { AlertClass } from "./signal";

export type Status = "safe" | "in_area" | "approaching" | "violation" | "degraded";
export interface OffenderPos {
  lat: number; lon: number; accuracy_m?: number | null; device_time: string; received_time?: string;
  distance_m: number; bearing_deg: number; course_deg?: number | null; speed_mps?: number | null; source?: string;
}
export interface OwnPos { lat: number; lon: number; accuracy_m?: number | null; device_time: string; received_time: string; source: string; age_s: number; stale: boolean }
export interface Earlier {
  alert_id: number; rule: string; state: string; raised_at: string; ended_at: string | null;
  last_known: boolean; still_watched: boolean; zone: string | null;
}
/** The victim's view of `GET /api/v1/me/case` (crates/server/src/me.rs). */
export interface MyCase {
  case_id: number; orders: OrderDto[]; offender: OffenderPos | "not_nearby" | "unknown";
  status: Status; status_reasons: string[]; expires_at: string | null; own_position: OwnPos | null;
  own_device: { id: number; kind: string } | null;
  sos: { alert_id: number; state: string; raised_at: string; updated_at: string } | null;
  server_time: string; stale_after_s: number;
  /** What his latest position shows now (with its time), apart from what happened earlier. */
  now?: { as_of: string | null; age_s: number | null; fresh: boolean; conditions: { rule: string; since: string; zone: string | null }[] };
  earlier?: Earlier[];
}
export type MyAlert = VictimAlertDto & { class: AlertClass };
export type NoticeKind = "petition_filed" | "under_review" | "granted" | "modified" | "denied" | "extended" | "amended" | "expires_soon" | "lapsed";
export type Notice = NoticeDto & { kind: NoticeKind };

export const POLL_MS = 3_000;
/** Without an answer for this long the app says so: protection degraded, never frozen. */
export const OFFLINE_AFTER_MS = 10_000;
/** A disclosed position older than this is flagged as old, beside its age. */
export const OLD_FIX_S = 60;

export let lang: Lang = localStorage.getItem("bw-lang") === "en" ? "en" : "ko";
export function setLang(l: Lang): void {
  lang = l;
  localStorage.setItem("bw-lang", l);
}
export const t = (k: Key): string => WORDS[lang][k];
/** A word by a key made from a server code (`reason_${rule}`), falling back to the key. */
export const tr = (k: string): string => (WORDS[lang] as Record<string, string>)[k] ?? k;

export const app = {
  skew: 0,
  lastOk: 0,
  offline: false,
  data: null as MyCase | null,
  prevStatus: null as Status | null,
  // Silent mode lives on the server (`/api/v1/me/settings`); the copy here only covers the
  // moment between opening the app and the server's answer.
  silent: localStorage.getItem("bw-silent") === "1",
  seenAlerts: null as Set<number> | null,
  notices: [] as Notice[],
  noticesError: "",
  pollCount: 0,
  pollTimer: 0,
  /** Quick exit emptied the page: answers still in flight must not touch it. */
  exited: false,
  screen: "home",
};

/** Hooks the screens call on each other without importing each other (set by main.ts). */
export const hooks = {
  /** Asks the server about her case now (after an SOS, a petition). */
  poll: (): void => {},
};

export const serverNow = (): number => Date.now() + app.skew;
export const ageS = (iso: string): number => Math.max(0, (serverNow() - Date.parse(iso)) / 1000);
export function fmtAge(s: number): string {
  if (s < 90) return `${Math.round(s)}${t("sec")} ${t("ago")}`;
  if (s < 5400) return `${Math.round(s / 60)}${t("min")} ${t("ago")}`;
  return `${Math.round(s / 3600)}${t("hour")} ${t("ago")}`;
}
const locale = (): string => (lang === "ko" ? "ko-KR" : "en-GB");
export const fmtTime = (iso: string): string => new Date(iso).toLocaleString(locale(), { dateStyle: "short", timeStyle: "medium" });
export const fmtDate = (iso: string): string => new Date(iso).toLocaleDateString(locale());
export const fmtClock = (iso: string | number): string => new Date(iso).toLocaleTimeString(locale());
export function compass(deg: number): string {
  const ko = ["북", "북동", "동", "남동", "남", "남서", "서", "북서"];
  const en = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
  return (lang === "ko" ? ko : en)[Math.round(((deg % 360) + 360) % 360 / 45) % 8];
}
/** A `<time>` element showing `iso` in her language. */
export const timeEl = (iso: string, text = fmtTime(iso)): HTMLTimeElement => {
  const el = document.createElement("time");
  el.dateTime = iso;
  el.textContent = text;
  return el;
};
