//! The HTTP API: Vault's paths, envelope and status codes for the subset
//! the broker implements, so Vault clients work unchanged.
//!
//! This layer only maps: it authenticates the token, parses the body,
//! dispatches by path to `sys` handlers or the mount's engine, and turns
//! results into Vault's envelope and errors into `{"errors": [...]}`.
//! It must never put a secret in an error or a log line.

mod envelope;
mod leases;
mod mounts;
mod secrets;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value};

pub use envelope::ApiError;
use envelope::error;

use crate::core::Core;

/// The largest request body accepted (Vault's default is 32 MiB; ours is
/// smaller because nothing we take is large).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What a request asks to do, from its method (and `?list=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Read,
    List,
    Write,
    Delete,
}

/// A parsed request, as handlers see it.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) op: Operation,
    pub(crate) path: String,
    pub(crate) body: Map<String, Value>,
}

/// The router for `/v1/…`.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/v1/{*path}", any(handle))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(core)
}

fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t);
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

async fn handle(
    State(core): State<Arc<Core>>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    let path = path.trim_matches('/').to_owned();
    let list = query.get("list").is_some_and(|v| v == "true");
    let op = match method.as_str() {
        "GET" if list => Operation::List,
        "GET" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" | "PATCH" => Operation::Write,
        "DELETE" => Operation::Delete,
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation"),
    };
    if path == "sys/health" {
        return mounts::health();
    }
    if !token(&headers).is_some_and(|t| core.is_root_token(t)) {
        return error(StatusCode::FORBIDDEN, "permission denied");
    }
    let body = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the request body must be a JSON object",
                );
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("failed to parse JSON input: {e}"),
                );
            }
        }
    };
    let request = Request { op, path, body };
    let result = if request.path.starts_with("sys/mounts") {
        mounts::handle(&core, request).await
    } else if request.path.starts_with("sys/leases") {
        leases::handle(&core, request).await
    } else {
        secrets::handle(&core, request).await
    };
    result.unwrap_or_else(ApiError::into_response)
}
