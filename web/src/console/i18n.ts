// Korean (default) and English strings of the console. Every visible text goes through `t`.
export type Lang = "ko" | "en";

const KO = {
  title: "관제", alerts: "경보", noAlerts: "진행 중인 경보 없음", people: "위치", parties: "당사자",
  usernameLabel: "아이디", passwordLabel: "비밀번호", totpLabel: "인증 코드 (등록한 경우)",
  loginFailed: "아이디, 비밀번호 또는 코드가 틀렸습니다", signIn: "로그인", signOut: "로그아웃",
  offender: "가해자", protected: "피해자",
  ago: "전", sec: "초", min: "분", hour: "시간", accuracy: "정확도", live: "실시간 연결됨",
  reconnecting: "연결 끊김 — 재연결 중…", stale: "오래된 위치",
  tilesOffline: "지도 타일을 불러올 수 없습니다 — 격자 배경으로 표시합니다",
  ack: "확인", resolve: "종결", dispatch: "출동 요청", actions: "조치 기록", history: "이력",
  conditionCleared: "조건 해소됨", notices: "참고 알림", battery: "배터리", charging: "충전 중",
  signal: "신호", lastSeen: "마지막 수신", never: "수신 없음",
  navLive: "실시간 지도", navCases: "사건", navReplay: "궤적 재생", navMeasures: "경보 지표",
  navUnknown: "미등록 장치", navAccounts: "계정", navCourt: "법원", navAudit: "접근 기록",
  mainNav: "주 메뉴", language: "언어 / Language",
  forbidden: "이 화면을 볼 권한이 없습니다 (역할에 허용되지 않음).",
  notAvailable: "아직 서버에서 제공되지 않는 기능입니다 (준비 중).",
  loadFailed: "불러오지 못했습니다", loading: "불러오는 중…",
  case: "사건", cases: "사건 목록", devices: "장치", orders: "명령", zones: "구역", timeline: "경과",
  validFrom: "효력 시작", validTo: "효력 종료", validNow: "효력 중", notValid: "효력 없음",
  noApproach: "접근금지 거리", warning: "경고 거리", disclosure: "공개 반경",
  kind: "종류", label: "이름", delete: "삭제", editZones: "구역 편집", addCircle: "원 추가",
  addPolygon: "다각형 추가", finishPolygon: "다각형 완료", radius: "반경 (m)", reasons: "사유",
  saveVersion: "새 명령 버전 저장", cancel: "취소", save: "저장", close: "닫기",
  clickCentre: "지도에서 원의 중심을 클릭하세요", clickVertices: "지도에서 꼭짓점을 차례로 클릭한 뒤 ‘다각형 완료’를 누르세요",
  versionSaved: "새 명령 버전이 저장되었습니다", reasonsRequired: "사유를 10자 이상 입력하세요",
  device: "장치", from: "시작", to: "끝", purpose: "열람 목적", purposeText: "목적 설명 (10자 이상)",
  showTrack: "궤적 보기", play: "재생", pause: "일시정지", time: "시각", source: "출처", flags: "플래그",
  noFixes: "이 구간에 위치 기록이 없습니다", fixes: "위치",
  cause: "종결 사유", note: "메모", resolveTitle: "경보 종결", actionTitle: "조치 기록",
  action: "조치", record: "기록", dispatchTitle: "경찰 출동 요청", 
  register: "등록", hardwareId: "장치 식별번호", protocol: "프로토콜", owner: "착용자 번호", token: "장치 토큰 (기본 프로토콜·휴대폰 앱)",
  firstSeen: "처음", attempts: "시도", registered: "등록되었습니다", noUnknown: "미등록 장치 없음",
  petitions: "신청", review: "검토", decide: "결정", decision: "결정", conditions: "조건",
  versions: "명령 버전", extend: "연장", extendDays: "연장 일수", orderId: "명령 번호",
  auditFilter: "필터", actor: "행위자", outcome: "결과", details: "내용", chainOk: "해시 연결 일관됨 (각 기록의 {code} = 바로 앞 기록의 해시)",
  chainBroken: "해시 연결이 끊김: 기록", records: "건", onlyTrackReads: "궤적 열람만",
  measuresWindow: "기간", alertsCount: "경보 수", perCaseDay: "사건·일당 경보", timeToAck: "확인까지 시간",
  timeToDispatch: "출동까지 시간", median: "중앙값", p90: "90백분위", falseAlarm: "오경보 비율", perRule: "규칙별",
  perCause: "사유별", count: "건수", resolved: "종결", noCase: "사건 없음", group: "같은 사건의 경보",
  navTasks: "내 출동", myTasks: "내 출동 과제", noTasks: "배정된 출동 과제 없음", taskState: "상태",
  enRoute: "이동 중", onScene: "현장 도착", taskDone: "완료", dispatchEnded: "출동 종료 (또는 위치 미수신) — 피해자 위치를 표시하지 않습니다",
  victimPosition: "피해자 위치", noPositionYet: "아직 수신된 위치 없음", policeUnit: "경찰 (피해자 측 출동, 선택)",
  officerOnly: "— 보호관찰관만 (경찰 없이) —", taskKinds: "과제", alertNo: "경보",
  petitionState: "상태", petitioner: "신청인", requested: "요청 조건", statement: "신청 내용", filedAt: "신청 시각",
  petitionHistory: "경과", courtNotices: "법원 통지", order: "명령", version: "버전", inForce: "효력 중",
  durationDays: "기간 (일)", noContactPhone: "전화 연락 금지", grant: "인용", modify: "변경 인용", deny: "기각",
  reasonsNeeded: "변경·기각에는 사유가 필요합니다", savedVersion: "저장됨: 명령 버전", openOrder: "버전 보기",
  mute: "경보음 끄기", alarmMuted: "경보음 꺼짐", sosFrom: "긴급 신고", late: "지연 수신 데이터로 감지", possible: "가능성 (위치 불확실)",
  legend: "범례", legendOffender: "가해자 (빨강)", legendProtected: "피해자 (파랑)", legendZone: "보호구역", legendAlarm: "경보 중인 사건",
  fitCase: "사건 위치로 이동", showOnMap: "지도에서 보기", at: "당시", conditionHeld: "조건 유지", casesWord: "건의 사건", windowDays: "일",
  caseDays: "사건·일", rateTooShort: "기간이 짧아 비율을 표시하지 않습니다 (사건·일 {min} 이상부터)", inWindow: "기간 내",
  party: "당사자", bothParties: "사건 (가해자와 피해자 함께)", betweenParties: "두 사람 사이 거리", selectCase: "사건", nobody: "알 수 없음",
  username: "아이디", role: "역할", skip: "본문으로 건너뛰기", partyApp: "피해자·대상자는 /app/ 앱을 사용하세요.", none: "없음", of: "/", refresh: "새로고침",
  zoomIn: "확대", zoomOut: "축소", seq: "번호", auditAction: "행위", person: "당사자 번호", appTitle: "Bulwark — 관제", shapeCircle: "원", shapePolygon: "다각형",
} as const;
export type Key = keyof typeof KO;

