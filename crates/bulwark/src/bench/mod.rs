//! `bulwark bench alternatives`: what a user would build instead of Bulwark, measured under
//! the same load on the same machine.
//!
//! Two baselines, each doing the least a monitoring system must do per fix:
//!
//! - **Redis** with `appendfsync always` (every write durable before its reply): `GEOADD` the
//!   device's position and `GEODIST` to its partner, pipelined in one round trip. It keeps only
//!   the latest position of each device, no history.
//! - **PostgreSQL + PostGIS** (`synchronous_commit = on`): one transaction per fix that inserts
//!   the fix, tests `ST_DWithin` against the partner's latest position and upserts the
//!   device's latest, its three statements pipelined on one connection.
//!
//! The load is the same for both: `devices` devices in offender/victim pairs around Seoul,
//! each with its own increasing device time, driven closed-loop by `clients` connections (a
//! connection sends a device's next fix once the previous one was acknowledged). A fix counts
//! when its durable reply has arrived, and the run checks afterwards that what was counted is
//! what the server holds. Redis runs as a child process on a free port with its append-only
//! file in a temporary directory; PostgreSQL is the machine's server, in a scratch database
//! created and dropped by the run.
//!
//! **Bulwark's own leg** (first in the table) runs the same devices, positions and
//! concurrency against a `bulwark serve` child on free ports with a fresh data directory
//! holding `--cases` cases and `--zones` zones, over the Teltonika TCP door: see
//! `bulwark_leg`.

mod alternatives;
pub mod bulwark_leg;
pub mod burst;
pub mod harness;
pub mod latency;
pub mod memory;
pub mod overload;

pub use alternatives::{Options, run};
pub use harness::{ClusterTarget, SeedPlan};
