//! The monitoring engine: a pure, deterministic state machine.
//!
//! `Engine::handle(input, now)` takes one input (a stored fix, a device event, a roster change
//! or a clock tick) and the current time, and returns what should happen (alerts raised,
//! updated or cleared; reporting-interval commands for devices). It does no IO and never reads
//! a clock, so every decision can be replayed from stored inputs.
//!
//! **Architecture invariant:** this crate depends on `domain` only. No tokio, no store, no HTTP.
//! (`tests/purity.rs` checks the manifest.)
//!
//! The rules are described in `docs/engine.md`.

mod fast;
mod people;
mod roster;
mod rules;
mod schedule;
mod track;

pub use roster::{MonitoredOrder, Roster};
pub use rules::{AlertKey, AlertSignal, Certainty, Transition, distance_into_zone};
pub use schedule::{ScheduleWindow, ZoneSchedule};

use domain::{AlertRule, DeviceId, Fix, PersonId, Severity, UnixMicros, ZoneId};

/// Tunables. Defaults are chosen for 60 s fix intervals and urban GNSS noise (10–50 m).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// An episode ends only once the distance exceeds the radius by this many metres …
    pub clear_margin_m: f64,
    /// … continuously for this many seconds.
    pub clear_hold_s: f64,
    /// Fixes older than this (device time vs. now) are not treated as current positions.
    pub stale_after_s: f64,
    /// The outer, informational distance tier (Korea's 2024 SMS radius: 2 km). 0 disables it.
    pub notice_m: f64,
    /// How many standard deviations a breach must be inside the radius to be "confirmed"
    /// (1.28 ≈ 90 % one-sided).
    pub confidence_z: f64,
    /// Consecutive confirmed evaluations needed when the evidence surprised the filter.
    pub confirm_fixes: u8,
    /// A breach that stays only "possible" (low-accuracy fixes) for this long is raised as a
    /// possible violation.
    pub possible_hold_s: f64,
    /// Kalman white-acceleration noise, m²/s³.
    pub accel_noise: f64,
    /// A moving person's estimate may be off by this many seconds of travel (turns, stops)
    /// beyond what the filter's own covariance says.
    pub motion_sigma_s: f64,
    /// Above this estimated speed (m/s) the offender counts as moving, and a breach needs
    /// `confirm_fixes` consecutive confirmations.
    pub moving_mps: f64,
    /// Faster than this (m/s, beyond what the accuracies explain) is a physically impossible jump.
    pub max_speed_mps: f64,
    /// Innovations beyond this many σ are outliers until a second fix agrees.
    pub outlier_gate_sigma: f64,
    /// A fix or event evaluated this long after its device time is "late".
    pub late_after_s: f64,
    /// A position this fresh is taken as current with its own accuracy (the normal interval
    /// plus slack); beyond it the uncertainty grows.
    pub position_grace_s: f64,
    /// How fast an unseen protected person may have moved (m/s) — growth of uncertainty.
    pub victim_drift_mps: f64,
    /// How fast an unseen offender may have moved (m/s).
    pub offender_drift_mps: f64,
    /// The protected person's devices silent this long → "protection degraded".
    pub victim_stale_after_s: f64,
    /// The offender's devices silent this long → "device offline".
    pub offender_offline_after_s: f64,
    /// The offender's devices report but without a GNSS fix this long → "no fix".
    pub offender_no_fix_after_s: f64,
    /// Width of the band just outside the no-approach distance where grazing is counted (m).
    pub graze_band_m: f64,
    /// Approaches into the band within `graze_window_s` that make a pattern.
    pub graze_count: u32,
    pub graze_window_s: f64,
    /// Continuous time within `loiter_band_m` outside the no-approach distance that makes a
    /// loitering pattern (s).
    pub loiter_s: f64,
    pub loiter_band_m: f64,
    /// Reporting interval requested from the devices involved on a warning ("pursuit mode").
    pub pursuit_interval_s: u32,
    /// Reporting interval restored when the warning clears.
    pub normal_interval_s: u32,
    /// Warn when the offender heads toward the protected person and would reach the no-approach
    /// distance within this many seconds, even outside the warning distance.
    pub ttc_warn_s: f64,
    /// Offset of local time from UTC for zone schedules (Asia/Seoul: +9 h, no DST).
    pub utc_offset_s: i32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            clear_margin_m: 50.0,
            clear_hold_s: 120.0,
            stale_after_s: 600.0,
            notice_m: 2_000.0,
            confidence_z: 1.28,
            confirm_fixes: 2,
            possible_hold_s: 300.0,
            accel_noise: 0.01,
            motion_sigma_s: 5.0,
            moving_mps: 0.7,
            max_speed_mps: 70.0,
            outlier_gate_sigma: 5.0,
            late_after_s: 120.0,
            position_grace_s: 180.0,
            victim_drift_mps: 1.0,
            offender_drift_mps: 2.0,
            victim_stale_after_s: 900.0,
            offender_offline_after_s: 600.0,
            offender_no_fix_after_s: 900.0,
            graze_band_m: 100.0,
            graze_count: 3,
            graze_window_s: 86_400.0,
            loiter_s: 1_800.0,
            loiter_band_m: 200.0,
            pursuit_interval_s: 15,
            normal_interval_s: 60,
            ttc_warn_s: 120.0,
            utc_offset_s: 9 * 3600,
        }
    }
}

