//! The harness is reproducible from its seed, and the engine beats the naive baseline on a
//! small run. (The full 1,000 pair-day evaluation is `cargo run --release -p sim --example
//! eval`; see docs/engine.md.)

use sim::{EvalConfig, run};

#[test]
fn same_seed_same_report_and_engine_beats_naive() {
    let cfg = EvalConfig {
        seed: 7,
        pair_days: 24,
        threads: 2,
        ..EvalConfig::default()
    };
    let a = run(cfg.clone());
    let b = run(cfg);
    // Everything but the wall-clock time is reproducible.
    let strip = |r: &sim::EvalReport| {
        r.to_string()
            .lines()
            .filter(|l| !l.contains(" s wall"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(a.qualifying > 0, "{a}");
    assert!(a.engine.recall >= 0.9, "{a}");
    assert!(a.engine.false_alarms <= a.naive.false_alarms, "{a}");
}

#[test]
fn scenario_generation_is_deterministic() {
    let a = sim::scenario::generate(3, 5);
    let b = sim::scenario::generate(3, 5);
    assert_eq!(a.family, b.family);
    assert_eq!(a.offender, b.offender);
    assert_eq!(a.victim, b.victim);
    assert_eq!(a.offender.len(), sim::scenario::DAY_STEPS);
}
