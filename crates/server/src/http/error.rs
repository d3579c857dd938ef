//! The API's one error table: every error a client can see has a stable code, an HTTP status
//! and a message. Internal errors are logged with an id and never shown in detail.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Stable, documented error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    InvalidField,
    CoordinatesOutOfRange,
    TimestampInFuture,
    BodyTooLarge,
    BatchTooLarge,
    Unauthorized,
    Forbidden,
    LoginLocked,
    UnknownDevice,
    NotFound,
    Conflict,
    /// The app asked to report for her phone, but she owns no device to report as.
    NoOwnDevice,
    InvalidReference,
    Unavailable,
    UpgradeRequired,
    /// A request the router could not read: a path segment that is not a number, a query it
    /// cannot parse.
    InvalidRequest,
    MethodNotAllowed,
    UnsupportedMediaType,
    Internal,
}

impl ErrorCode {
    /// The table: code → (string, HTTP status).
    pub const fn spec(self) -> (&'static str, StatusCode) {
        use ErrorCode::*;
        match self {
            InvalidJson => ("invalid_json", StatusCode::BAD_REQUEST),
            InvalidField => ("invalid_field", StatusCode::UNPROCESSABLE_ENTITY),
            CoordinatesOutOfRange => ("coordinates_out_of_range", StatusCode::UNPROCESSABLE_ENTITY),
            TimestampInFuture => ("timestamp_in_future", StatusCode::UNPROCESSABLE_ENTITY),
            BodyTooLarge => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            BatchTooLarge => ("batch_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            Forbidden => ("forbidden", StatusCode::FORBIDDEN),
            LoginLocked => ("login_locked", StatusCode::TOO_MANY_REQUESTS),
            UnknownDevice => ("unknown_device", StatusCode::NOT_FOUND),
            NotFound => ("not_found", StatusCode::NOT_FOUND),
            Conflict => ("conflict", StatusCode::CONFLICT),
            NoOwnDevice => ("no_own_device", StatusCode::CONFLICT),
            InvalidReference => ("invalid_reference", StatusCode::UNPROCESSABLE_ENTITY),
            Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            UpgradeRequired => ("upgrade_required", StatusCode::UPGRADE_REQUIRED),
            InvalidRequest => ("invalid_request", StatusCode::BAD_REQUEST),
            MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::InvalidField,
        ErrorCode::CoordinatesOutOfRange,
        ErrorCode::TimestampInFuture,
        ErrorCode::BodyTooLarge,
        ErrorCode::BatchTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::LoginLocked,
        ErrorCode::UnknownDevice,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::NoOwnDevice,
        ErrorCode::InvalidReference,
        ErrorCode::Unavailable,
        ErrorCode::UpgradeRequired,
        ErrorCode::InvalidRequest,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Internal,
    ];
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `coordinates_out_of_range`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// An internal failure: logged in full with an incident id; the client sees only the id.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let incident: u64 = rand::random();
        tracing::error!(incident = format!("{incident:016x}"), error = %err, "internal error");
        ApiError::new(
            ErrorCode::Internal,
            format!("internal error (incident {incident:016x})"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code.spec();
        metrics::counter!("bulwark_api_errors_total", "code" => code).increment(1);
        (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message: self.message,
                },
            }),
        )
            .into_response()
    }
}

/// The framework's own rejections (a path segment that is not a number, an unparsable query,
/// a wrong method or content type) are plain text; this answers them with the error table's
/// body instead, keeping their status, so every error a client sees has a code (found by
/// schemathesis: `GET /api/v1/orders/9223372036854775808/versions` answered text).
pub async fn json_rejections(response: Response) -> Response {
    let code = match response.status() {
        StatusCode::BAD_REQUEST => ErrorCode::InvalidRequest,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidField,
        _ => return response,
    };
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are one short sentence; a longer body is cut, never buffered whole.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let mut out = ApiError::new(code, text).into_response();
    if let Some(allow) = parts.headers.get(axum::http::header::ALLOW) {
        out.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    out
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        use store::StoreError as S;
        match e {
            S::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            S::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            S::InvalidReference(m) => ApiError::new(ErrorCode::InvalidReference, m),
            S::Closed => ApiError::new(ErrorCode::Unavailable, "the server is shutting down"),
            // The database is unreachable (PostgreSQL restarting, network cut): nothing was
            // stored or acknowledged, and retrying later is the right answer, not a bug
            // report. Where it could not be reached stays in the server's log.
            S::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the store is unavailable; nothing was stored, retry later",
                )
            }
            // The store refused a read its access token does not cover (a device in no
            // case read with an intake decision): refused, as the access rules would.
            S::NotAuthorized(m) => {
                tracing::warn!(error = %m, "store refused a read its access decision does not cover");
                ApiError::new(ErrorCode::Forbidden, "no access decision covers this data")
            }
            other => ApiError::internal(other),
        }
    }
}

/// Parses a JSON body into `T`, mapping every failure to a clear client error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            ErrorCode::InvalidField
        } else {
            ErrorCode::InvalidJson
        };
        ApiError::new(code, format!("request body: {e}"))
    })
}

/// A JSON request body, read and parsed with the table's answers: over the size limit
/// `body_too_large` (413), a broken stream or bad JSON `invalid_json`, a wrong field
/// `invalid_field`. As the last extractor, it is the handler's first step.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Maps the body extractor's failure (size limit, broken stream) to the table.
pub fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::BodyTooLarge, e.body_text())
    } else {
        ApiError::new(ErrorCode::InvalidJson, e.body_text())
    }
}
