//! Log-in, log-out, accounts, case assignments and the access log over HTTP.
//!
//! Passwords are checked with Argon2id on a blocking thread (it takes tens of milliseconds
//! and 19 MiB by design). Failed log-ins back off their source and the username at that
//! source ([`access::LoginGuard`]), never the account everywhere;
//! staff who enrolled TOTP must send a current code. Every log-in, failure and log-out is
//! written to the access log.

use crate::AppState;
use crate::http::error::{ApiError, ErrorBody, ErrorCode, JsonBody};
use crate::privacy::auth::Caller;
use crate::privacy::authz;
use access::{
    AccountId, Action, Attempt, Resource, Role, SessionPolicy, SessionRecord, SessionToken,
};
use audit::{AuditAction, AuditEntry, Outcome, Subject};
use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use domain::{CaseId, PersonId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The 6-digit code, for accounts that enrolled TOTP.
    pub totp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Opaque session token: send it as `Authorization: Bearer`. Shown once.
    pub token: String,
    pub expires_at: String,
    pub account: AccountDto,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountDto {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub person_id: Option<i64>,
    pub totp_enrolled: bool,
}

impl From<&store::Account> for AccountDto {
    fn from(a: &store::Account) -> Self {
        AccountDto {
            id: a.id.0,
            username: a.username.clone(),
            role: a.role.as_str().into(),
            person_id: a.person.map(|p| p.0),
            totp_enrolled: a.totp_secret.is_some(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    /// One of `administrator`, `monitoring_officer`, `police`, `court_clerk`, `judge`,
    /// `victim`, `offender`, `auditor`.
    pub role: String,
    /// The person a victim or offender account belongs to.
    pub person_id: Option<i64>,
    /// Enrol TOTP: the secret is returned once, as hex.
    #[serde(default)]
    pub totp: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAccount {
    pub account: AccountDto,
    /// Hex TOTP secret, present only when `totp` was requested. Shown once.
    pub totp_secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssignment {
    pub case_id: i64,
}

fn login_failed() -> ApiError {
    // One message for unknown user, wrong password and wrong code: do not tell which.
    ApiError::new(ErrorCode::Unauthorized, "wrong username, password or code")
}

fn login_entry(account: AccountId, role: &str, action: AuditAction, details: String) -> AuditEntry {
    AuditEntry {
        actor: audit::Actor {
            kind: audit::ActorKind::Account,
            id: account.0,
            role: role.into(),
        },
        action,
        subject: Subject::default(),
        purpose: None,
        outcome: if action == AuditAction::LoginFailed {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        details,
    }
}

/// Logs in with a username and password (and a TOTP code for staff who enrolled one).
///
/// Throttled by source address and by username at that source ([`access::LoginGuard`]),
/// never by account alone: someone else's failures cannot lock an officer out of duty from
/// her own workstation, and an unknown username takes exactly the path of a known one (the
/// same checks, one Argon2id verification, one access-log record, the same answers).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "access", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let source = access::source_key(remote.ip());
    if let Attempt::Locked { until } = s.login_guard().check(&source, &req.username, s.clock.now())
    {
        metrics::counter!("bulwark_login_throttled_total").increment(1);
        return Err(ApiError::new(
            ErrorCode::LoginLocked,
            format!(
                "too many failed log-ins from this address; try again after {}",
                crate::http::dto::ts(until)
            ),
        ));
    }
    let account = s.store.account_by_username(req.username.clone()).await?;
    // An unknown username is verified against a dummy hash: the same work and time class.
    let phc = account
        .as_ref()
        .map_or_else(|| dummy_phc().to_owned(), |a| a.password_phc.clone());
    let pw = req.password;
    let verified = tokio::task::spawn_blocking(move || access::verify_password(&pw, &phc))
        .await
        .map_err(ApiError::internal)?;
    let t = s.clock.now();
    let ok = match &account {
        None => None,
        Some(account) => {
            let password_ok = verified.map_err(ApiError::internal)?;
            let second_factor_ok = match &account.totp_secret {
                None => true,
                Some(secret) => match req
                    .totp
                    .as_deref()
                    .and_then(|code| access::totp::verify(secret, code, t, account.totp_last_step))
                {
                    // The store refuses a step not newer than the last one (two racing
                    // log-ins).
                    Some(step) if password_ok => s.store.use_totp_step(account.id, step).await?,
                    _ => false,
                },
            };
            (password_ok && second_factor_ok && !account.disabled).then_some(account)
        }
    };
    let Some(account) = ok else {
        let attempt = s.login_guard().record_failure(&source, &req.username, t);
        // Recorded like any failure (guessing usernames is an attack too); an unknown
        // username under account 0, and no account is created.
        let entry = match &account {
            Some(a) => login_entry(
                a.id,
                a.role.as_str(),
                AuditAction::LoginFailed,
                format!("{attempt:?}"),
            ),
            None => {
                let name: String = req.username.chars().take(64).collect();
                login_entry(
                    AccountId(0),
                    "unknown",
                    AuditAction::LoginFailed,
                    format!("unknown username {name:?}; {attempt:?}"),
                )
            }
        };
        authz::append(&s, vec![entry]).await?;
        return Err(login_failed());
    };
    s.login_guard().record_success(&source, &req.username);
    let token = SessionToken::generate().map_err(ApiError::internal)?;
    let record = SessionRecord::new(
        &token,
        account.id,
        account.role,
        SessionPolicy::default(),
        t,
    );
    let expires_at = record.expires_at;
    s.store.insert_session(record).await?;
    authz::append(
        &s,
        vec![login_entry(
            account.id,
            account.role.as_str(),
            AuditAction::Login,
            String::new(),
        )],
    )
    .await?;
    Ok(Json(LoginResponse {
        token: token.expose(),
        expires_at: crate::http::dto::ts(expires_at),
        account: account.into(),
    }))
}

/// An Argon2id hash verified against when the username is unknown, so that both paths cost
/// the same (computed once, on a blocking thread, at the first such log-in).
fn dummy_phc() -> &'static str {
    static PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PHC.get_or_init(|| {
        access::hash_password_with_salt("no such account here", &[7; 16]).unwrap_or_default()
    })
}

/// Ends the caller's session (idempotent).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "access", security(("staff_token" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, c: Caller) -> Result<StatusCode, ApiError> {
    if let Some(hash) = c.session {
        s.store.revoke_session(hash, s.clock.now()).await?;
        authz::append(
            &s,
            vec![login_entry(
                c.principal.account,
                c.principal.role.as_str(),
                AuditAction::Logout,
                String::new(),
            )],
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub account_id: i64,
    pub role: String,
    pub person_id: Option<i64>,
    /// Cases the caller's grants cover (assigned, own).
    pub case_ids: Vec<i64>,
}

/// Who the caller is, and which cases they may work on.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "access", security(("staff_token" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, c: Caller) -> Result<Json<Me>, ApiError> {
    let g = authz::grants(&s, &c).await?;
    Ok(Json(Me {
        account_id: c.principal.account.0,
        role: c.principal.role.as_str().into(),
        person_id: c.principal.person.map(|p| p.0),
        case_ids: authz::granted_cases(&g).into_iter().map(|c| c.0).collect(),
    }))
}

/// Creates an account (administrators only).
#[utoipa::path(post, path = "/api/v1/accounts", tag = "access", security(("staff_token" = [])),
    request_body = NewAccount,
    responses((status = 201, body = CreatedAccount), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_account(
    State(s): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<NewAccount>,
) -> Result<(StatusCode, Json<CreatedAccount>), ApiError> {
    authz::check(
        &s,
        &c,
        Action::ChangeAccess,
        Resource::default(),
        &format!("create account {:?} as {}", req.username, req.role),
    )
    .await?;
    let role = Role::parse(&req.role)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidField, "role: unknown role"))?;
    let username = req.username.trim().to_string();
    if username.is_empty() || username.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "username: 1 to 64 characters",
        ));
    }
    let needs_person = matches!(role, Role::Victim | Role::Offender);
    if needs_person != req.person_id.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "person_id: required for victim and offender accounts, and only for them",
        ));
    }
    let pw = req.password;
    let phc = tokio::task::spawn_blocking(move || access::hash_password(&pw))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            access::PasswordError::TooShort | access::PasswordError::TooLong => {
                ApiError::new(ErrorCode::InvalidField, format!("password: {e}"))
            }
            other => ApiError::internal(other),
        })?;
    let totp_secret = if req.totp {
        let b: [u8; 20] = rand::random();
        Some(b.to_vec())
    } else {
        None
    };
    let account = s
        .store
        .create_account(
            store::NewAccount {
                username,
                role,
                person: req.person_id.map(PersonId),
                password_phc: phc,
                totp_secret: totp_secret.clone(),
            },
            s.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccount {
            account: (&account).into(),
            totp_secret: totp_secret.map(|s| audit::to_hex(&s)),
        }),
    ))
}