const EN: Record<Key, string> = {
  title: "Monitoring", alerts: "Alerts", noAlerts: "No active alerts", people: "Positions", parties: "People",
  usernameLabel: "Username", passwordLabel: "Password", totpLabel: "Code (if enrolled)",
  loginFailed: "Wrong username, password or code", signIn: "Sign in", signOut: "Sign out",
  offender: "Offender", protected: "Protected person",
  ago: "ago", sec: "s", min: "min", hour: "h", accuracy: "accuracy", live: "Live",
  reconnecting: "Disconnected — reconnecting…", stale: "stale position",
  tilesOffline: "Map tiles unavailable — showing a plain grid",
  ack: "Acknowledge", resolve: "Resolve", dispatch: "Dispatch police", actions: "Record action", history: "History",
  conditionCleared: "condition cleared", notices: "notices", battery: "battery", charging: "charging",
  signal: "signal", lastSeen: "last seen", never: "never reported",
  navLive: "Live map", navCases: "Cases", navReplay: "Track replay", navMeasures: "Alert measures",
  navUnknown: "Unknown devices", navAccounts: "Accounts", navCourt: "Court", navAudit: "Access log",
  mainNav: "Main menu", language: "Language / 언어",
  forbidden: "You are not permitted to see this screen (not allowed for your role).",
  notAvailable: "Not available yet on this server.",
  loadFailed: "Could not load", loading: "Loading…",
  case: "Case", cases: "Cases", devices: "Devices", orders: "Orders", zones: "Zones", timeline: "Timeline",
  validFrom: "Valid from", validTo: "Valid to", validNow: "in force", notValid: "not in force",
  noApproach: "No-approach distance", warning: "Warning distance", disclosure: "Disclosure radius",
  kind: "Kind", label: "Label", delete: "Delete", editZones: "Edit zones", addCircle: "Add circle",
  addPolygon: "Add polygon", finishPolygon: "Finish polygon", radius: "Radius (m)", reasons: "Reasons",
  saveVersion: "Save as new order version", cancel: "Cancel", save: "Save", close: "Close",
  clickCentre: "Click the circle's centre on the map", clickVertices: "Click the vertices on the map, then press ‘Finish polygon’",
  versionSaved: "New order version saved", reasonsRequired: "Give reasons of at least 10 characters",
  device: "Device", from: "From", to: "To", purpose: "Purpose", purposeText: "Purpose in a sentence (10+ characters)",
  showTrack: "Show track", play: "Play", pause: "Pause", time: "Time", source: "Source", flags: "Flags",
  noFixes: "No positions in this window", fixes: "positions",
  cause: "Cause", note: "Note", resolveTitle: "Resolve alert", actionTitle: "Record an action",
  action: "Action", record: "Record", dispatchTitle: "Dispatch police", 
  register: "Register", hardwareId: "Hardware id", protocol: "Protocol", owner: "Wearer (person id)", token: "Device token (native protocol, phone apps)",
  firstSeen: "First seen", attempts: "Attempts", registered: "Registered", noUnknown: "No unknown devices",
  petitions: "Petitions", review: "Review", decide: "Decide", decision: "Decision", conditions: "Conditions",
  versions: "Order versions", extend: "Extend", extendDays: "Days to extend", orderId: "Order id",
  auditFilter: "Filter", actor: "Actor", outcome: "Outcome", details: "Details", chainOk: "Hash chain links consistent (each record's {code} = the hash of the one before)",
  chainBroken: "Hash chain broken at record", records: "records", onlyTrackReads: "Track reads only",
  measuresWindow: "Window", alertsCount: "Alerts", perCaseDay: "Alerts per case-day", timeToAck: "Time to acknowledge",
  timeToDispatch: "Time to dispatch", median: "median", p90: "90th percentile", falseAlarm: "False-alarm share", perRule: "Per rule",
  perCause: "Per cause", count: "count", resolved: "Resolved", noCase: "no case", group: "Alerts of the same case",
  navTasks: "My tasks", myTasks: "My tasks", noTasks: "No dispatch tasks assigned", taskState: "State",
  enRoute: "En route", onScene: "On scene", taskDone: "Done", dispatchEnded: "Dispatch ended (or no position received) — the victim's position is not shown",
  victimPosition: "Victim's position", noPositionYet: "No position received yet", policeUnit: "Police unit (to the victim, optional)",
  officerOnly: "— officer only (no police) —", taskKinds: "Task", alertNo: "Alert",
  petitionState: "State", petitioner: "Petitioner", requested: "Requested", statement: "Statement", filedAt: "Filed",
  petitionHistory: "History", courtNotices: "Court notices", order: "Order", version: "version", inForce: "in force",
  durationDays: "Duration (days)", noContactPhone: "No contact by phone", grant: "Grant", modify: "Grant with changes", deny: "Deny",
  reasonsNeeded: "Modifying or denying needs reasons", savedVersion: "Saved: order version", openOrder: "Show versions",
  mute: "Silence alarm", alarmMuted: "Alarm silenced", sosFrom: "Emergency call", late: "detected from late data", possible: "possible (positions uncertain)",
  legend: "Legend", legendOffender: "Offender (red)", legendProtected: "Protected person (blue)", legendZone: "Exclusion zone", legendAlarm: "Case in alarm",
  fitCase: "Go to the case", showOnMap: "Show on map", at: "at the time", conditionHeld: "condition held", casesWord: "cases", windowDays: "days",
  caseDays: "case-days", rateTooShort: "Window too short for a rate (shown from {min} case-days)", inWindow: "in the window",
  party: "Person", bothParties: "Case (offender and protected person together)", betweenParties: "distance between them", selectCase: "Case", nobody: "unknown",
  username: "Username", role: "Role", skip: "Skip to content", partyApp: "Victims and offenders use the app at /app/.", none: "none", of: "of", refresh: "Refresh",
  zoomIn: "Zoom in", zoomOut: "Zoom out", seq: "No.", auditAction: "Action", person: "Person no.", appTitle: "Bulwark — Monitoring", shapeCircle: "circle", shapePolygon: "polygon",
};

