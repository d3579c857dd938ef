//! Conformance tests by area, each body run on both backends (`conformance.rs`).

mod accounts_court;
mod alerting_status;
