//! Staff authentication. Until accounts and roles exist, staff present the administrator
//! token (`Authorization: Bearer`, or `access_token` in the query for EventSource, which cannot
//! set headers).

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Proof that the request carries the staff token.
pub struct Staff;

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| s.trim().to_string());
        let query = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        });
        match header.or(query) {
            Some(t) if constant_time_eq(t.as_bytes(), state.admin_token.as_bytes()) => Ok(Staff),
            Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "invalid token")),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <token>`",
            )),
        }
    }
}
