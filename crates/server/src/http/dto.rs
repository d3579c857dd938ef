//! Wire shapes of the HTTP API and the live stream. Only the server knows JSON: domain types
//! are converted here, at the edge.

use crate::http::error::{ApiError, ErrorCode};
use domain::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-28T10:00:00.123Z`.
pub fn ts(t: UnixMicros) -> String {
    match jiff::Timestamp::from_microsecond(t.0) {
        Ok(x) => x.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => format!("@{}us", t.0),
    }
}

/// Parses an RFC 3339 timestamp.
pub fn parse_ts(field: &str, s: &str) -> Result<UnixMicros, ApiError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| UnixMicros(t.as_microsecond()))
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, format!("{field}: {e}")))
}

pub fn parse_enum<T: std::str::FromStr<Err = UnknownValue>>(
    field: &str,
    s: &str,
) -> Result<T, ApiError> {
    s.parse()
        .map_err(|e: UnknownValue| ApiError::new(ErrorCode::InvalidField, format!("{field}: {e}")))
}

pub fn latlon(field: &str, lat: f64, lon: f64) -> Result<LatLon, ApiError> {
    LatLon::new(lat, lon)
        .map_err(|e| ApiError::new(ErrorCode::CoordinatesOutOfRange, format!("{field}: {e}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// `offender` or `protected`.
    #[schema(example = "protected")]
    pub role: String,
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonDto {
    pub id: i64,
    pub role: String,
    pub display_name: String,
}

impl From<Person> for PersonDto {
    fn from(p: Person) -> Self {
        PersonDto {
            id: p.id.0,
            role: p.role.to_string(),
            display_name: p.display_name,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// `ankle_monitor`, `tracker`, `victim_phone` or `smartwatch`.
    #[schema(example = "ankle_monitor")]
    pub kind: String,
    /// `native`, `osmand`, `gt06`, `h02`, `watch`, `teltonika`, `owntracks`, `gpslogger`, `overland`.
    #[schema(example = "native")]
    pub protocol: String,
    /// The identifier the device sends (IMEI, OsmAnd id).
    #[schema(example = "359710049095095")]
    pub hardware_id: String,
    pub owner_id: Option<i64>,
    /// Secret the device presents (native batch API: `Authorization: Bearer`). Stored hashed.
    pub token: Option<String>,
    /// The device model, when its firmware has its own frame layouts (GT06: `LW4G-4B`,
    /// `SEEWORLD`, `R11`, `NT20`, `XT40`, `G18`, `VL103`, `QH302R`…; see docs/protocols.md).
    /// Up to 40 letters, digits, `-` or `_`.
    #[serde(default)]
    #[schema(example = "LW4G-4B")]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDto {
    pub id: i64,
    pub kind: String,
    pub protocol: String,
    pub hardware_id: String,
    pub owner_id: Option<i64>,
    /// The device model, when registered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The latest health report, if the device sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<DeviceHealthDto>,
}

/// A device's latest health report; each field only when the protocol reports it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceHealthDto {
    pub reported_at: String,
    pub battery_percent: Option<f64>,
    pub battery_volts: Option<f64>,
    pub power_volts: Option<f64>,
    pub charging: Option<bool>,
    /// In the protocol's own scale (GSM 0–31, bars, or dBm).
    pub signal: Option<f64>,
    pub satellites: Option<i64>,
    pub heart_rate_bpm: Option<f64>,
    pub body_temp_c: Option<f64>,
}

impl From<store::DeviceHealth> for DeviceHealthDto {
    fn from(h: store::DeviceHealth) -> Self {
        DeviceHealthDto {
            reported_at: ts(h.reported_at),
            battery_percent: h.battery_percent,
            battery_volts: h.battery_volts,
            power_volts: h.power_volts,
            charging: h.charging,
            signal: h.signal,
            satellites: h.satellites,
            heart_rate_bpm: h.heart_rate_bpm,
            body_temp_c: h.body_temp_c,
        }
    }
}

impl From<Device> for DeviceDto {
    fn from(d: Device) -> Self {
        DeviceDto {
            id: d.id.0,
            kind: d.kind.to_string(),
            protocol: d.protocol.to_string(),
            hardware_id: d.hardware_id,
            owner_id: d.owner.map(|o| o.0),
            model: None,
            health: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnknownDeviceDto {
    pub protocol: String,
    pub hardware_id: String,
    pub first_seen: String,
    pub last_seen: String,
    pub attempts: i64,
    pub last_remote: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    pub reference: String,
    pub offender_id: i64,
    pub protected_ids: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDto {
    pub id: i64,
    pub reference: String,
    pub offender_id: i64,
    pub protected_ids: Vec<i64>,
}

impl From<Case> for CaseDto {
    fn from(c: Case) -> Self {
        CaseDto {
            id: c.id.0,
            reference: c.reference,
            offender_id: c.offender.0,
            protected_ids: c.protected.into_iter().map(|p| p.0).collect(),
        }
    }
}

/// A zone's geometry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ShapeDto {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    /// Vertices as `[lat, lon]` pairs; the ring closes itself.
    Polygon {
        ring: Vec<[f64; 2]>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneDto {
    /// Assigned by the server; a request may carry it (an order read back and sent again) and
    /// it is ignored there.
    #[serde(default)]
    pub id: i64,
    /// `home`, `work`, `school` or `other`.
    pub kind: String,
    pub label: String,
    pub shape: ShapeDto,
    /// When the zone is in force, in local time (Asia/Seoul by default). Absent: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<ScheduleWindowDto>>,
}

/// One weekly window of a zone schedule, in local time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindowDto {
    /// Days the window starts on: `mon` … `sun`.
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    pub days: Vec<String>,
    /// `HH:MM`, local time.
    #[schema(example = "08:00")]
    pub start: String,
    /// `HH:MM`; an end not after the start runs past midnight.
    #[schema(example = "17:00")]
    pub end: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn hhmm(field: &str, s: &str) -> Result<u16, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidField,
            format!("{field}: {s:?} is not HH:MM"),
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Validates schedule windows and converts them to the engine's form.
pub fn schedule_from_dto(
    field: &str,
    windows: &[ScheduleWindowDto],
) -> Result<engine::ZoneSchedule, ApiError> {
    if windows.is_empty() || windows.len() > 50 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{field}: 1 to 50 windows (omit the schedule for an always-active zone)"),
        ));
    }
    let windows = windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut days = 0u8;
            for d in &w.days {
                let bit = DAYS.iter().position(|x| x == d).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidField,
                        format!("{field}[{i}].days: {d:?} is not one of {DAYS:?}"),
                    )
                })?;
                days |= 1 << bit;
            }
            if days == 0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!("{field}[{i}].days: empty"),
                ));
            }
            let start_min = hhmm(&format!("{field}[{i}].start"), &w.start)?;
            let end_min = hhmm(&format!("{field}[{i}].end"), &w.end)?;
            if start_min == end_min {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!("{field}[{i}]: start and end are equal"),
                ));
            }
            Ok(engine::ScheduleWindow {
                days,
                start_min,
                end_min,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(engine::ZoneSchedule { windows })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub case_id: i64,
    /// `provisional_measure`, `restraining_order` or `electronic_monitoring`.
    #[schema(example = "provisional_measure")]
    pub kind: String,
    /// RFC 3339.
    pub valid_from: String,
    pub valid_to: Option<String>,
    #[schema(example = 100.0)]
    pub no_approach_m: f64,
    #[schema(example = 500.0)]
    pub warning_m: f64,
    #[schema(example = 600.0)]
    pub disclosure_radius_m: f64,
    #[serde(default)]
    pub zones: Vec<ZoneDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    pub id: i64,
    pub case_id: i64,
    pub kind: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub no_approach_m: f64,
    pub warning_m: f64,
    pub disclosure_radius_m: f64,
    pub zones: Vec<ZoneDto>,
}

/// Each zone's schedule, in the order of the zones (`None`: always in force).
pub type ZoneScheduleDtos = Vec<Option<Vec<ScheduleWindowDto>>>;

impl NewOrder {
    /// The order, and each zone's validated schedule (same order as the zones).
    pub fn into_domain(self) -> Result<(Order, ZoneScheduleDtos), ApiError> {
        let valid_from = parse_ts("valid_from", &self.valid_from)?;
        let valid_to = self
            .valid_to
            .as_deref()
            .map(|s| parse_ts("valid_to", s))
            .transpose()?;
        self.into_domain_at(valid_from, valid_to)
    }

    /// As [`NewOrder::into_domain`], with the validity given (the court workflow sets it);
    /// `valid_from` and `valid_to` of `self` are ignored.
    pub fn into_domain_at(
        self,
        valid_from: UnixMicros,
        valid_to: Option<UnixMicros>,
    ) -> Result<(Order, ZoneScheduleDtos), ApiError> {
        let schedules = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                if let Some(w) = &z.schedule {
                    schedule_from_dto(&format!("zones[{i}].schedule"), w)?;
                }
                Ok(z.schedule.clone())
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let zones = self
            .zones
            .into_iter()
            .enumerate()
            .map(|(i, z)| {
                let f = format!("zones[{i}]");
                Ok(Zone {
                    id: ZoneId(0),
                    kind: parse_enum(&format!("{f}.kind"), &z.kind)?,
                    label: z.label,
                    shape: match z.shape {
                        ShapeDto::Circle { lat, lon, radius_m } => ZoneShape::Circle {
                            center: latlon(&format!("{f}.shape"), lat, lon)?,
                            radius_m,
                        },
                        ShapeDto::Polygon { ring } => ZoneShape::Polygon {
                            ring: ring
                                .iter()
                                .map(|[lat, lon]| latlon(&format!("{f}.shape.ring"), *lat, *lon))
                                .collect::<Result<_, _>>()?,
                        },
                    },
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let order = Order {
            id: OrderId(0),
            case_id: CaseId(self.case_id),
            kind: parse_enum("kind", &self.kind)?,
            valid_from,
            valid_to,
            no_approach_m: self.no_approach_m,
            warning_m: self.warning_m,
            disclosure_radius_m: self.disclosure_radius_m,
            zones,
        };
        order
            .validate()
            .map_err(|e| ApiError::new(ErrorCode::InvalidField, e.to_string()))?;
        Ok((order, schedules))
    }
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        OrderDto {
            id: o.id.0,
            case_id: o.case_id.0,
            kind: o.kind.to_string(),
            valid_from: ts(o.valid_from),
            valid_to: o.valid_to.map(ts),
            no_approach_m: o.no_approach_m,
            warning_m: o.warning_m,
            disclosure_radius_m: o.disclosure_radius_m,
            zones: o
                .zones
                .into_iter()
                .map(|z| ZoneDto {
                    id: z.id.0,
                    kind: z.kind.to_string(),
                    label: z.label,
                    shape: match z.shape {
                        ZoneShape::Circle { center, radius_m } => ShapeDto::Circle {
                            lat: center.lat(),
                            lon: center.lon(),
                            radius_m,
                        },
                        ZoneShape::Polygon { ring } => ShapeDto::Polygon {
                            ring: ring.iter().map(|p| [p.lat(), p.lon()]).collect(),
                        },
                    },
                    schedule: None,
                })
                .collect(),
        }
    }
}

/// A position as shown to staff: always with its time, accuracy and source.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionDto {
    pub fix_id: i64,
    pub device_id: i64,
    pub device_kind: Option<String>,
    pub person_id: Option<i64>,
    /// `offender` or `protected`, when the device has an owner.
    pub role: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub course_deg: Option<f64>,
    pub source: String,
    /// When the device took the fix.
    pub device_time: String,
    /// When the server received it.
    pub received_time: String,
    /// Quality flags: `late`, `integrity_suspect`, `no_gnss_fix`.
    pub flags: Vec<String>,
    /// Track only: the cell towers and Wi-Fi access points the device reported in the same
    /// frame, when it reported any (raw, for network-based location; not a position).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkScanDto>,
}

/// Radio surroundings a device reported: raw cell towers and Wi-Fi access points. Turning
/// them into a position needs a geolocation service (cells: hundreds of metres to
/// kilometres; Wi-Fi: tens of metres), which Bulwark does not call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetworkScanDto {
    /// The device's time of the report (the receipt time when the device sent none).
    pub scan_time: String,
    pub received_time: String,
    pub cells: Vec<CellTowerDto>,
    pub wifi: Vec<WifiAccessPointDto>,
}

/// A device token to issue (at least 16 characters); stored only as its SHA-256.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewDeviceToken {
    pub token: String,
}

/// A frame the device sent that Bulwark acknowledged but could not decode, stored raw before
/// the ack (evidence: an alarm in a layout not yet known is still an alarm).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnknownFrameDto {
    pub id: i64,
    pub device_id: i64,
    pub protocol: String,
    pub received_time: String,
    /// The frame's bytes, lower-case hex.
    pub bytes_hex: String,
    /// What the decoder said it could not decode.
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CellTowerDto {
    pub mcc: u16,
    pub mnc: u16,
    pub lac: u32,
    pub cell_id: u64,
    /// As the device reported it (dBm when negative).
    pub rssi: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WifiAccessPointDto {
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub rssi: Option<i32>,
}

impl From<store::NetworkScan> for NetworkScanDto {
    fn from(s: store::NetworkScan) -> Self {
        NetworkScanDto {
            scan_time: ts(s.scan_time),
            received_time: ts(s.received_time),
            cells: s
                .cells
                .into_iter()
                .map(|c| CellTowerDto {
                    mcc: c.mcc,
                    mnc: c.mnc,
                    lac: c.lac,
                    cell_id: c.cell_id,
                    rssi: c.rssi,
                })
                .collect(),
            wifi: s
                .wifi
                .into_iter()
                .map(|w| WifiAccessPointDto {
                    mac: w.mac,
                    rssi: w.rssi,
                })
                .collect(),
        }
    }
}

pub fn flag_names(f: FixFlags) -> Vec<String> {
    let mut v = Vec::new();
    if f.has(FixFlags::LATE) {
        v.push("late".into());
    }
    if f.has(FixFlags::INTEGRITY_SUSPECT) {
        v.push("integrity_suspect".into());
    }
    if f.has(FixFlags::NO_GNSS_FIX) {
        v.push("no_gnss_fix".into());
    }
    v
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertDto {
    pub id: i64,
    pub case_id: Option<i64>,
    pub order_id: Option<i64>,
    pub rule: String,
    pub severity: String,
    /// `raised`, `acknowledged`, `dispatched` or `resolved`.
    pub state: String,
    /// Whether the condition that raised it still holds.
    pub condition_active: bool,
    pub protected_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub raised_at: String,
    pub updated_at: String,
    pub cleared_at: Option<String>,
    pub summary: String,
    pub min_distance_m: Option<f64>,
    /// Ids of the fixes that raised or updated it.
    pub evidence: Vec<i64>,
    /// For device alerts (SOS, tamper…): the device.
    pub device_id: Option<i64>,
    /// Detected from late (buffered) data: a late-detected violation, not a live one.
    pub late: bool,
    /// `confirmed`, or `possible` when positions were too uncertain to confirm it.
    pub certainty: String,
    /// Rate at which the distance shrinks (m/s; negative = moving apart).
    pub closing_speed_mps: Option<f64>,
    /// Seconds to the no-approach distance at the current closing speed.
    pub time_to_contact_s: Option<f64>,
    /// The offender is moving toward the protected person.
    pub heading_toward: Option<bool>,
    /// 0, or 1 once it escalated for lack of acknowledgement.
    pub escalation_level: i64,
    /// The summary and distance it was raised with (`summary` and `min_distance_m` are the
    /// latest). `summary` texts are English, for logs and API users; the console renders its
    /// own words from `rule` and the structured fields, in the reader's language.
    pub raise_summary: Option<String>,
    pub raise_distance_m: Option<f64>,
}

impl From<store::AlertRecord> for AlertDto {
    fn from(r: store::AlertRecord) -> Self {
        let a = r.alert;
        AlertDto {
            id: a.id.0,
            case_id: a.case_id.map(|c| c.0),
            order_id: a.order_id.map(|o| o.0),
            rule: a.rule.to_string(),
            severity: a.severity.to_string(),
            state: a.state.to_string(),
            condition_active: r.condition_active,
            protected_id: r.protected.map(|p| p.0),
            zone_id: r.zone.map(|z| z.0),
            raised_at: ts(a.raised_at),
            updated_at: ts(a.updated_at),
            cleared_at: r.cleared_at.map(ts),
            summary: a.summary,
            min_distance_m: a.min_distance_m,
            evidence: a.evidence.into_iter().map(|f| f.0).collect(),
            device_id: r.device.map(|d| d.0),
            late: r.details.late,
            certainty: if r.details.possible {
                "possible".into()
            } else {
                "confirmed".into()
            },
            closing_speed_mps: r.details.closing_speed_mps,
            time_to_contact_s: r.details.time_to_contact_s,
            heading_toward: r.details.heading_toward,
            escalation_level: r.escalation_level,
            raise_summary: r.raise_summary,
            raise_distance_m: r.raise_distance_m,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertStateChange {
    /// `acknowledged`, `dispatched` or `resolved`.
    pub state: String,
    /// With `dispatched`: the police account the alert is dispatched to. It may see the
    /// case until the alert is resolved plus a grace period.
    pub police_account_id: Option<i64>,
    /// Required with `resolved`: `true_violation`, `gps_error`, `device_fault`,
    /// `victim_phone_problem`, `test` or `other`.
    pub cause: Option<String>,
    /// A free-text note kept in the alert's action log.
    pub note: Option<String>,
}

/// Why an alert was resolved.
pub const RESOLUTION_CAUSES: &[&str] = &[
    "true_violation",
    "gps_error",
    "device_fault",
    "victim_phone_problem",
    "test",
    "other",
];

/// The causes that make a resolved alert a false alarm.
pub const FALSE_ALARM_CAUSES: &[&str] = &["gps_error", "device_fault", "victim_phone_problem"];

/// Actions that may be recorded on an alert without changing its state.
pub const ALERT_ACTIONS: &[&str] = &[
    "victim_called",
    "offender_called",
    "officer_dispatched_to_offender",
    "police_dispatched_to_victim",
    "note",
];

/// Actions that count as a dispatch for the time-to-dispatch measure.
pub const DISPATCH_ACTIONS: &[&str] = &[
    "dispatch",
    "officer_dispatched_to_offender",
    "police_dispatched_to_victim",
];

/// A step taken on an alert that does not change its state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertActionRequest {
    /// `victim_called`, `offender_called`, `officer_dispatched_to_offender`,
    /// `police_dispatched_to_victim` or `note`.
    pub action: String,
    pub note: Option<String>,
}

/// One entry of an alert's action log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertActionDto {
    pub id: i64,
    pub alert_id: i64,
    pub at: String,
    pub actor_account_id: i64,
    pub actor_role: String,
    /// `acknowledge`, `dispatch`, `resolve`, or one of the recorded actions.
    pub action: String,
    /// With `resolve`: why the alert was resolved.
    pub cause: Option<String>,
    pub note: Option<String>,
    /// The alert as it was at this step (summary, closest distance, condition held).
    pub summary: Option<String>,
    pub min_distance_m: Option<f64>,
    pub condition_active: Option<bool>,
}

impl From<store::AlertAction> for AlertActionDto {
    fn from(a: store::AlertAction) -> Self {
        AlertActionDto {
            id: a.id,
            alert_id: a.alert_id.0,
            at: ts(a.at),
            actor_account_id: a.actor_account_id,
            actor_role: a.actor_role,
            action: a.action,
            cause: a.cause,
            note: a.note,
            summary: a.summary,
            min_distance_m: a.min_distance_m,
            condition_active: a.condition_active,
        }
    }
}

/// How alerts were handled in a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertMeasures {
    pub from: String,
    pub to: String,
    /// Alerts raised in the window.
    pub alerts: usize,
    /// Alerts raised in the window, per rule.
    pub per_rule: std::collections::BTreeMap<String, usize>,
    /// Days the visible cases were open within the window, summed.
    pub case_days: f64,
    /// Alerts per case-day (`alerts / case_days`); `null` with no case-days. Over fewer than
    /// `rate_min_case_days` the rate says little (a short window makes a few alerts look
    /// like hundreds a day): the console then shows the counts with their window only.
    pub alerts_per_case_day: Option<f64>,
    /// The window's length in days.
    pub window_days: f64,
    /// Cases in the caller's scope that were open during the window.
    pub cases: usize,
    /// Case-days below which a per-case-day rate is not shown as a figure.
    pub rate_min_case_days: f64,
    /// From raise to the first acknowledgement, in seconds.
    pub time_to_ack_s: Percentiles,
    /// From raise to the first dispatch (state or recorded action), in seconds.
    pub time_to_dispatch_s: Percentiles,
    /// Alerts resolved with a cause.
    pub resolved: usize,
    /// Resolved alerts per cause.
    pub per_cause: std::collections::BTreeMap<String, usize>,
    /// Share of resolved alerts whose cause was `gps_error`, `device_fault` or
    /// `victim_phone_problem`; `null` with nothing resolved.
    pub false_alarm_share: Option<f64>,
}

/// Median and 90th percentile of a set of durations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Percentiles {
    pub count: usize,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

impl Percentiles {
    /// Nearest-rank percentiles.
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            Some(v[i])
        };
        Percentiles {
            count: v.len(),
            median: rank(0.5),
            p90: rank(0.9),
        }
    }
}

/// One fix in a native batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchFix {
    /// The device's own sequence number; resends with the same number are stored once.
    pub seq: Option<i64>,
    /// RFC 3339 time the fix was taken.
    #[schema(example = "2026-11-28T10:00:00Z")]
    pub time: String,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub course_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    /// `gnss` (default), `wifi`, `cell` or `unknown`.
    pub source: Option<String>,
}

/// A non-position report in a native batch (SOS, tamper, battery…).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchEvent {
    /// `sos`, `tamper`, `removal`, `low_battery`, `charging` or `power_cut`.
    #[schema(example = "sos")]
    pub kind: String,
    /// RFC 3339 time of the event on the device.
    pub time: String,
    /// Where the device was, if known. An SOS without a position is still accepted.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    #[serde(default)]
    pub fixes: Vec<BatchFix>,
    #[serde(default)]
    pub events: Vec<BatchEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Newly stored fixes.
    pub stored: usize,
    /// Fixes already stored by an earlier send (acknowledged, not stored again).
    pub duplicates: usize,
    /// The stored id of each fix, in request order.
    pub fix_ids: Vec<i64>,
    /// Events newly stored (resent events are acknowledged, not stored twice).
    pub events_stored: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    pub version: &'static str,
    /// The figures below only for the metrics scraper and administrators (`/healthz` says
    /// why); absent for anyone else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
    /// Write jobs waiting for the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_queue: Option<usize>,
    /// Seconds the engine is behind the newest committed fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_lag_s: Option<f64>,
    /// The access log as verified at start-up: `ok` or `broken` (then `status` is
    /// `degraded`; monitoring goes on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_chain: Option<&'static str>,
    /// `ok`, or `write_failing` while the store cannot write (disk full, I/O error): then
    /// nothing is acknowledged to devices, `status` is `degraded`, and devices keep their
    /// fixes until it clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
    /// This node's view of its cluster (cluster mode only, same callers as the figures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
}

/// A cluster node's view (`/healthz`, docs/cluster.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterHealth {
    pub node_id: String,
    /// `leader` (holds partition 0: runs the once-per-cluster timers) or `member`.
    pub role: &'static str,
    /// The partitions whose engine runs here.
    pub partitions_owned: Vec<u16>,
    /// Stream messages of the owned partitions not yet read by this node.
    pub lag: u64,
    /// The live nodes' names, this one included.
    pub nodes: Vec<String>,
    /// Whether the last lease tick reached NATS.
    pub connected: bool,
    /// Whether committed events wait to be republished from the store (NATS was down).
    pub publish_behind: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Snapshot {
    pub server_time: String,
    pub positions: Vec<PositionDto>,
    pub alerts: Vec<AlertDto>,
    pub orders: Vec<OrderDto>,
    pub cases: Vec<CaseDto>,
}

/// A position from the protected person's browser (Geolocation API), sent by the victim app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnFix {
    pub lat: f64,
    pub lon: f64,
    /// The browser's `coords.accuracy`, metres (95 % radius).
    pub accuracy_m: f64,
    /// When the browser took the fix (RFC 3339).
    pub time: String,
    pub speed_mps: Option<f64>,
    pub course_deg: Option<f64>,
    /// `gnss`, `wifi`, `cell` or `unknown` (default: a browser does not say).
    pub source: Option<String>,
}

/// The stored fix: its id and when the server received it ("last sent" in the app).
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnFixStored {
    pub fix_id: i64,
    pub device_id: i64,
    /// The same fix was sent before (same device time): stored once, this is its id.
    pub duplicate: bool,
    pub device_time: String,
    pub received_time: String,
}

/// A silent SOS from the victim app, optionally with her current position.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnSos {
    /// When she pressed (RFC 3339); the receipt time when absent or implausible.
    pub time: Option<String>,
    /// Her position at that moment, when the browser has one.
    pub position: Option<OwnFix>,
}

/// The SOS is durable (and on its way to the engine) when this is answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnSosStored {
    pub device_id: i64,
    pub received_time: String,
    /// The id of the position stored with it, if she sent one.
    pub fix_id: Option<i64>,
    /// Why the position sent with it was left out (the SOS itself is stored).
    pub position_ignored: Option<String>,
}

/// One access-log record about the caller's case, as the person it concerns sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessLogEntry {
    pub time: String,
    /// The role the reader acted in (`monitoring_officer`, `police`, …).
    pub actor_role: String,
    /// The staff account's username; `None` for the system and for the other party.
    pub actor_name: Option<String>,
    /// `read_position`, `read_track`, `read_victim_position`, `read_case`, …
    pub action: String,
    pub outcome: String,
    pub purpose_code: Option<String>,
    pub purpose_text: Option<String>,
}

/// A notice of the court workflow to one party (`GET /api/v1/notices`, `/me/notices`, the
/// live stream's `notice` event).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NoticeDto {
    pub id: i64,
    pub case_id: i64,
    pub order_id: Option<i64>,
    pub petition_id: Option<i64>,
    /// `court`, `officer`, `victim` or `offender`.
    pub recipient: String,
    /// `petition_filed`, `under_review`, `granted`, `modified`, `denied`, `extended`,
    /// `amended`, `expires_soon`, `lapsed`.
    pub kind: String,
    pub valid_to: Option<String>,
    pub reasons: Option<String>,
    pub created_at: String,
}
