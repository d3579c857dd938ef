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
