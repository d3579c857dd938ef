//! Who is calling: the [`Caller`] extractor.
//!
//! A request carries either a session token (from `POST /api/v1/auth/login`) or the
//! bootstrap administrator token from the configuration, as `Authorization: Bearer`, or as
//! `access_token` in the query on the two live streams only ([`QUERY_TOKEN_PATHS`]), where
//! a browser's EventSource and WebSocket cannot set headers. Elsewhere a token in the query
//! is ignored: URLs end up in logs, proxies and browser history. The administrator
//! token acts as the administrator role only (accounts, no case data), so that a fresh
//! server can create its first accounts. Whether the caller may do anything is decided
//! later, in [`crate::privacy::authz`].

use crate::AppState;
use crate::http::error::{ApiError, ErrorCode};
use access::{AccountId, Principal, Role, SessionToken};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The account id the bootstrap administrator token acts as in the access log.
pub const BOOTSTRAP_ADMIN: AccountId = AccountId(0);

/// The idle clock of a session is written at most this often, so that a console polling
/// every few seconds does not turn every read into a write.
const TOUCH_EVERY_S: i64 = 60;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// SHA-256 of the session token; `None` for the bootstrap administrator token.
    pub session: Option<[u8; 32]>,
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, msg)
}

/// The routes where a browser cannot send an `Authorization` header, and only these, take the
/// token as `?access_token=` (issue 17).
pub const QUERY_TOKEN_PATHS: [&str; 2] = ["/api/v1/live", "/api/v1/live/ws"];

/// The bearer token of a request, from the header, or on [`QUERY_TOKEN_PATHS`] from the
/// `access_token` query parameter.
pub fn request_token(parts: &Parts) -> Option<String> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string());
    let query_allowed = QUERY_TOKEN_PATHS.contains(&parts.uri.path());
    let query = parts.uri.query().filter(|_| query_allowed).and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    header.or(query)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = request_token(parts) else {
            return Err(unauthorized("missing `Authorization: Bearer <token>`"));
        };
        Caller::from_token(&token, state).await
    }
}

/// Whether a request may read the operational figures (`/metrics`, `/healthz`'s details):
/// with the metrics scraper's token, the administrator token or an administrator's session.
/// Those figures move with every stored fix and alert, so on a server with few cases they
/// would tell anyone, the offender included, when she is near him (issue 17).
pub async fn may_read_operations(parts: &Parts, state: &AppState) -> bool {
    let Some(token) = request_token(parts) else {
        return false;
    };
    if state
        .metrics_token
        .as_deref()
        .is_some_and(|m| constant_time_eq(token.as_bytes(), m.as_bytes()))
    {
        return true;
    }
    matches!(
        Caller::from_token(&token, state).await,
        Ok(c) if c.principal.role == Role::Administrator
    )
}

impl Caller {
    /// The caller a bearer token stands for.
    pub async fn from_token(token: &str, state: &AppState) -> Result<Caller, ApiError> {
        if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
            return Ok(Caller {
                principal: Principal {
                    account: BOOTSTRAP_ADMIN,
                    role: Role::Administrator,
                    person: None,
                },
                session: None,
            });
        }
        let token = SessionToken::parse(token).map_err(|_| unauthorized("invalid token"))?;
        let hash = token.hash();
        let t = state.clock.now();
        let session = state
            .store
            .session(hash)
            .await?
            .ok_or_else(|| unauthorized("invalid token"))?;
        session
            .check(t)
            .map_err(|e| unauthorized(&format!("{e}; log in again")))?;
        let account = state
            .store
            .account(session.account)
            .await?
            .filter(|a| !a.disabled)
            .ok_or_else(|| unauthorized("account disabled"))?;
        if t >= session.last_used_at.plus_secs(TOUCH_EVERY_S) {
            state.store.touch_session(hash, t).await?;
        }
        Ok(Caller {
            principal: Principal {
                account: account.id,
                role: session.role,
                person: account.person,
            },
            session: Some(hash),
        })
    }
}
