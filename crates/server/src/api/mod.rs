//! Staff endpoints: set up people, devices, cases and orders; read positions and alerts.
//!
//! Every handler asks [`crate::privacy::authz`] before touching case data, which decides with
//! `access::authorize` and makes the audit record durable first. Who may call what:
//!
//! - intake (`POST` people, devices, cases): administrators (no case exists yet to be
//!   assigned to; see [`authz::intake`]); registry lists (people, devices, unknown devices,
//!   cases): administrators in full, everyone else filtered to the cases they may view;
//! - orders: registered (`POST`) as a change to the case by its assigned officer, listed
//!   per case under `read_orders`;
//! - positions, tracks, alerts, the snapshot and the live stream: per case, by the matrix
//!   in `docs/privacy.md` (tracks need `purpose_code` and `purpose_text`).

pub mod me;

use crate::AppState;
use crate::http::dto::*;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::privacy::auth::Caller;
use crate::privacy::authz::{self, alert_case, outside_any_case};
use access::{Action, Precision, Resource};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use domain::*;
use serde::Deserialize;
use store::Authorized;
use utoipa::IntoParams;

mod monitoring;
mod setup;

// The router names the endpoints as `api::…`.
pub use monitoring::*;
pub use setup::*;
