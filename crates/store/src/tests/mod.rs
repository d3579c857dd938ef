//! Store tests that run on both backends (`conformance.rs`), one file per area.

mod alerting_status;
