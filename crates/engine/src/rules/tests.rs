#![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.
use super::*;
use crate::{Engine, EngineConfig, Input, MonitoredOrder, Output, Roster};
use domain::{CaseId, DeviceKind, FixFlags, FixSource, Order, OrderKind, Zone, ZoneKind};

const OFFENDER: PersonId = PersonId(1);
const VICTIM: PersonId = PersonId(2);
const ANKLE: DeviceId = DeviceId(10);
const PHONE: DeviceId = DeviceId(20);

fn home() -> LatLon {
    LatLon::new(37.5665, 126.9780).unwrap()
}

fn roster() -> Roster {
    let mut r = Roster::default();
    r.devices
        .insert(ANKLE, (OFFENDER, DeviceKind::AnkleMonitor));
    r.devices.insert(PHONE, (VICTIM, DeviceKind::VictimPhone));
    r.orders.push(MonitoredOrder {
        order: Order {
            id: OrderId(1),
            case_id: CaseId(1),
            kind: OrderKind::ProvisionalMeasure,
            valid_from: UnixMicros(0),
            valid_to: None,
            no_approach_m: 100.0,
            warning_m: 500.0,
            disclosure_radius_m: 600.0,
            zones: vec![Zone {
                id: ZoneId(7),
                kind: ZoneKind::Work,
                label: "work".into(),
                shape: ZoneShape::Circle {
                    center: home().destination(90.0, 5_000.0),
                    radius_m: 200.0,
                },
            }],
        },
        offender: OFFENDER,
        protected: vec![VICTIM],
    });
    r
}

fn fix(id: i64, device: DeviceId, t_s: i64, pos: LatLon) -> Fix {
    Fix {
        id: Some(FixId(id)),
        device_id: device,
        device_time: UnixMicros::from_secs(t_s),
        received_time: UnixMicros::from_secs(t_s),
        position: pos,
        accuracy_m: Some(10.0),
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: FixSource::Gnss,
        flags: FixFlags::default(),
        seq: None,
    }
}

fn signals(out: Vec<Output>) -> Vec<(AlertRule, Transition)> {
    out.into_iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some((a.key.rule, a.transition)),
            _ => None,
        })
        .filter(|(r, _)| *r != AlertRule::ProximityNotice)
        .collect()
}

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    e.handle(Input::Roster(roster()), UnixMicros::from_secs(0));
    e
}

#[test]
fn approach_raises_warning_then_violation_once_each() {
    let mut e = engine();
    let at = |s| UnixMicros::from_secs(s);
    assert!(
        e.handle(Input::Fix(fix(1, PHONE, 1, home())), at(1))
            .is_empty()
    );
    let far = e.handle(
        Input::Fix(fix(2, ANKLE, 2, home().destination(0.0, 1_000.0))),
        at(2),
    );
    assert!(signals(far).is_empty());
    let warn = e.handle(
        Input::Fix(fix(3, ANKLE, 60, home().destination(0.0, 400.0))),
        at(60),
    );
    assert_eq!(
        signals(warn),
        vec![(AlertRule::ProximityWarning, Transition::Raised)]
    );
    let out = e.handle(
        Input::Fix(fix(4, ANKLE, 120, home().destination(0.0, 80.0))),
        at(120),
    );
    let sig = signals(out.clone());
    assert!(sig.contains(&(AlertRule::ProximityViolation, Transition::Raised)));
    assert!(sig.contains(&(AlertRule::ProximityWarning, Transition::Updated)));
    let v = out
        .iter()
        .filter_map(Output::as_alert)
        .find(|a| a.key.rule == AlertRule::ProximityViolation)
        .unwrap();
    assert_eq!(v.evidence, vec![FixId(4), FixId(1)]);
    assert!((v.distance_m.unwrap() - 80.0).abs() < 0.5);
    // Staying inside at a similar distance raises nothing new.
    let again = e.handle(
        Input::Fix(fix(5, ANKLE, 180, home().destination(0.0, 90.0))),
        at(180),
    );
    assert!(signals(again).is_empty());
}

