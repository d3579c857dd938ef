//! The server's integration tests, one binary: the real server on port 0, spoken to over real
//! HTTP and real tracker sockets. One harness (`harness`) starts servers and speaks HTTP; each
//! module is one area of the server.
// Tests state their expectations with unwrap and expect; a failed one is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod access;
mod alerts;
mod court;
mod devices;
mod http;
mod ingest;
mod victim;
