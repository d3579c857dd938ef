//! People, devices, cases, orders, zones, fixes and alerts.

use crate::{AlertId, CaseId, DeviceId, FixId, LatLon, OrderId, PersonId, UnixMicros, ZoneId};
use thiserror::Error;

/// Declares a closed set of named values with a stable lowercase string form, used by the
/// store (column values), the server (API values) and the audit log (hashed names). The
/// string form is part of the data format and must never change for an existing variant.
/// Gives `ALL`, `as_str`, `parse` (`None` for an unknown name), `FromStr` (an
/// [`UnknownValue`] naming the allowed values) and `Display`.
#[macro_export]
macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, for tests that must cover all of them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable name, as stored, sent and written to the audit log.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownValue;
            fn from_str(s: &str) -> Result<Self, $crate::UnknownValue> {
                $name::parse(s).ok_or_else(|| $crate::UnknownValue {
                    what: stringify!($name),
                    value: s.chars().take(64).collect(),
                    allowed: &[$($s),+],
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A string that is not one of an enum's values.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("unknown {what} {value:?}; expected one of {allowed:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

str_enum!(
    /// What a person is to a case.
    PersonRole {
        /// The person an order restrains (the suspect or convicted offender).
        Offender = "offender",
        /// A victim or other person the order protects.
        Protected = "protected",
    }
);

str_enum!(
    /// The kind of hardware a device is; it decides which rules its fixes feed.
    DeviceKind {
        AnkleMonitor = "ankle_monitor",
        Tracker = "tracker",
        VictimPhone = "victim_phone",
        Smartwatch = "smartwatch",
    }
);

str_enum!(
    /// The wire protocol a device speaks.
    Protocol {
        /// Bulwark's own JSON batch API.
        Native = "native",
        /// OsmAnd / Traccar Client HTTP.
        Osmand = "osmand",
        Gt06 = "gt06",
        H02 = "h02",
        Watch = "watch",
        Teltonika = "teltonika",
        OwnTracks = "owntracks",
        GpsLogger = "gpslogger",
        Overland = "overland",
    }
);

str_enum!(
    /// Kinds of court order.
    OrderKind {
        /// 잠정조치: at most 9 months (3 months, extended up to twice).
        ProvisionalMeasure = "provisional_measure",
        RestrainingOrder = "restraining_order",
        ElectronicMonitoring = "electronic_monitoring",
    }
);

str_enum!(
    /// What a zone protects.
    ZoneKind {
        Home = "home",
        Work = "work",
        School = "school",
        Other = "other",
    }
);

str_enum!(
    /// How a position was obtained; it bounds how much a fix can be trusted.
    FixSource {
        Gnss = "gnss",
        Wifi = "wifi",
        Cell = "cell",
        Unknown = "unknown",
    }
);

str_enum!(
    /// How urgent an alert is.
    Severity {
        Info = "info",
        Warning = "warning",
        Critical = "critical",
    }
);

str_enum!(
    /// Where an alert is in its lifecycle.
    AlertState {
        Raised = "raised",
        Acknowledged = "acknowledged",
        Dispatched = "dispatched",
        Resolved = "resolved",
    }
);

str_enum!(
    /// The rule that raised an alert.
    AlertRule {
        /// The offender is within the order's no-approach distance of a protected person.
        ProximityViolation = "proximity_violation",
        /// The offender is within the order's warning distance of a protected person.
        ProximityWarning = "proximity_warning",
        /// The offender is inside one of the order's static exclusion zones.
        ZoneViolation = "zone_violation",
        /// A protected person pressed SOS.
        Sos = "sos",
        /// Strap cut, case opened or body contact lost.
        Tamper = "tamper",
        /// Low battery or power cut on a monitored device.
        DeviceBattery = "device_battery",
        /// A monitored device stopped reporting.
        DeviceOffline = "device_offline",
        /// Protection is degraded (e.g. the protected person's phone is stale).
        ProtectionDegraded = "protection_degraded",
        /// The offender is within the order's notice distance (e.g. 2 km) of a protected person.
        ProximityNotice = "proximity_notice",
        /// Repeated approaches to just outside the no-approach distance, or loitering there:
        /// a harassment pattern rather than a breach.
        BoundaryGrazing = "boundary_grazing",
        /// A monitored device reports, but without a GNSS fix, for too long.
        DeviceNoFix = "device_no_fix",
        /// The server itself is behind on ingest (store queue or engine lag over the
        /// threshold): every alert may come late. A system alert, in no case.
        IngestBacklog = "ingest_backlog",
        /// A test a protected person started to check that alerts reach her phone.
        Test = "test",
        /// A device alarm with no rule of its own (see `DeviceEventKind::DeviceAlarm`).
        DeviceAlarm = "device_alarm",
        /// Signs that a device is impersonated: a second live connection claiming the same
        /// identity, or an impossible jump between fixes.
        DeviceSpoofing = "device_spoofing",
    }
);

str_enum!(
    /// Something a device reported that is not a position.
    DeviceEventKind {
        /// The panic button (victim phone or smartwatch).
        Sos = "sos",
        /// Strap cut, case opened or body contact lost.
        Tamper = "tamper",
        /// The device says it was taken off.
        Removal = "removal",
        LowBattery = "low_battery",
        /// On the charger: clears a low-battery episode.
        Charging = "charging",
        /// External power cut (vehicle trackers, docked units).
        PowerCut = "power_cut",
        /// Any other alarm the device raised (accident, tow, door, lock, temperature,
        /// geofence, jamming, power off, fall...), with the protocol's code in
        /// [`DeviceEvent::code`]. Every alarm reaches staff; none is dropped for lack of a kind.
        DeviceAlarm = "device_alarm",
        /// Signs that the device is impersonated, found by the server (a second live
        /// connection with the same identity, an impossible jump), with the sign in
        /// [`DeviceEvent::code`].
        Spoofing = "spoofing",
    }
);

/// A device event as stored: never modified, like a fix.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    /// Assigned by the store on commit.
    pub id: Option<i64>,
    pub device_id: DeviceId,
    pub kind: DeviceEventKind,
    pub device_time: UnixMicros,
    pub received_time: UnixMicros,
    /// Where the device was, if the report said (an SOS without a fix still counts).
    pub position: Option<LatLon>,
    /// The protocol's own name or code of the alarm (e.g. `gt06:accident`,
    /// `teltonika:tow`), kept for `DeviceAlarm`, the kind of every alarm without a kind of
    /// its own, so staff see what the device said.
    pub code: Option<String>,
}

/// A person known to the system.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: PersonId,
    pub role: PersonRole,
    /// A display name for staff; never shown to the other party.
    pub display_name: String,
}

/// A registered device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub kind: DeviceKind,
    pub protocol: Protocol,
    /// The identifier the device sends on the wire (IMEI, Teltonika IMEI, OsmAnd `id`).
    pub hardware_id: String,
    /// Who wears or carries it; a device without an owner feeds no rule.
    pub owner: Option<PersonId>,
}

