//! Property tests of the engine's invariants:
//! - the same inputs give the same outputs (determinism; no hidden clock or randomness);
//! - no alert without the fixes that caused it (evidence refers only to fixes fed in);
//! - offender-facing outputs never depend on the victim's position.

#![allow(clippy::unwrap_used)]

use domain::{
    AlertRule, CaseId, DeviceId, DeviceKind, Fix, FixFlags, FixId, FixSource, LatLon, Order,
    OrderId, OrderKind, PersonId, UnixMicros, Zone, ZoneId, ZoneKind, ZoneShape,
};
use engine::{
    DeviceEventKind, Engine, EngineConfig, Input, MonitoredOrder, Output, Roster, Transition,
};
use proptest::prelude::*;
use std::collections::HashSet;

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
                id: ZoneId(1),
                kind: ZoneKind::Work,
                label: "work".into(),
                shape: ZoneShape::Circle {
                    center: home().destination(90.0, 1_000.0),
                    radius_m: 150.0,
                },
            }],
        },
        offender: OFFENDER,
        protected: vec![VICTIM],
    });
    r
}

#[derive(Debug, Clone)]
enum Step {
    Offender {
        dist: f64,
        bearing: f64,
        acc: f64,
        flags: u32,
        back_s: i64,
    },
    Victim {
        dist: f64,
        bearing: f64,
        acc: f64,
    },
    Tick,
    Event(u8, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0.0f64..1_500.0, 0.0f64..360.0, 3.0f64..400.0, 0u32..8, prop_oneof![3 => Just(0i64), 1 => 0i64..600])
            .prop_map(|(dist, bearing, acc, flags, back_s)| Step::Offender { dist, bearing, acc, flags, back_s }),
        2 => (0.0f64..300.0, 0.0f64..360.0, 3.0f64..100.0)
            .prop_map(|(dist, bearing, acc)| Step::Victim { dist, bearing, acc }),
        1 => Just(Step::Tick),
        1 => (0u8..6, any::<bool>()).prop_map(|(k, v)| Step::Event(k, v)),
    ]
}

fn fix(id: i64, device: DeviceId, t: i64, now: i64, pos: LatLon, acc: f64, flags: u32) -> Fix {
    Fix {
        id: Some(FixId(id)),
        device_id: device,
        device_time: UnixMicros::from_secs(t),
        received_time: UnixMicros::from_secs(now),
        position: pos,
        accuracy_m: Some(acc),
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: if acc > 300.0 {
            FixSource::Cell
        } else {
            FixSource::Gnss
        },
        flags: FixFlags(flags),
        seq: None,
    }
}

/// Runs a script; `victim_shift` moves every victim position (for the offender-facing check).
fn run(steps: &[Step], victim_shift: f64) -> (Vec<Output>, HashSet<FixId>) {
    let mut e = Engine::new(EngineConfig::default());
    let mut out = e.handle(Input::Roster(roster()), UnixMicros::from_secs(0));
    let mut fed = HashSet::new();
    let mut now = 0i64;
    for (i, s) in steps.iter().enumerate() {
        now += 15;
        let id = i as i64 + 1;
        let input = match s {
            Step::Offender {
                dist,
                bearing,
                acc,
                flags,
                back_s,
            } => {
                fed.insert(FixId(id));
                Input::Fix(fix(
                    id,
                    ANKLE,
                    now - back_s,
                    now,
                    home().destination(*bearing, *dist),
                    *acc,
                    *flags,
                ))
            }
            Step::Victim { dist, bearing, acc } => {
                fed.insert(FixId(id));
                let p = home()
                    .destination(*bearing, *dist)
                    .destination(45.0, victim_shift);
                Input::Fix(fix(id, PHONE, now, now, p, *acc, 0))
            }
            Step::Tick => Input::Tick,
            Step::Event(k, victim) => Input::DeviceEvent {
                device: if *victim { PHONE } else { ANKLE },
                event: [
                    DeviceEventKind::Sos,
                    DeviceEventKind::Tamper,
                    DeviceEventKind::Removal,
                    DeviceEventKind::LowBattery,
                    DeviceEventKind::Charging,
                    DeviceEventKind::PowerCut,
                ][usize::from(*k)],
                device_time: UnixMicros::from_secs(now),
                received_time: UnixMicros::from_secs(now),
                code: None,
            },
        };
        out.extend(e.handle(input, UnixMicros::from_secs(now)));
    }
    (out, fed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn same_inputs_same_outputs(steps in prop::collection::vec(step(), 1..120)) {
        let (a, _) = run(&steps, 0.0);
        let (b, _) = run(&steps, 0.0);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn no_alert_without_the_fixes_that_caused_it(steps in prop::collection::vec(step(), 1..120)) {
        let (out, fed) = run(&steps, 0.0);
        for o in &out {
            let Output::Alert(a) = o else { continue };
            for id in &a.evidence {
                prop_assert!(fed.contains(id), "evidence {id:?} was never fed: {a:?}");
            }
            let position_rule = matches!(
                a.key.rule,
                AlertRule::ProximityViolation
                    | AlertRule::ProximityWarning
                    | AlertRule::ProximityNotice
                    | AlertRule::ZoneViolation
                    | AlertRule::BoundaryGrazing
            );
            if position_rule && a.transition != Transition::Cleared {
                prop_assert!(!a.evidence.is_empty(), "alert without evidence: {a:?}");
            }
        }
    }

    #[test]
    fn offender_facing_outputs_never_depend_on_the_victim(
        steps in prop::collection::vec(step(), 1..120),
        shift in 0.0f64..3_000.0,
    ) {
        let facing = |v: Vec<Output>| -> Vec<Output> {
            v.into_iter().filter(Output::is_offender_facing).collect()
        };
        let (a, _) = run(&steps, 0.0);
        let (b, _) = run(&steps, shift);
        prop_assert_eq!(facing(a), facing(b));
    }
}
