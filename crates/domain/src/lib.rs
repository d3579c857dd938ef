//! Bulwark's domain model: plain data with no IO and no wire format.
//!
//! Everything here is what the monitoring engine, the store and the server agree on:
//! identifiers, units (metres, microseconds since the Unix epoch), people and their roles,
//! devices, cases, court orders, zones, fixes and alerts. Validation that depends only on the
//! value itself (a latitude in range, a radius that is positive) lives here so that every door
//! into the system applies the same rules.

pub mod geo;
pub mod ids;
pub mod model;
pub mod time;

pub use geo::{LatLon, Meters, haversine_m};
pub use ids::*;
pub use model::*;
pub use time::UnixMicros;
