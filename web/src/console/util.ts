// The console's wire types, time formatting, and how every screen reports a refusal; the DOM
// helpers are the shared ones (`../shared/dom`).
import { ApiError } from "../shared/api";
import { lang, t } from "./i18n";

export { field, h, select } from "../shared/dom";
import { h } from "../shared/dom";

/** A screen-level message for an error: 403 says "not permitted", otherwise the server's message. */
export function errorBox(e: unknown): HTMLElement {
  let text: string;
  if (e instanceof ApiError && e.status === 403) text = `${t("forbidden")} (${e.code})`;
  else if (e instanceof ApiError) text = `${e.message} (${e.code})`;
  else text = `${t("loadFailed")}: ${(e as Error).message ?? String(e)}`;
  return h("p", { class: "error", role: "alert", text });
}

export let skewMs = 0;
export function setSkew(serverTime: string): void {
  skewMs = Date.parse(serverTime) - Date.now();
}
export const ageSeconds = (iso: string): number => Math.max(0, (Date.now() + skewMs - Date.parse(iso)) / 1000);
export function fmtAge(s: number): string {
  if (s < 90) return `${Math.round(s)}${t("sec")} ${t("ago")}`;
  if (s < 5400) return `${Math.round(s / 60)}${t("min")} ${t("ago")}`;
  return `${Math.round(s / 3600)}${t("hour")} ${t("ago")}`;
}
/** Dates and times in the console's language (not the browser's): "2026. 12. 3. 오후 1:22:50" or "03/12/2026, 13:22:50". */
export const locale = (): string => (lang === "ko" ? "ko-KR" : "en-GB");
export const fmtTime = (iso: string | number): string => new Date(iso).toLocaleString(locale());
export const fmtClock = (iso: string | number): string => new Date(iso).toLocaleTimeString(locale());
export const fmtDur = (s: number | null | undefined): string =>
  s == null ? "—" : s < 120 ? `${s.toFixed(0)}${t("sec")}` : `${(s / 60).toFixed(1)}${t("min")}`;

// A position older than this is shown as stale (grey marker, warning in the list).
export const STALE_AFTER_S = 120;

export interface Position {
  fix_id?: number;
  device_id: number;
  person_id?: number | null;
  role?: string | null;
  lat: number;
  lon: number;
  accuracy_m?: number | null;
  course_deg?: number | null;
  speed_mps?: number | null;
  device_time: string;
  received_time?: string;
  source: string;
  flags?: string[];
}
export interface Alert {
  id: number;
  case_id?: number | null;
  order_id?: number | null;
  device_id?: number | null;
  rule: string;
  severity: string;
  state: string;
  summary: string;
  raised_at: string;
  updated_at: string;
  condition_active: boolean;
  late?: boolean;
  certainty?: string;
  escalation_level?: number;
  zone_id?: number | null;
  min_distance_m?: number | null;
  closing_speed_mps?: number | null;
  time_to_contact_s?: number | null;
  heading_toward?: boolean | null;
  raise_summary?: string | null;
  raise_distance_m?: number | null;
}
export type Shape =
  | { type: "circle"; lat: number; lon: number; radius_m: number }
  | { type: "polygon"; ring: [number, number][] };
export interface Zone { id?: number; label: string; kind: string; shape: Shape; schedule?: unknown }
export interface Order {
  id: number; case_id: number; kind: string; valid_from: string; valid_to?: string | null;
  no_approach_m: number; warning_m: number; disclosure_radius_m: number; zones: Zone[];
}
export interface Case { id: number; reference: string; offender_id: number; protected_ids: number[] }
export interface Person { id: number; role: string; display_name: string }
export interface Health {
  reported_at: string; battery_percent?: number | null; charging?: boolean | null; signal?: number | null; satellites?: number | null;
}
export interface Device { id: number; kind: string; protocol: string; hardware_id: string; owner_id?: number | null; health?: Health | null }
export interface Snapshot { server_time: string; orders: Order[]; alerts: Alert[]; positions: Position[]; cases: Case[] }
export interface AlertAction {
  id: number; alert_id: number; at: string; actor_account_id: number; actor_role: string; action: string; cause?: string | null; note?: string | null;
  /** The alert as it was at this step. */
  summary?: string | null; min_distance_m?: number | null; condition_active?: boolean | null;
}
export interface Me { account_id: number; role: string; person_id?: number | null; case_ids: number[] }