#[test]
fn leaving_needs_margin_and_hold_time() {
    let mut e = engine();
    let at = |s| UnixMicros::from_secs(s);
    e.handle(Input::Fix(fix(1, PHONE, 1, home())), at(1));
    e.handle(
        Input::Fix(fix(2, ANKLE, 2, home().destination(0.0, 50.0))),
        at(2),
    );
    // 120 m is outside 100 m but within the 50 m margin: still in the episode.
    let o = e.handle(
        Input::Fix(fix(3, ANKLE, 60, home().destination(0.0, 120.0))),
        at(60),
    );
    assert!(signals(o).is_empty());
    // 200 m: clear, but the hold time has not passed.
    let o = e.handle(
        Input::Fix(fix(4, ANKLE, 120, home().destination(0.0, 200.0))),
        at(120),
    );
    assert!(signals(o).is_empty());
    e.handle(Input::Fix(fix(5, PHONE, 150, home())), at(150));
    let o = e.handle(
        Input::Fix(fix(6, ANKLE, 240, home().destination(0.0, 200.0))),
        at(240),
    );
    assert_eq!(
        signals(o),
        vec![(AlertRule::ProximityViolation, Transition::Cleared)]
    );
}

#[test]
fn zone_violation_and_polygon_geometry() {
    let mut e = engine();
    let work = home().destination(90.0, 5_000.0);
    let o = e.handle(
        Input::Fix(fix(1, ANKLE, 10, work.destination(0.0, 150.0))),
        UnixMicros::from_secs(10),
    );
    assert_eq!(
        signals(o),
        vec![(AlertRule::ZoneViolation, Transition::Raised)]
    );

    let square = ZoneShape::Polygon {
        ring: vec![
            home().destination(45.0, 141.42),
            home().destination(135.0, 141.42),
            home().destination(225.0, 141.42),
            home().destination(315.0, 141.42),
        ],
    };
    let inside = distance_into_zone(&home(), &square);
    assert!((inside + 100.0).abs() < 1.0, "{inside}");
    let outside = distance_into_zone(&home().destination(0.0, 300.0), &square);
    assert!((outside - 200.0).abs() < 1.0, "{outside}");
}

#[test]
fn stale_fixes_do_not_count_as_current() {
    let mut e = engine();
    e.handle(
        Input::Fix(fix(1, PHONE, 0, home())),
        UnixMicros::from_secs(0),
    );
    // The victim's fix is 700 s old when the offender arrives: no distance can be computed.
    let o = e.handle(
        Input::Fix(fix(2, ANKLE, 700, home().destination(0.0, 10.0))),
        UnixMicros::from_secs(700),
    );
    assert!(signals(o.clone()).is_empty(), "{o:#?}");
}

#[test]
fn order_links_to_a_device_registered_before_it() {
    // The Namyangju failure: the offender already wore a device when the order was made.
    let mut e = Engine::new(EngineConfig::default());
    let mut r = roster();
    let orders = std::mem::take(&mut r.orders);
    e.handle(Input::Roster(r.clone()), UnixMicros::from_secs(0));
    e.handle(
        Input::Fix(fix(1, PHONE, 1, home())),
        UnixMicros::from_secs(1),
    );
    e.handle(
        Input::Fix(fix(2, ANKLE, 2, home().destination(0.0, 30.0))),
        UnixMicros::from_secs(2),
    );
    r.orders = orders;
    let o = e.handle(Input::Roster(r), UnixMicros::from_secs(3));
    assert!(signals(o).contains(&(AlertRule::ProximityViolation, Transition::Raised)));
}

// ---- One test per rule, with the inputs spelled out. ----

fn at(s: i64) -> UnixMicros {
    UnixMicros::from_secs(s)
}

