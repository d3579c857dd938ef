// Administrator screens: devices that tried to connect unregistered (with a form to register
// them) and the accounts. Administrators see no case data.
import { api } from "../shared/api";
import { DEVICE_KINDS, PROTOCOL_NAMES, ROLES, label, t } from "./i18n";
import { errorBox, field, fmtTime, h, select } from "./util";

interface Unknown { protocol: string; hardware_id: string; first_seen: string; last_seen: string; attempts: number; last_remote?: string | null }
interface AccountRow { id: number; username: string; role: string; person_id?: number | null; totp_enrolled?: boolean }

const KINDS = ["ankle_monitor", "tracker", "victim_phone", "smartwatch"];
const PROTOCOLS = ["native", "osmand", "gt06", "h02", "watch", "teltonika", "owntracks", "gpslogger", "overland"];

export async function unknownDevicesScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navUnknown") }));
  const list = h("div");
  const kind = select(KINDS.map((k) => [k, label(DEVICE_KINDS, k)]), "ankle_monitor", { name: "kind" });
  const protocol = select(PROTOCOLS.map((k) => [k, label(PROTOCOL_NAMES, k)]), "osmand", { name: "protocol" });
  const hw = h("input", { name: "hardware_id", required: true, maxlength: 64 });
  const owner = h("input", { name: "owner_id", type: "number", min: 1 });
  const tokenIn = h("input", { name: "token", minlength: 16, autocomplete: "off" });
  const msg = h("p", { role: "status" });
  const form = h("form", { class: "register-form", "aria-labelledby": "reg-h" }, h("h3", { id: "reg-h", text: t("register") }),
    field(t("kind"), kind), field(t("protocol"), protocol), field(t("hardwareId"), hw), field(t("owner"), owner), field(t("token"), tokenIn),
    h("button", { type: "submit", class: "primary", text: t("register") }), msg);
  form.onsubmit = async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    const body: Record<string, unknown> = { kind: kind.value, protocol: protocol.value, hardware_id: hw.value.trim() };
    if (owner.value) body.owner_id = Number(owner.value);
    if (tokenIn.value) body.token = tokenIn.value;
    try {
      const d = await api<{ id: number }>("/api/v1/devices", { method: "POST", body: JSON.stringify(body) });
      msg.textContent = `${t("registered")}: #${d.id}`;
      await load();
    } catch (x) {
      msg.append(errorBox(x));
    }
  };
  const load = async () => {
    list.replaceChildren();
    try {
      const rows = await api<Unknown[]>("/api/v1/devices/unknown");
      if (!rows.length) { list.append(h("p", { text: t("noUnknown") })); return; }
      list.append(h("table", {},
        h("thead", {}, h("tr", {}, ...[t("protocol"), t("hardwareId"), t("firstSeen"), t("lastSeen"), t("attempts"), ""].map((x) => h("th", { scope: "col", text: x })))),
        h("tbody", {}, ...rows.map((u) => h("tr", {},
          h("td", { text: label(PROTOCOL_NAMES, u.protocol) }), h("td", { translate: "no", text: u.hardware_id }), h("td", { text: fmtTime(u.first_seen) }),
          h("td", { text: fmtTime(u.last_seen) }), h("td", { text: String(u.attempts) }),
          h("td", {}, h("button", { type: "button", text: t("register"), "aria-label": `${t("register")} ${u.hardware_id}`, onclick: () => {
            hw.value = u.hardware_id;
            if (PROTOCOLS.includes(u.protocol)) protocol.value = u.protocol;
            kind.focus();
          } })))))));
    } catch (x) {
      list.append(errorBox(x));
    }
  };
  root.append(list, form);
  await load();
  return () => {};
}

export async function accountsScreen(root: HTMLElement): Promise<() => void> {
  root.append(h("h2", { text: t("navAccounts") }));
  try {
    const rows = await api<AccountRow[]>("/api/v1/accounts");
    root.append(h("table", {},
      h("thead", {}, h("tr", {}, ...["#", t("username"), t("role"), t("person"), "TOTP"].map((x) => h("th", { scope: "col", text: x })))),
      h("tbody", {}, ...rows.map((a) => h("tr", {}, h("td", { text: String(a.id) }), h("td", { text: a.username }), h("td", { text: label(ROLES, a.role) }),
        h("td", { text: a.person_id != null ? String(a.person_id) : "—" }), h("td", { text: a.totp_enrolled ? "✓" : "—" }))))));
  } catch (e) {
    root.append(errorBox(e));
  }
  return () => {};
}