export const RULES: Record<Lang, Record<string, string>> = {
  ko: { proximity_violation: "접근금지 위반", proximity_warning: "접근 경고", zone_violation: "보호구역 침입",
    sos: "긴급 SOS", tamper: "훼손", device_battery: "배터리", device_offline: "장치 무응답", protection_degraded: "보호 저하",
    proximity_notice: "주변 접근 알림", boundary_grazing: "경계 배회", device_no_fix: "위치 신호 없음",
    ingest_backlog: "서버 처리 지연", test: "시험 알림", device_alarm: "장치 경보", device_spoofing: "장치 위장 의심" },
  en: { proximity_violation: "No-approach violation", proximity_warning: "Approach warning", zone_violation: "Exclusion zone entered",
    sos: "SOS", tamper: "Tamper", device_battery: "Battery", device_offline: "Device silent", protection_degraded: "Protection degraded",
    proximity_notice: "In the area", boundary_grazing: "Boundary grazing", device_no_fix: "No position fix",
    ingest_backlog: "Server behind on ingest", test: "Test alert", device_alarm: "Device alarm", device_spoofing: "Possible spoofing" },
};
export const STATES: Record<Lang, Record<string, string>> = {
  ko: { raised: "발생", acknowledged: "확인됨", dispatched: "출동", resolved: "종결" },
  en: { raised: "raised", acknowledged: "acknowledged", dispatched: "dispatched", resolved: "resolved" },
};
/** Resolution causes (server: `RESOLUTION_CAUSES`). */
export const CAUSES: Record<Lang, Record<string, string>> = {
  ko: { true_violation: "실제 위반", gps_error: "GPS 오류", device_fault: "장치 고장", victim_phone_problem: "피해자 휴대폰 문제", test: "시험", other: "기타" },
  en: { true_violation: "True violation", gps_error: "GPS error", device_fault: "Device fault", victim_phone_problem: "Victim's phone problem", test: "Test", other: "Other" },
};
/** Steps recorded without a state change (server: `ALERT_ACTIONS`), plus the logged state changes. */
export const ACTIONS: Record<Lang, Record<string, string>> = {
  ko: { victim_called: "피해자 통화", offender_called: "가해자 통화", officer_dispatched_to_offender: "보호관찰관 가해자 출동",
    police_dispatched_to_victim: "경찰 피해자 출동", note: "메모", raise: "발생", acknowledge: "확인", dispatch: "출동", resolve: "종결", reopened: "다시 발생", task_state: "출동 과제 상태", escalated: "상부 보고" },
  en: { victim_called: "Victim called", offender_called: "Offender called", officer_dispatched_to_offender: "Officer dispatched to offender",
    police_dispatched_to_victim: "Police dispatched to victim", note: "Note", raise: "Raised", acknowledge: "Acknowledged", dispatch: "Dispatched", resolve: "Resolved", reopened: "Reopened", task_state: "Task state", escalated: "Escalated" },
};
/** Access-log actions (`audit::AuditAction`) and outcomes, for the auditor's table. */
export const AUDIT_ACTIONS: Record<Lang, Record<string, string>> = {
  ko: { read_case: "사건 열람", read_position: "위치 열람", read_track: "궤적 열람", read_victim_position: "피해자 위치 열람",
    read_victim_track: "피해자 궤적 열람", live_stream: "실시간 화면", read_alerts: "경보 열람", handle_alert: "경보 처리", export: "증거 내보내기",
    break_glass: "긴급 열람", change_case: "사건 변경", change_order: "명령 변경", review_petition: "신청 검토", decide_petition: "신청 결정",
    purge: "보존기간 만료 삭제", change_access: "담당·권한 변경", file_petition: "신청 접수", read_audit: "접근 기록 감사", login: "로그인",
    logout: "로그아웃", login_failed: "로그인 실패", read_orders: "명령 열람", read_petitions: "신청 열람", send_own_report: "본인 위치·신고 전송" },
  en: { read_case: "read case", read_position: "read position", read_track: "read track", read_victim_position: "read victim's position",
    read_victim_track: "read victim's track", live_stream: "live view", read_alerts: "read alerts", handle_alert: "handled alert", export: "evidence export",
    break_glass: "emergency access", change_case: "changed case", change_order: "changed order", review_petition: "reviewed petition", decide_petition: "decided petition",
    purge: "retention purge", change_access: "changed access", file_petition: "filed petition", read_audit: "audited the log", login: "signed in",
    logout: "signed out", login_failed: "sign-in failed", read_orders: "read orders", read_petitions: "read petitions", send_own_report: "own report sent" },
};
export const OUTCOMES: Record<Lang, Record<string, string>> = {
  ko: { allowed: "허용", denied: "거부" },
  en: { allowed: "allowed", denied: "denied" },
};
/** Device protocols by their proper names (the same in both languages). */
export const PROTOCOL_NAMES: Record<Lang, Record<string, string>> = {
  ko: { native: "Bulwark 기본 (HTTP)", osmand: "OsmAnd / Traccar Client", gt06: "GT06", h02: "H02", watch: "Watch (SeTracker)", teltonika: "Teltonika", owntracks: "OwnTracks", gpslogger: "GPSLogger", overland: "Overland" },
  en: { native: "Bulwark native (HTTP)", osmand: "OsmAnd / Traccar Client", gt06: "GT06", h02: "H02", watch: "Watch (SeTracker)", teltonika: "Teltonika", owntracks: "OwnTracks", gpslogger: "GPSLogger", overland: "Overland" },
};
export const RECORDABLE = ["victim_called", "offender_called", "officer_dispatched_to_offender", "police_dispatched_to_victim", "note"];
export const TASK_STATES: Record<Lang, Record<string, string>> = {
  ko: { open: "배정됨", en_route: "이동 중", on_scene: "현장 도착", done: "완료", cancelled: "취소" },
  en: { open: "assigned", en_route: "en route", on_scene: "on scene", done: "done", cancelled: "cancelled" },
};
export const PETITION_STATES: Record<Lang, Record<string, string>> = {
  ko: { filed: "접수", under_review: "심사 중", denied: "기각", in_force: "효력 중", lapsed: "실효" },
  en: { filed: "filed", under_review: "under review", denied: "denied", in_force: "in force", lapsed: "lapsed" },
};
export const PURPOSES: Record<Lang, Record<string, string>> = {
  ko: { alert_response: "경보 대응", investigation: "수사", court_request: "법원 요청", supervision: "감독", evidence_export: "증거 반출", data_subject_request: "정보주체 요청" },
  en: { alert_response: "Alert response", investigation: "Investigation", court_request: "Court request", supervision: "Supervision", evidence_export: "Evidence export", data_subject_request: "Data subject request" },
};
export const ZONE_KINDS = ["home", "work", "school", "other"];
export const ZONE_KIND_LABELS: Record<Lang, Record<string, string>> = {
  ko: { home: "집", work: "직장", school: "학교", other: "기타" },
  en: { home: "Home", work: "Work", school: "School", other: "Other" },
};

