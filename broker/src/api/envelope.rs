//! Vault's response envelope and error body, and the one place errors
//! become status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine::EngineError;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The message (never a secret).
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        Self::new(status, e.to_string())
    }
}

impl From<crate::lease::LeaseError> for ApiError {
    fn from(e: crate::lease::LeaseError) -> Self {
        EngineError::from(e).into()
    }
}

/// `{"errors": [message]}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "errors": [message.into()] }))).into_response()
}

fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A 200 with `data` in Vault's envelope.
pub(crate) fn data(data: Value) -> Response {
    secret(String::new(), 0, false, data)
}

/// A 200 for a leased secret.
pub(crate) fn secret(
    lease_id: String,
    lease_duration: i64,
    renewable: bool,
    data: Value,
) -> Response {
    Json(json!({
        "request_id": request_id(),
        "lease_id": lease_id,
        "lease_duration": lease_duration,
        "renewable": renewable,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
    }))
    .into_response()
}

/// A 204, as Vault answers writes that return nothing.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
