//! Vault's response envelope and error body, and the one place errors
//! become status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::framework::{Error, Reply};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The message (never a secret).
    pub message: String,
    /// For a 429: when to try again.
    pub retry_after: Option<std::time::Duration>,
    /// For a 405: the methods the path takes (RFC 9110 asks for them).
    pub allow: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            allow: None,
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
        if let Some(allow) = self.allow
            && let Ok(value) = axum::http::HeaderValue::from_str(&allow)
        {
            response
                .headers_mut()
                .insert(axum::http::header::ALLOW, value);
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        Error::from(e).into()
    }
}

/// `{"errors": [message]}` with `status`; an empty message is an empty
/// list, as Vault answers a read of nothing.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let errors: Vec<String> = if message.is_empty() {
        Vec::new()
    } else {
        vec![message]
    };
    (status, Json(json!({ "errors": errors }))).into_response()
}

/// A fresh request id, in the UUID form Vault uses.
pub(crate) fn request_id() -> String {
    crate::core::random_uuid()
}

/// `reply` in Vault's envelope, with the request's id.
pub(crate) fn render(reply: Reply, request_id: &str) -> Response {
    match reply {
        Reply::Envelope {
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
        Reply::Auth { auth } => Json(json!({
            "request_id": request_id,
            "lease_id": "",
            "lease_duration": 0,
            "renewable": false,
            "data": null,
            "wrap_info": null,
            "warnings": null,
            "auth": auth,
        }))
        .into_response(),
        Reply::Wrapped { wrap_info } => Json(json!({
            "request_id": request_id,
            "lease_id": "",
            "lease_duration": 0,
            "renewable": false,
            "data": null,
            "wrap_info": wrap_info,
            "warnings": null,
            "auth": null,
        }))
        .into_response(),
        // Vault's envelope with a 404. `errors` is there too, empty, as in
        // every other 404: the document's error schema holds for it.
        Reply::Missing { data } => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "request_id": request_id,
                "lease_id": "",
                "lease_duration": 0,
                "renewable": false,
                "data": data,
                "wrap_info": null,
                "warnings": null,
                "auth": null,
                "errors": [],
            })),
        )
            .into_response(),
        Reply::Bare(status, body) => (status, Json(body)).into_response(),
        Reply::NoContent => StatusCode::NO_CONTENT.into_response(),
        Reply::Raw { content_type, body } => {
            ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_errors_text_stays_in_the_log() {
        let e = ApiError::from(Error::Internal(
            "storage error: connection to db.internal:5432 refused".into(),
        ))
        .for_client("req-123");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("db.internal"), "{}", e.message);
        assert!(e.message.contains("req-123"), "{}", e.message);
        // Other errors are the client's to act on, and keep their text.
        let e =
            ApiError::from(Error::Unavailable("the database is down".into())).for_client("req-124");
        assert_eq!(e.message, "the database is down");
        let e = ApiError::bad_request("ttl: too long").for_client("req-125");
        assert_eq!(e.message, "ttl: too long");
    }
}