export let lang: Lang = localStorage.getItem("bw-lang") === "en" ? "en" : "ko";
export function setLang(l: Lang): void {
  lang = l;
  localStorage.setItem("bw-lang", l);
  document.documentElement.lang = l;
}
export const t = (k: Key): string => (lang === "ko" ? KO[k] : EN[k]);
/** A label from one of the tables above, falling back to the code itself. */
export const label = (table: Record<Lang, Record<string, string>>, code: string): string => table[lang][code] ?? code;

/** Position sources (server: `FixSource`). */
export const SOURCES: Record<Lang, Record<string, string>> = {
  ko: { gnss: "GPS", wifi: "와이파이", cell: "기지국", unknown: "출처 불명" },
  en: { gnss: "GPS", wifi: "Wi-Fi", cell: "cell tower", unknown: "unknown source" },
};
export const FLAGS: Record<Lang, Record<string, string>> = {
  ko: { late: "지연 수신", integrity_suspect: "무결성 의심", no_gnss_fix: "GPS 미측위" },
  en: { late: "late", integrity_suspect: "integrity suspect", no_gnss_fix: "no GNSS fix" },
};
export const SEVERITIES: Record<Lang, Record<string, string>> = {
  ko: { info: "정보", warning: "경고", critical: "긴급" },
  en: { info: "info", warning: "warning", critical: "critical" },
};
export const PERSON_ROLES: Record<Lang, Record<string, string>> = {
  ko: { offender: "가해자", protected: "피해자" },
  en: { offender: "offender", protected: "protected person" },
};
/** Account roles. */
export const ROLES: Record<Lang, Record<string, string>> = {
  ko: { monitoring_officer: "보호관찰관", police: "경찰", court_clerk: "법원 사무관", judge: "판사", auditor: "감사관", administrator: "관리자", victim: "피해자", offender: "가해자", system: "시스템" },
  en: { monitoring_officer: "monitoring officer", police: "police", court_clerk: "court clerk", judge: "judge", auditor: "auditor", administrator: "administrator", victim: "victim", offender: "offender", system: "system" },
};
export const DEVICE_KINDS: Record<Lang, Record<string, string>> = {
  ko: { ankle_monitor: "전자발찌", tracker: "위치 추적기", victim_phone: "피해자 휴대폰", smartwatch: "스마트워치" },
  en: { ankle_monitor: "ankle monitor", tracker: "tracker", victim_phone: "victim's phone", smartwatch: "smartwatch" },
};
export const ORDER_KINDS: Record<Lang, Record<string, string>> = {
  ko: { provisional_measure: "잠정조치", restraining_order: "접근금지명령", electronic_monitoring: "전자감독" },
  en: { provisional_measure: "provisional measure", restraining_order: "restraining order", electronic_monitoring: "electronic monitoring" },
};
/**
 * What an alert says, in the reader's language, from its rule and structured fields (the
 * server's `summary` is English, for logs). `{who}` the person, `{d}` metres, `{zone}`.
 */