/// A case: one offender and the people protected from him.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: CaseId,
    /// Court or agency reference shown to staff.
    pub reference: String,
    pub offender: PersonId,
    pub protected: Vec<PersonId>,
}

/// The geometry of a zone.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneShape {
    Circle {
        center: LatLon,
        radius_m: f64,
    },
    /// A simple polygon; the ring is implicitly closed.
    Polygon {
        ring: Vec<LatLon>,
    },
}

/// A static exclusion zone of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub id: ZoneId,
    pub kind: ZoneKind,
    /// Staff-facing label. Never sent to the offender.
    pub label: String,
    pub shape: ZoneShape,
}

/// Errors in an order's or zone's own values.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum OrderError {
    #[error("no_approach_m must be a positive number of metres up to 50000, got {0}")]
    NoApproach(f64),
    #[error("warning_m ({warning}) must be at least no_approach_m ({no_approach})")]
    WarningBelowViolation { warning: f64, no_approach: f64 },
    #[error("valid_to must be after valid_from")]
    EmptyValidity,
    #[error("circle radius must be in (0, 50000] m, got {0}")]
    Radius(f64),
    #[error("a polygon needs at least 3 distinct vertices, got {0}")]
    PolygonTooSmall(usize),
    #[error("disclosure_radius_m must be in [0, 50000], got {0}")]
    Disclosure(f64),
}

