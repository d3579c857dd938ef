// The victim app's words, Korean first. Keys are shared by both languages (the English table
// is typed against the Korean one, so a missing translation fails the typecheck).

const ko = {
  appTitle: "안전", discreetTitle: "날씨", discreet: "가리기", discreetOn: "가리기 해제", exit: "빠른 나가기",
  signInTitle: "로그인", username: "아이디", password: "비밀번호", signIn: "로그인",
  loginFailed: "아이디 또는 비밀번호가 틀렸습니다", notVictim: "이 앱은 보호 대상자 전용입니다",
  status_safe: "안전 — 가해자가 주변에 없습니다", status_in_area: "주의 — 가해자가 주변 지역에 있습니다",
  status_approaching: "경고 — 가해자가 접근 중입니다", status_violation: "위험 — 접근금지 위반",
  status_degraded: "보호 기능 저하 — 위치 정보가 부족합니다", status_unknown: "확인 중…",
  reason_own_position_stale: "내 휴대폰 위치가 오래되었습니다", reason_no_own_device: "등록된 내 휴대폰이 없습니다",
  reason_offender_position_unknown: "가해자 위치를 알 수 없습니다", reason_device_offline: "가해자 장치 무응답",
  reason_tamper: "장치 훼손 감지", reason_device_no_fix: "가해자 장치 위치 신호 없음",
  reason_protection_degraded: "보호 저하", reason_device_battery: "장치 전원 문제", reason_no_order_in_force: "유효한 명령 없음",
  reason_proximity_violation: "접근금지 거리 안", reason_zone_violation: "보호구역 안", reason_proximity_warning: "경고 거리 안",
  reason_boundary_grazing: "경계 주변 배회", reason_in_area: "공개 반경 안",
  offNotNearby: "가해자: 주변에 없음", offUnknown: "가해자 위치: 알 수 없음",
  distance: "거리", direction: "방향", speed: "속도", age: "위치 시각", accuracy: "정확도", staleWarn: "오래된 위치입니다 — 현재 위치가 아닐 수 있습니다",
  ago: "전", sec: "초", min: "분", hour: "시간", kmh: "km/h", stopped: "정지",
  offline: "서버에 연결할 수 없습니다 — 보호 기능이 저하되었을 수 있습니다", staleConn: "마지막 갱신",
  shareTitle: "내 위치 보내기", shareOff: "위치 보내기 켜기", shareOn: "위치 보내기 끄기",
  permission: "위치 권한", perm_granted: "허용됨", perm_denied: "거부됨", perm_prompt: "확인 필요", perm_unsupported: "지원 안 됨",
  sharing: "상태", sharingOn: "보내는 중", sharingOff: "꺼짐", lastSent: "마지막 전송", lastFix: "내 위치 정확도", shareError: "오류",
  geoDenied: "위치 권한이 거부되었습니다. 브라우저 설정에서 허용해 주세요.", geoUnavailable: "위치를 확인할 수 없습니다",
  geoTimeout: "위치 확인 시간 초과", noDevice: "등록된 휴대폰이 없어 위치를 보낼 수 없습니다. 담당관에게 문의하세요.",
  serverPosition: "서버가 받은 내 위치",
  sosHelp: "1.5초 동안 누르고 있으면 소리 없이 긴급 신고가 전송됩니다", sosHold: "계속 누르세요…",
  sosSending: "긴급 신고 전송 중…", sosSent: "긴급 신고가 전송되었습니다", sosRetry: "전송 실패 — 다시 시도 중…",
  sosAt: "전송 시각", sos_raised: "관제센터에 접수됨", sos_acknowledged: "관제센터가 확인했습니다", sos_dispatched: "경찰 출동",
  alertsTitle: "알림", silentMode: "무음 모드 (소리·진동 없음)", notAvailable: "아직 사용할 수 없습니다",
  savedLocally: "이 휴대폰에만 저장되었습니다", noAlerts: "알림 없음",
  class_danger: "위험", class_technical: "기술", class_test: "시험",
  orderTitle: "내 보호 명령", noOrders: "등록된 명령이 없습니다", validFrom: "시작", validTo: "만료", daysLeft: "남은 기간",
  days: "일", openEnded: "기한 없음", noApproach: "접근 금지 거리", warning: "경고 거리", disclosure: "가해자 위치 공개 반경",
  zones: "보호구역", inForce: "효력 있음", notInForce: "효력 없음",
  kind_provisional_measure: "잠정조치", kind_restraining_order: "접근금지명령", kind_electronic_monitoring: "전자감독",
  logTitle: "내 정보를 본 사람", logExplain: "관제·경찰·법원 직원이 내 사건 정보를 열람한 기록입니다.", noLog: "기록 없음",
  petitionTitle: "보호 신청", pKind: "신청 종류", pDistance: "접근 금지 거리 (m)", pDays: "기간 (일)",
  pPhone: "전화·문자 연락 금지", pEm: "전자발찌 부착", pStatement: "내용", pSubmit: "신청하기",
  pSent: "신청이 접수되었습니다", myPetitions: "내 신청", noPetitions: "신청 내역 없음",
  tabHome: "홈", tabAlerts: "알림", tabOrder: "내 명령", tabLog: "열람 기록", tabPetition: "신청",
  mapLabel: "지도", tilesOffline: "지도를 불러올 수 없습니다 — 격자 배경으로 표시합니다", me: "나", offender: "가해자",
};

type Words = { [K in keyof typeof ko]: string };

