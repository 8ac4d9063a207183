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
    /// For a 429: when to try again.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn too_many_requests(wait: std::time::Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "request rate limit exceeded: slow down and retry",
            )
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// What the client is told. An internal error's text is the broker's
    /// business (a storage failure may name a host or a table): the client
    /// gets the request id to quote, and the log line under that id has
    /// the text.
    pub(crate) fn for_client(self, request_id: &str) -> Self {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            Self::new(
                self.status,
                format!("internal error; the broker's log has it under request id {request_id}"),
            )
        } else {
            self
        }
    }

    pub(crate) fn into_response(self) -> Response {
        let mut response = error(self.status, self.message);
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: "0" would invite an immediate retry.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.max(1).into());
        }
        response
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

/// A fresh request id, in the UUID form Vault uses.
pub(crate) fn request_id() -> String {
    crate::core::random_uuid()
}

/// What a handler answers; [`Reply::render`] wraps it in Vault's envelope
/// with the request's id. `Debug` shows no data: it may be a credential.
pub(crate) enum Reply {
    /// A 200 with `data` (and a lease, for a leased secret).
    Envelope {
        lease_id: String,
        lease_duration: i64,
        renewable: bool,
        data: Value,
        /// `data` hands out a credential or a key: its audit entry must be
        /// on disk before it leaves, and it counts as an issuance.
        credential: bool,
    },
    /// A body outside the envelope (`sys/health`, the OpenAPI document),
    /// with its status: `sys/health` answers its state in the status code.
    Bare(StatusCode, Value),
    /// A 204, as Vault answers writes that return nothing.
    NoContent,
    /// A 200 with a body that is not JSON (a PEM or DER certificate or CRL).
    Raw {
        content_type: &'static str,
        body: Vec<u8>,
    },
}

impl Reply {
    /// The lease this reply hands out, if any.
    pub(crate) fn lease_id(&self) -> Option<&str> {
        match self {
            Self::Envelope { lease_id, .. } if !lease_id.is_empty() => Some(lease_id),
            _ => None,
        }
    }

    /// What the audit log records of this reply.
    pub(crate) fn audit_response(&self) -> crate::audit::AuditResponse {
        let mut response = crate::audit::AuditResponse {
            status: self.status().as_u16(),
            ..Default::default()
        };
        if let Self::Envelope {
            lease_id,
            lease_duration,
            data,
            credential,
            ..
        } = self
        {
            response.data = (!data.is_null()).then(|| data.clone());
            response.lease_id = (!lease_id.is_empty()).then(|| lease_id.clone());
            response.lease_duration = *lease_duration;
            response.credential = *credential;
        }
        response
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NoContent => StatusCode::NO_CONTENT,
            Self::Bare(status, _) => *status,
            _ => StatusCode::OK,
        }
    }

    pub(crate) fn render(self, request_id: &str) -> Response {
        match self {
            Self::Envelope {
                lease_id,
                lease_duration,
                renewable,
                data,
                ..
            } => Json(json!({
                "request_id": request_id,
                "lease_id": lease_id,
                "lease_duration": lease_duration,
                "renewable": renewable,
                "data": data,
                "wrap_info": null,
                "warnings": null,
                "auth": null,
            }))
            .into_response(),
            Self::Bare(status, body) => (status, Json(body)).into_response(),
            Self::NoContent => StatusCode::NO_CONTENT.into_response(),
            Self::Raw { content_type, body } => {
                ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
            }
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status())
            .field("lease_id", &self.lease_id())
            .finish_non_exhaustive()
    }
}

/// A 200 with `data` in Vault's envelope.
pub(crate) fn data(data: Value) -> Reply {
    Reply::Envelope {
        lease_id: String::new(),
        lease_duration: 0,
        renewable: false,
        data,
        credential: false,
    }
}

/// A 200 handing out a credential or a key without a lease (a certificate
/// of a role without `generate_lease`, an exported CA key).
pub(crate) fn credential(data: Value) -> Reply {
    Reply::Envelope {
        lease_id: String::new(),
        lease_duration: 0,
        renewable: false,
        data,
        credential: true,
    }
}

/// A 200 for a lease: a new credential when `data` holds one, or a renewal.
pub(crate) fn secret(lease_id: String, lease_duration: i64, renewable: bool, data: Value) -> Reply {
    Reply::Envelope {
        lease_id,
        lease_duration,
        renewable,
        credential: !data.is_null(),
        data,
    }
}

/// A 204.
pub(crate) fn no_content() -> Reply {
    Reply::NoContent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_errors_text_stays_in_the_log() {
        let e = ApiError::from(EngineError::Internal(
            "storage error: connection to db.internal:5432 refused".into(),
        ))
        .for_client("req-123");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("db.internal"), "{}", e.message);
        assert!(e.message.contains("req-123"), "{}", e.message);
        // Other errors are the client's to act on, and keep their text.
        let e = ApiError::from(EngineError::Unavailable("the database is down".into()))
            .for_client("req-124");
        assert_eq!(e.message, "the database is down");
        let e = ApiError::bad_request("ttl: too long").for_client("req-125");
        assert_eq!(e.message, "ttl: too long");
    }
}