/// One version of a court order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: OrderId,
    pub case_id: CaseId,
    pub kind: OrderKind,
    pub valid_from: UnixMicros,
    /// `None` until the court sets an end (provisional measures always have one).
    pub valid_to: Option<UnixMicros>,
    /// The no-approach distance (Korea: usually 100 m).
    pub no_approach_m: f64,
    /// The distance at which the protected person and the centre are warned (e.g. 500 m).
    pub warning_m: f64,
    /// Inside this radius the protected person sees the offender's position; outside it she
    /// sees only "not nearby".
    pub disclosure_radius_m: f64,
    pub zones: Vec<Zone>,
}

impl Order {
    /// Checks the order's own values.
    pub fn validate(&self) -> Result<(), OrderError> {
        if !(self.no_approach_m.is_finite()
            && self.no_approach_m > 0.0
            && self.no_approach_m <= 50_000.0)
        {
            return Err(OrderError::NoApproach(self.no_approach_m));
        }
        if !(self.warning_m.is_finite() && self.warning_m >= self.no_approach_m) {
            return Err(OrderError::WarningBelowViolation {
                warning: self.warning_m,
                no_approach: self.no_approach_m,
            });
        }
        if !(self.disclosure_radius_m.is_finite()
            && (0.0..=50_000.0).contains(&self.disclosure_radius_m))
        {
            return Err(OrderError::Disclosure(self.disclosure_radius_m));
        }
        if let Some(to) = self.valid_to
            && to <= self.valid_from
        {
            return Err(OrderError::EmptyValidity);
        }
        for z in &self.zones {
            z.shape.validate()?;
        }
        Ok(())
    }

    /// Whether the order is in force at `now`.
    pub fn in_force(&self, now: UnixMicros) -> bool {
        now >= self.valid_from && self.valid_to.is_none_or(|to| now < to)
    }
}