/// Every account (administrators only).
#[utoipa::path(get, path = "/api/v1/accounts", tag = "access", security(("staff_token" = [])),
    responses((status = 200, body = [AccountDto]), (status = 403, body = ErrorBody)))]
pub async fn list_accounts(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<AccountDto>>, ApiError> {
    authz::check(
        &s,
        &c,
        Action::ChangeAccess,
        Resource::default(),
        "list accounts",
    )
    .await?;
    let accounts = s.store.list_accounts().await?;
    Ok(Json(accounts.iter().map(Into::into).collect()))
}

/// Assigns a case to a monitoring officer, or to the court clerk or judge handling it
/// (administrators only).
#[utoipa::path(post, path = "/api/v1/accounts/{id}/assignments", tag = "access", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Account id")), request_body = NewAssignment,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn assign_case(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<NewAssignment>,
) -> Result<StatusCode, ApiError> {
    authz::check(
        &s,
        &c,
        Action::ChangeAccess,
        Resource {
            case: Some(CaseId(req.case_id)),
            ..Default::default()
        },
        &format!("assign case {} to account {id}", req.case_id),
    )
    .await?;
    let account = s
        .store
        .account(AccountId(id))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such account"))?;
    if !matches!(
        account.role,
        Role::MonitoringOfficer | Role::CourtClerk | Role::Judge
    ) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "only monitoring officers, court clerks and judges are assigned cases",
        ));
    }
    s.store
        .assign_case(AccountId(id), CaseId(req.case_id), s.clock.now())
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound(m) => ApiError::new(ErrorCode::InvalidReference, m),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disables an account and ends its sessions at once (administrators only); for a person who
/// left, or an account suspected of misuse. Its history stays in the access log.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/disable", tag = "access", security(("staff_token" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_account(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    authz::check(
        &s,
        &c,
        Action::ChangeAccess,
        Resource::default(),
        &format!("disable account {id}"),
    )
    .await?;
    s.store
        .disable_account(AccountId(id), s.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Records with a sequence number greater than this (default 0).
    pub after: Option<u64>,
    /// At most this many (default 500, at most 5,000).
    pub limit: Option<usize>,
}

/// The access log (auditors only), as the JSON form of each record with its chain hashes.
#[utoipa::path(get, path = "/api/v1/audit", tag = "access", security(("staff_token" = [])),
    params(AuditQuery),
    responses((status = 200, description = "Access-log records", body = [Object]), (status = 403, body = ErrorBody)))]
pub async fn audit_log(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(500).min(5_000);
    authz::check(
        &s,
        &c,
        Action::ReadAuditLog,
        Resource::default(),
        &format!("after {after} limit {limit}"),
    )
    .await?;
    let rows = s.store.audit_records(after, limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(seq, r)| match r {
                Ok(rec) => {
                    serde_json::from_str(&rec.to_json_line()).unwrap_or(serde_json::Value::Null)
                }
                Err(e) => serde_json::json!({"seq": seq, "untrusted": e.to_string()}),
            })
            .collect(),
    ))
}
