//! Simulation for Bulwark: ground-truth scenarios of offenders and protected people moving on a
//! street grid, a device observation model (noise, outliers, cell fixes, duplicates, reordering,
//! late batches, clock skew), and the evaluation harness that scores the engine against the
//! truth beside a naive baseline.
//!
//! Everything is reproducible from a seed.

pub mod eval;
pub mod rng;
pub mod scenario;

pub use eval::{EvalConfig, EvalReport, run};