fn alerts(out: &[Output]) -> Vec<&AlertSignal> {
    out.iter().filter_map(Output::as_alert).collect()
}

fn find(out: &[Output], rule: AlertRule) -> Option<&AlertSignal> {
    alerts(out).into_iter().find(|a| a.key.rule == rule)
}

fn event(device: DeviceId, event: crate::DeviceEventKind, t: i64) -> Input {
    Input::DeviceEvent {
        device,
        event,
        device_time: at(t),
        received_time: at(t),
        code: None,
    }
}

#[test]
fn warning_carries_approach_and_requests_pursuit_mode() {
    let mut e = engine();
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    let mut out = Vec::new();
    for (i, d) in [700.0, 620.0, 540.0, 460.0].into_iter().enumerate() {
        let t = 60 * (i as i64 + 1);
        e.handle(Input::Fix(fix(100 + i as i64, PHONE, t, home())), at(t));
        out = e.handle(
            Input::Fix(fix(10 + i as i64, ANKLE, t, home().destination(0.0, d))),
            at(t),
        );
    }
    let w = find(&out, AlertRule::ProximityWarning).expect("warning");
    assert_eq!(w.transition, Transition::Raised);
    assert_eq!(w.heading_toward, Some(true));
    assert!(w.closing_speed_mps.is_some_and(|c| c > 0.8), "{w:?}");
    assert!(
        w.time_to_contact_s.is_some_and(|t| t > 100.0 && t < 1000.0),
        "{w:?}"
    );
    let cmds: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::DeviceCommand { device, command } => Some((*device, *command)),
            _ => None,
        })
        .collect();
    assert_eq!(
        cmds,
        vec![
            (ANKLE, crate::DeviceCommand::ReportingInterval(15)),
            (PHONE, crate::DeviceCommand::ReportingInterval(15))
        ]
    );
}

#[test]
fn integrity_suspect_fix_alone_never_confirms_a_violation() {
    let mut e = engine();
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    let mut f = fix(2, ANKLE, 10, home().destination(0.0, 20.0));
    f.flags = FixFlags(FixFlags::INTEGRITY_SUSPECT);
    let out = e.handle(Input::Fix(f), at(10));
    assert!(
        find(&out, AlertRule::ProximityViolation).is_none(),
        "{out:#?}"
    );
}

#[test]
fn cell_fix_near_her_is_at_most_possible() {
    let mut e = engine();
    let mut out = Vec::new();
    for i in 0..12 {
        let t = i * 60;
        out.extend(e.handle(Input::Fix(fix(100 + i, PHONE, t, home())), at(t)));
        let mut f = fix(i + 1, ANKLE, t, home().destination(0.0, 50.0));
        f.source = FixSource::Cell;
        f.accuracy_m = Some(800.0);
        out.extend(e.handle(Input::Fix(f), at(t)));
    }
    let v = find(&out, AlertRule::ProximityViolation)
        .unwrap_or_else(|| panic!("possible violation after the hold: {out:#?}"));
    assert_eq!(v.certainty, Certainty::Possible);
    assert_eq!(v.severity, Severity::Warning);
}

#[test]
fn physically_impossible_jump_is_rejected() {
    let mut e = engine();
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    for i in 0..5 {
        let t = i * 60;
        e.handle(
            Input::Fix(fix(10 + i, ANKLE, t, home().destination(0.0, 3_000.0))),
            at(t),
        );
    }
    // 3 km in 5 s, landing on her.
    let out = e.handle(Input::Fix(fix(20, ANKLE, 245, home())), at(245));
    assert!(
        find(&out, AlertRule::ProximityViolation).is_none(),
        "{out:#?}"
    );
}