const en: Words = {
  appTitle: "Safety", discreetTitle: "Weather", discreet: "Hide", discreetOn: "Unhide", exit: "Quick exit",
  signInTitle: "Sign in", username: "Username", password: "Password", signIn: "Sign in",
  loginFailed: "Wrong username or password", notVictim: "This app is for protected persons only",
  status_safe: "Safe — the offender is not nearby", status_in_area: "Caution — the offender is in your area",
  status_approaching: "Warning — the offender is approaching", status_violation: "Danger — no-approach order violated",
  status_degraded: "Protection degraded — positions are missing", status_unknown: "Checking…",
  reason_own_position_stale: "your phone's position is old", reason_no_own_device: "no phone registered for you",
  reason_offender_position_unknown: "the offender's position is unknown", reason_device_offline: "the offender's device is silent",
  reason_tamper: "device tampering", reason_device_no_fix: "the offender's device has no position fix",
  reason_protection_degraded: "protection degraded", reason_device_battery: "device power problem", reason_no_order_in_force: "no order in force",
  reason_proximity_violation: "inside the no-approach distance", reason_zone_violation: "inside a protected zone", reason_proximity_warning: "inside the warning distance",
  reason_boundary_grazing: "loitering at the boundary", reason_in_area: "inside your disclosure radius",
  offNotNearby: "Offender: not nearby", offUnknown: "Offender's position: unknown",
  distance: "Distance", direction: "Direction", speed: "Speed", age: "Position time", accuracy: "Accuracy", staleWarn: "Old position — he may no longer be there",
  ago: "ago", sec: "s", min: "min", hour: "h", kmh: "km/h", stopped: "stopped",
  offline: "Cannot reach the server — protection may be degraded", staleConn: "Last update",
  shareTitle: "Share my location", shareOff: "Start sharing my location", shareOn: "Stop sharing my location",
  permission: "Location permission", perm_granted: "granted", perm_denied: "denied", perm_prompt: "not asked yet", perm_unsupported: "unsupported",
  sharing: "Status", sharingOn: "sharing", sharingOff: "off", lastSent: "Last sent", lastFix: "My accuracy", shareError: "Error",
  geoDenied: "Location permission denied. Allow it in the browser settings.", geoUnavailable: "Position unavailable",
  geoTimeout: "Position timed out", noDevice: "No phone is registered for you, so your position cannot be sent. Ask your officer.",
  serverPosition: "My position as the server has it",
  sosHelp: "Hold for 1.5 seconds to send a silent emergency alert", sosHold: "Keep holding…",
  sosSending: "Sending emergency alert…", sosSent: "Emergency alert sent", sosRetry: "Sending failed — retrying…",
  sosAt: "Sent at", sos_raised: "received by the control centre", sos_acknowledged: "the control centre has seen it", sos_dispatched: "police dispatched",
  alertsTitle: "Alerts", silentMode: "Silent mode (no sound or vibration)", notAvailable: "not available yet",
  savedLocally: "saved on this phone only", noAlerts: "No alerts",
  class_danger: "danger", class_technical: "technical", class_test: "test",
  orderTitle: "My order", noOrders: "No order registered", validFrom: "From", validTo: "Expires", daysLeft: "Days left",
  days: "days", openEnded: "no end date", noApproach: "No-approach distance", warning: "Warning distance", disclosure: "Offender shown within",
  zones: "Protected zones", inForce: "in force", notInForce: "not in force",
  kind_provisional_measure: "Provisional measure", kind_restraining_order: "Restraining order", kind_electronic_monitoring: "Electronic monitoring",
  logTitle: "Who viewed my data", logExplain: "Records of monitoring, police and court staff opening your case's data.", noLog: "No records",
  petitionTitle: "Petition", pKind: "Kind", pDistance: "No-approach distance (m)", pDays: "Duration (days)",
  pPhone: "No contact by phone or text", pEm: "Electronic monitoring (ankle monitor)", pStatement: "Statement", pSubmit: "Submit",
  pSent: "Your petition was filed", myPetitions: "My petitions", noPetitions: "No petitions",
  tabHome: "Home", tabAlerts: "Alerts", tabOrder: "My order", tabLog: "Access log", tabPetition: "Petition",
  mapLabel: "Map", tilesOffline: "Map tiles unavailable — showing a plain grid", me: "Me", offender: "Offender",
};

export type Key = keyof typeof ko;
export type Lang = "ko" | "en";
export const WORDS: Record<Lang, Words> = { ko, en };

export const ROLES: Record<Lang, Record<string, string>> = {
  ko: { monitoring_officer: "보호관찰관", police: "경찰", court_clerk: "법원 사무관", judge: "판사", auditor: "감사관", administrator: "관리자", system: "시스템" },
  en: { monitoring_officer: "Monitoring officer", police: "Police", court_clerk: "Court clerk", judge: "Judge", auditor: "Auditor", administrator: "Administrator", system: "System" },
};

export const ACTIONS: Record<Lang, Record<string, string>> = {
  ko: { read_case: "사건 열람", read_position: "가해자 위치 열람", read_track: "가해자 이동 경로 열람", read_victim_position: "내 위치 열람",
    read_victim_track: "내 이동 경로 열람", live_stream: "실시간 화면", read_alerts: "경보 열람", handle_alert: "경보 처리", export: "증거 내보내기",
    break_glass: "긴급 열람", change_case: "사건 변경", change_order: "명령 변경", review_petition: "신청 검토", decide_petition: "신청 결정", purge: "보존기간 만료 삭제" },
  en: { read_case: "opened the case", read_position: "offender's position", read_track: "offender's movements", read_victim_position: "your position",
    read_victim_track: "your movements", live_stream: "live view", read_alerts: "alerts", handle_alert: "handled an alert", export: "evidence export",
    break_glass: "emergency access", change_case: "changed the case", change_order: "changed the order", review_petition: "reviewed a petition", decide_petition: "decided a petition", purge: "retention purge" },
};