export const SUMMARIES: Record<Lang, Record<string, string>> = {
  ko: {
    proximity_violation: "가해자가 피해자에게서 {d} m 안 (최근접)", proximity_warning: "가해자가 경고 거리 안 — {d} m (최근접)",
    proximity_notice: "가해자가 주변 지역에 있음 — {d} m", zone_violation: "가해자가 보호구역 {zone}에 들어감",
    boundary_grazing: "가해자가 보호구역 {zone} 경계를 배회", sos: "{who}의 긴급 신고 (SOS)", tamper: "{who}의 장치 훼손 감지",
    device_battery: "{who}의 장치 배터리 부족", device_offline: "{who}의 장치 무응답", device_no_fix: "{who}의 장치 위치 신호 없음",
    protection_degraded: "보호 저하 — {who}의 위치를 알 수 없음", ingest_backlog: "서버 처리 지연 — 위치가 늦게 처리됨", test: "{who}의 시험 알림",
    closing: "{c} m/s로 접근 중", contact: "약 {t}초 후 접근금지 거리 도달",
  },
  en: {
    proximity_violation: "offender within {d} m of the protected person (closest)", proximity_warning: "offender inside the warning distance — {d} m (closest)",
    proximity_notice: "offender in the area — {d} m", zone_violation: "offender entered the exclusion zone {zone}",
    boundary_grazing: "offender loitering at the edge of zone {zone}", sos: "emergency call (SOS) from {who}", tamper: "tampering detected on {who}'s device",
    device_battery: "{who}'s device battery low", device_offline: "{who}'s device silent", device_no_fix: "{who}'s device without a position fix",
    protection_degraded: "protection degraded — {who}'s position unknown", ingest_backlog: "server behind on ingest — positions processed late", test: "test alert from {who}",
    closing: "closing at {c} m/s", contact: "no-approach distance in ~{t} s",
  },
};
/** Fills `{name}` placeholders. */
export const fill = (template: string, params: Record<string, string | number>): string =>
  template.replace(/\{(\w+)\}/g, (_, k: string) => String(params[k] ?? "—"));