impl ZoneShape {
    pub fn validate(&self) -> Result<(), OrderError> {
        match self {
            ZoneShape::Circle { radius_m, .. } => {
                if radius_m.is_finite() && *radius_m > 0.0 && *radius_m <= 50_000.0 {
                    Ok(())
                } else {
                    Err(OrderError::Radius(*radius_m))
                }
            }
            ZoneShape::Polygon { ring } => {
                let mut distinct: Vec<&LatLon> = Vec::new();
                for p in ring {
                    if !distinct.contains(&p) {
                        distinct.push(p);
                    }
                }
                if distinct.len() < 3 {
                    Err(OrderError::PolygonTooSmall(distinct.len()))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Quality flags on a fix. Raw fixes are never changed; these say how they arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FixFlags(pub u32);

impl FixFlags {
    /// Uploaded from the device's buffer after a dropout (device time well behind receipt).
    pub const LATE: u32 = 1;
    /// The frame's length or checksum did not match, or the fix is an impossible jump from
    /// the device's previous sound fix, or it came while two connections claimed the device:
    /// the position may be corrupt or forged.
    pub const INTEGRITY_SUSPECT: u32 = 1 << 1;
    /// The device said its GNSS fix was not valid (last known position repeated).
    pub const NO_GNSS_FIX: u32 = 1 << 2;

    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    pub fn with(self, flag: u32) -> Self {
        FixFlags(self.0 | flag)
    }
}

/// Whether going from `a` to `b` needs a speed over `max_speed_mps`, after allowing for both
/// fixes' accuracy (a fix without one is taken at its word). Time order does not matter.
///
/// # Units
/// Metres, seconds, metres per second.
pub fn impossible_jump(a: &Fix, b: &Fix, max_speed_mps: f64) -> bool {
    let d = a.position.distance_m(&b.position);
    let slack = a.accuracy_m.unwrap_or(0.0) + b.accuracy_m.unwrap_or(0.0);
    // Whole-second protocols (GT06, H02, Watch) report device time to the second, so two
    // fixes of one device second may be up to a second apart: never less than that.
    let dt_s = ((b.device_time.0 - a.device_time.0).unsigned_abs() as f64 / 1e6).max(1.0);
    d - slack > max_speed_mps * dt_s
}

/// One position report from one device, as received. Never modified after it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// Assigned by the store on commit; `None` before.
    pub id: Option<FixId>,
    pub device_id: DeviceId,
    /// When the device says it took the fix.
    pub device_time: UnixMicros,
    /// When the server received it.
    pub received_time: UnixMicros,
    pub position: LatLon,
    /// Horizontal accuracy (1σ-ish radius) in metres, as reported or derived from the source.
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    /// Course over ground, degrees clockwise from north.
    pub course_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    pub source: FixSource,
    pub flags: FixFlags,
    /// The device's own sequence number, used with `device_time` to recognise resent fixes.
    pub seq: Option<i64>,
}

impl Fix {
    /// The accuracy to reason with: the reported one, or a conservative default per source
    /// (GNSS 20 m, Wi-Fi 60 m, cell 1,000 m, unknown 100 m; domain brief figures).
    pub fn effective_accuracy_m(&self) -> f64 {
        match self.accuracy_m {
            Some(a) if a.is_finite() && a > 0.0 => a,
            _ => match self.source {
                FixSource::Gnss => 20.0,
                FixSource::Wifi => 60.0,
                FixSource::Cell => 1_000.0,
                FixSource::Unknown => 100.0,
            },
        }
    }
}

/// An alert as the operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: AlertId,
    pub order_id: Option<OrderId>,
    pub case_id: Option<CaseId>,
    pub rule: AlertRule,
    pub severity: Severity,
    pub state: AlertState,
    pub raised_at: UnixMicros,
    pub updated_at: UnixMicros,
    /// Human-readable one-line summary for staff.
    pub summary: String,
    /// The closest distance seen in this episode, where the rule is about distance.
    pub min_distance_m: Option<f64>,
    /// The fixes that raised or updated this alert.
    pub evidence: Vec<FixId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            id: OrderId(1),
            case_id: CaseId(1),
            kind: OrderKind::ProvisionalMeasure,
            valid_from: UnixMicros::from_secs(100),
            valid_to: Some(UnixMicros::from_secs(200)),
            no_approach_m: 100.0,
            warning_m: 500.0,
            disclosure_radius_m: 600.0,
            zones: vec![],
        }
    }

    #[test]
    fn enum_strings_round_trip() {
        for k in DeviceKind::ALL {
            assert_eq!(k.as_str().parse::<DeviceKind>().unwrap(), *k);
        }
        for p in Protocol::ALL {
            assert_eq!(p.as_str().parse::<Protocol>().unwrap(), *p);
        }
        let err = "bogus".parse::<OrderKind>().unwrap_err();
        assert_eq!(err.what, "OrderKind");
    }

    #[test]
    fn order_validation() {
        assert!(order().validate().is_ok());
        let mut o = order();
        o.no_approach_m = -1.0;
        assert_eq!(o.validate(), Err(OrderError::NoApproach(-1.0)));
        let mut o = order();
        o.warning_m = 50.0;
        assert!(matches!(
            o.validate(),
            Err(OrderError::WarningBelowViolation { .. })
        ));
        let mut o = order();
        o.valid_to = Some(UnixMicros::from_secs(50));
        assert_eq!(o.validate(), Err(OrderError::EmptyValidity));
        let p = LatLon::new(37.5, 127.0).unwrap();
        let mut o = order();
        o.zones.push(Zone {
            id: ZoneId(1),
            kind: ZoneKind::Home,
            label: "home".into(),
            shape: ZoneShape::Polygon {
                ring: vec![p, p, p, p],
            },
        });
        assert_eq!(o.validate(), Err(OrderError::PolygonTooSmall(1)));
    }

    #[test]
    fn in_force_is_half_open() {
        let o = order();
        assert!(!o.in_force(UnixMicros::from_secs(99)));
        assert!(o.in_force(UnixMicros::from_secs(100)));
        assert!(o.in_force(UnixMicros::from_secs(199)));
        assert!(!o.in_force(UnixMicros::from_secs(200)));
    }
}

/// A cell tower a device heard (a network scan locates the wearer without GNSS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellTower {
    pub mcc: u16,
    pub mnc: u16,
    pub lac: u32,
    pub cell_id: u64,
    /// Signal strength as the protocol reports it (dBm when negative).
    pub rssi: Option<i32>,
}

/// A Wi-Fi access point the device heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WifiAccessPoint {
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: String,
    pub rssi: Option<i32>,
}