#[test]
fn out_of_order_fix_raises_a_late_detected_violation() {
    let mut e = engine();
    for i in 0..4 {
        let t = i * 60;
        e.handle(Input::Fix(fix(100 + i, PHONE, t, home())), at(t));
        e.handle(
            Input::Fix(fix(10 + i, ANKLE, t, home().destination(0.0, 2_000.0))),
            at(t),
        );
    }
    // A fix from t = 170 s arrives after the one from t = 180 s, and it was 20 m from her …
    // but it must agree with his fixes around it to count: feed one that does.
    e.handle(
        Input::Fix(fix(30, ANKLE, 240, home().destination(0.0, 30.0))),
        at(400),
    );
    let out = e.handle(
        Input::Fix(fix(31, ANKLE, 230, home().destination(0.0, 25.0))),
        at(410),
    );
    let all = [out].concat();
    let v = find(&all, AlertRule::ProximityViolation);
    assert!(v.is_none_or(|v| v.late), "{all:#?}");
}

#[test]
fn buffered_batch_breach_is_reported_late() {
    let mut e = engine();
    for i in 0..3 {
        let t = i * 60;
        e.handle(Input::Fix(fix(100 + i, PHONE, t, home())), at(t));
    }
    e.handle(
        Input::Fix(fix(1, ANKLE, 0, home().destination(0.0, 1_500.0))),
        at(0),
    );
    // Fixes from 60–300 s uploaded together at 900 s.
    let mut out = Vec::new();
    for (i, d) in [900.0, 400.0, 60.0, 40.0, 40.0].into_iter().enumerate() {
        let mut f = fix(
            2 + i as i64,
            ANKLE,
            60 * (i as i64 + 1),
            home().destination(0.0, d),
        );
        f.flags = FixFlags(FixFlags::LATE);
        out.extend(e.handle(Input::Fix(f), at(900)));
    }
    let v = find(&out, AlertRule::ProximityViolation).expect("late violation");
    assert!(v.late);
    assert!(!v.evidence.is_empty());
}

#[test]
fn grazing_becomes_a_pattern_with_every_approach_as_evidence() {
    let mut e = engine();
    let mut out = Vec::new();
    let mut t = 0;
    let mut id = 1;
    for _ in 0..3 {
        for d in [700.0, 140.0, 130.0, 700.0, 700.0] {
            t += 60;
            e.handle(Input::Fix(fix(1_000 + id, PHONE, t, home())), at(t));
            out.extend(e.handle(
                Input::Fix(fix(id, ANKLE, t, home().destination(0.0, d))),
                at(t),
            ));
            id += 1;
        }
    }
    assert!(find(&out, AlertRule::ProximityViolation).is_none());
    let g = find(&out, AlertRule::BoundaryGrazing).expect("pattern");
    assert_eq!(g.transition, Transition::Raised);
    assert!(g.evidence.len() >= 3, "{g:?}");
}

#[test]
fn sos_is_critical_at_once_even_without_a_position() {
    let mut e = engine();
    let out = e.handle(event(PHONE, crate::DeviceEventKind::Sos, 5), at(5));
    let s = find(&out, AlertRule::Sos).expect("sos");
    assert_eq!(s.severity, Severity::Critical);
    assert!(s.position.is_none());
    assert!(s.summary.contains("no position known"), "{}", s.summary);
    // With a position it says how old it is.
    e.handle(Input::Fix(fix(1, PHONE, 10, home())), at(10));
    let out = e.handle(event(PHONE, crate::DeviceEventKind::Sos, 70), at(70));
    let s = find(&out, AlertRule::Sos).expect("sos");
    assert_eq!(s.transition, Transition::Updated);
    assert_eq!(s.position, Some(home()));
    assert_eq!(s.position_age_s, Some(60.0));
    assert_eq!(s.evidence, vec![FixId(1)]);
}

