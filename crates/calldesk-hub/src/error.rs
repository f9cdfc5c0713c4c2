//! One error type for every handler, and its HTTP mapping: `{"error":{"code","message"}}` with
//! a status that fits. Database and internal errors are logged with detail and answered with a
//! generic message (no SQL or secrets to clients).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calldesk_calls::ControlError;
use calldesk_central::CentralError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("internal error; see the hub log")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Control(e) => match e {
                ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
                ControlError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
                ControlError::NoSuchCall(_) => StatusCode::NOT_FOUND,
                ControlError::NotInCall { .. } | ControlError::NotAnswered { .. } => {
                    StatusCode::CONFLICT
                }
                ControlError::Refused { .. } => StatusCode::BAD_GATEWAY,
                ControlError::Disconnected { .. } => StatusCode::SERVICE_UNAVAILABLE,
                ControlError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
            Self::Control(e) => e.code(),
        }
    }
}

impl From<CentralError> for ApiError {
    fn from(e: CentralError) -> Self {
        match e {
            CentralError::Duplicate { what } | CentralError::Conflict(what) => Self::Conflict(what),
            CentralError::Invalid(m) => Self::BadRequest(m),
            CentralError::NotFound(m) => Self::NotFound(m),
            other => {
                tracing::error!(error = %other, "database error");
                Self::Internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        });
        (self.status(), Json(body)).into_response()
    }
}
