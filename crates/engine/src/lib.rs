//! The monitoring engine: a pure, deterministic state machine.
//!
//! `Engine::handle(input, now)` takes one input (a stored fix, a device event, a roster change
//! or a clock tick) and the current time, and returns what should happen (alerts raised,
//! updated or cleared). It does no IO and never reads a clock, so every decision can be
//! replayed from stored inputs.
//!
//! **Architecture invariant:** this crate depends on `domain` only. No tokio, no store, no HTTP.

mod roster;
mod rules;

pub use roster::{MonitoredOrder, Roster};
pub use rules::{AlertKey, AlertSignal, Transition};

use domain::{DeviceId, Fix, UnixMicros};
use std::collections::HashMap;

/// Tunables. Defaults are chosen for 60 s fix intervals and urban GNSS noise (10–50 m).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// An episode ends only once the distance exceeds the radius by this many metres …
    pub clear_margin_m: f64,
    /// … continuously for this many seconds.
    pub clear_hold_s: f64,
    /// Fixes older than this (device time vs. now) are not treated as current positions.
    pub stale_after_s: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            clear_margin_m: 50.0,
            clear_hold_s: 120.0,
            stale_after_s: 600.0,
        }
    }
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
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Alert(AlertSignal),
}

/// The engine's whole state.
#[derive(Debug, Default)]
pub struct Engine {
    config: EngineConfig,
    roster: Roster,
    /// Latest fix per device, by device time.
    latest: HashMap<DeviceId, Fix>,
    episodes: rules::Episodes,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Evaluates one input at time `now`.
    pub fn handle(&mut self, input: Input, now: UnixMicros) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Roster(roster) => {
                self.roster = roster;
                self.evaluate_all(now, &mut out);
            }
            Input::Fix(fix) => {
                let newer = self
                    .latest
                    .get(&fix.device_id)
                    .is_none_or(|prev| fix.device_time >= prev.device_time);
                if newer {
                    let device = fix.device_id;
                    self.latest.insert(device, fix);
                    if let Some(person) = self.roster.owner_of(device) {
                        for order_idx in self.roster.orders_involving(person) {
                            rules::evaluate_order(
                                &self.config,
                                &self.roster.orders[order_idx],
                                &self.roster,
                                &self.latest,
                                &mut self.episodes,
                                now,
                                &mut out,
                            );
                        }
                    }
                }
            }
            Input::Tick => self.evaluate_all(now, &mut out),
        }
        out
    }

    fn evaluate_all(&mut self, now: UnixMicros, out: &mut Vec<Output>) {
        for order in &self.roster.orders {
            rules::evaluate_order(
                &self.config,
                order,
                &self.roster,
                &self.latest,
                &mut self.episodes,
                now,
                out,
            );
        }
        self.episodes
            .retain_orders(|id| self.roster.orders.iter().any(|o| o.order.id == id));
    }
}