#[test]
fn tamper_never_clears_itself_and_battery_clears_on_charging() {
    let mut e = engine();
    let out = e.handle(event(ANKLE, crate::DeviceEventKind::Tamper, 1), at(1));
    assert_eq!(signals(out), vec![(AlertRule::Tamper, Transition::Raised)]);
    for t in (60..7_200).step_by(60) {
        e.handle(
            Input::Fix(fix(t, ANKLE, t, home().destination(0.0, 5_000.0))),
            at(t),
        );
        let out = e.handle(Input::Tick, at(t));
        assert!(!signals(out).contains(&(AlertRule::Tamper, Transition::Cleared)));
    }
    let out = e.handle(
        event(ANKLE, crate::DeviceEventKind::LowBattery, 7_300),
        at(7_300),
    );
    assert!(signals(out).contains(&(AlertRule::DeviceBattery, Transition::Raised)));
    let out = e.handle(
        event(ANKLE, crate::DeviceEventKind::Charging, 7_400),
        at(7_400),
    );
    assert!(signals(out).contains(&(AlertRule::DeviceBattery, Transition::Cleared)));
}

#[test]
fn event_from_a_device_without_an_order_is_still_an_alert() {
    let mut e = engine();
    let mut r = roster();
    r.devices
        .insert(DeviceId(99), (PersonId(9), DeviceKind::AnkleMonitor));
    e.handle(Input::Roster(r), at(0));
    let out = e.handle(
        event(DeviceId(99), crate::DeviceEventKind::Removal, 3),
        at(3),
    );
    assert!(matches!(
        out.as_slice(),
        [Output::DeviceAlert(crate::DeviceAlert {
            rule: AlertRule::Tamper,
            ..
        })]
    ));
}

#[test]
fn silence_and_missing_gnss_raise_device_alerts_after_their_delays() {
    let mut e = engine();
    e.handle(
        Input::Fix(fix(1, ANKLE, 0, home().destination(0.0, 5_000.0))),
        at(0),
    );
    assert!(signals(e.handle(Input::Tick, at(590))).is_empty());
    let out = e.handle(Input::Tick, at(610));
    assert!(signals(out).contains(&(AlertRule::DeviceOffline, Transition::Raised)));
    // Reporting again, but without a fix.
    let mut out = Vec::new();
    for t in (620..=1_000).step_by(60) {
        let mut f = fix(t, ANKLE, t, home().destination(0.0, 5_000.0));
        f.flags = FixFlags(FixFlags::NO_GNSS_FIX);
        out.extend(e.handle(Input::Fix(f), at(t)));
    }
    let sig = signals(out);
    assert!(sig.contains(&(AlertRule::DeviceOffline, Transition::Cleared)));
    assert!(
        sig.contains(&(AlertRule::DeviceNoFix, Transition::Raised)),
        "{sig:?}"
    );
}

#[test]
fn victim_phone_going_quiet_degrades_protection() {
    let mut e = engine();
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    let degraded = |out: Vec<Output>| {
        signals(out)
            .into_iter()
            .filter(|(r, _)| *r == AlertRule::ProtectionDegraded)
            .collect::<Vec<_>>()
    };
    assert!(degraded(e.handle(Input::Tick, at(800))).is_empty());
    let out = e.handle(Input::Tick, at(1_000));
    assert_eq!(
        degraded(out),
        vec![(AlertRule::ProtectionDegraded, Transition::Raised)]
    );
    let out = e.handle(Input::Fix(fix(2, PHONE, 1_010, home())), at(1_010));
    assert!(signals(out).contains(&(AlertRule::ProtectionDegraded, Transition::Cleared)));
}