/// Something a device reported that is not a position (defined in `domain`, which the store
/// shares).
pub use domain::DeviceEventKind;

/// Something the engine asks a device to do. The shell turns it into the device's protocol.
/// Reporting-interval changes must be sent silently (no beep, no LED, no screen message): they
/// are not offender-facing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Report a fix every this many seconds.
    ReportingInterval(u32),
}

/// Something that happened, for the engine to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The set of devices, owners and orders in force changed.
    Roster(Roster),
    /// A fix that the store has made durable (it carries its `FixId`).
    Fix(Fix),
    /// Time passed with no other input (drives hold timers and staleness).
    Tick,
    /// A non-position report from a device (after it is durable).
    DeviceEvent {
        device: DeviceId,
        event: DeviceEventKind,
        device_time: UnixMicros,
        received_time: UnixMicros,
        /// The protocol's code of a `DeviceAlarm` (or the sign of a `Spoofing`), shown to staff.
        code: Option<String>,
    },
    /// Local-time schedules for zones; a zone without one is always active. Replaces the set.
    ZoneSchedules(Vec<(ZoneId, ZoneSchedule)>),
}

/// An alert about a device that no order in force binds (e.g. tamper on a device whose order
/// lapsed). Staff must still see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceAlert {
    pub device: DeviceId,
    pub person: Option<PersonId>,
    pub rule: AlertRule,
    pub severity: Severity,
    pub at: UnixMicros,
    pub late: bool,
    pub summary: String,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Alert(AlertSignal),
    /// Send this command to this device (pursuit mode on a warning, back to normal after).
    DeviceCommand {
        device: DeviceId,
        command: DeviceCommand,
    },
    /// A device alert not tied to any order in force.
    DeviceAlert(DeviceAlert),
}

impl Output {
    /// Whether the output is shown or signalled to the offender. None of the engine's outputs
    /// is; the property tests check that any that ever is does not depend on the victim.
    pub fn is_offender_facing(&self) -> bool {
        false
    }

    pub fn as_alert(&self) -> Option<&AlertSignal> {
        match self {
            Output::Alert(a) => Some(a),
            _ => None,
        }
    }
}

/// The engine's whole state.
#[derive(Debug, Default)]
pub struct Engine {
    config: EngineConfig,
    state: rules::State,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            state: rules::State::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Number of orders in force the engine is watching.
    pub fn case_count(&self) -> usize {
        self.state.case_count()
    }

    /// Evaluates one input at time `now`.
    pub fn handle(&mut self, input: Input, now: UnixMicros) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Roster(roster) => self.state.set_roster(&self.config, roster, now, &mut out),
            Input::Fix(fix) => self.state.on_fix(&self.config, &fix, now, &mut out),
            Input::Tick => self.state.evaluate_all(&self.config, now, &mut out),
            Input::DeviceEvent {
                device,
                event,
                device_time,
                received_time,
                code,
            } => self.state.on_event(
                &self.config,
                device,
                (event, code.as_deref()),
                device_time,
                received_time,
                now,
                &mut out,
            ),
            Input::ZoneSchedules(s) => {
                self.state.set_schedules(s);
                self.state.evaluate_all(&self.config, now, &mut out);
            }
        }
        out
    }
}