#[test]
fn zone_schedule_in_seoul_time() {
    // 2025-12-01 (Monday) 00:00 UTC = 09:00 KST.
    let monday_0900 = 1_764_547_200;
    let mut e = engine();
    let mut r = roster();
    r.orders[0].order.valid_from = UnixMicros(0);
    e.handle(Input::Roster(r), at(monday_0900));
    e.handle(
        Input::ZoneSchedules(vec![(
            ZoneId(7),
            crate::ZoneSchedule {
                windows: vec![crate::ScheduleWindow {
                    days: 0b001_1111,
                    start_min: 18 * 60,
                    end_min: 22 * 60,
                }],
            },
        )]),
        at(monday_0900),
    );
    let work = home().destination(90.0, 5_000.0);
    let out = e.handle(
        Input::Fix(fix(1, ANKLE, monday_0900, work)),
        at(monday_0900),
    );
    assert!(find(&out, AlertRule::ZoneViolation).is_none());
    // 19:00 KST: in force.
    let t = monday_0900 + 10 * 3600;
    let out = e.handle(Input::Fix(fix(2, ANKLE, t, work)), at(t));
    assert!(find(&out, AlertRule::ZoneViolation).is_some());
}

#[test]
fn order_ending_clears_its_open_alerts() {
    let mut e = engine();
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    let out = e.handle(
        Input::Fix(fix(2, ANKLE, 1, home().destination(0.0, 30.0))),
        at(1),
    );
    assert!(signals(out).contains(&(AlertRule::ProximityViolation, Transition::Raised)));
    let mut r = roster();
    r.orders[0].order.valid_to = Some(at(100));
    e.handle(Input::Roster(r), at(50));
    let out = e.handle(Input::Tick, at(100));
    let sig = signals(out);
    assert!(
        sig.contains(&(AlertRule::ProximityViolation, Transition::Cleared)),
        "{sig:?}"
    );
    assert!(sig.contains(&(AlertRule::ProximityWarning, Transition::Cleared)));
    // And an order removed from the roster ends the same way.
    let mut e = engine();
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    e.handle(
        Input::Fix(fix(2, ANKLE, 1, home().destination(0.0, 30.0))),
        at(1),
    );
    let mut r = roster();
    r.orders.clear();
    let sig = signals(e.handle(Input::Roster(r), at(2)));
    assert!(
        sig.contains(&(AlertRule::ProximityViolation, Transition::Cleared)),
        "{sig:?}"
    );
}

#[test]
fn absurd_device_input_does_not_panic() {
    let mut e = engine();
    for (i, t) in [i64::MIN, i64::MAX, 0, -1, i64::MAX / 2]
        .into_iter()
        .enumerate()
    {
        let mut f = fix(i as i64, ANKLE, 0, home());
        f.device_time = UnixMicros(t);
        f.accuracy_m = Some(f64::NAN);
        f.speed_mps = Some(f64::INFINITY);
        e.handle(Input::Fix(f), at(1_000));
        e.handle(
            Input::DeviceEvent {
                device: PHONE,
                event: crate::DeviceEventKind::Sos,
                device_time: UnixMicros(t),
                received_time: at(1_000),
                code: None,
            },
            at(1_000),
        );
    }
    e.handle(Input::Tick, at(2_000));
}

#[test]
fn each_protected_person_has_her_own_episode() {
    let sister = PersonId(3);
    let sister_phone = DeviceId(30);
    let mut r = roster();
    r.devices
        .insert(sister_phone, (sister, DeviceKind::VictimPhone));
    r.orders[0].protected.push(sister);
    let mut e = Engine::new(EngineConfig::default());
    e.handle(Input::Roster(r), at(0));
    e.handle(Input::Fix(fix(1, PHONE, 0, home())), at(0));
    e.handle(
        Input::Fix(fix(2, sister_phone, 0, home().destination(180.0, 3_000.0))),
        at(0),
    );
    let out = e.handle(
        Input::Fix(fix(3, ANKLE, 1, home().destination(0.0, 20.0))),
        at(1),
    );
    let v: Vec<_> = alerts(&out)
        .into_iter()
        .filter(|a| a.key.rule == AlertRule::ProximityViolation)
        .map(|a| a.key.protected)
        .collect();
    assert_eq!(v, vec![Some(VICTIM)]);
}
