//! The HTTP API: Vault's paths, envelope and status codes for the subset
//! the broker implements, so Vault clients work unchanged.
//!
//! This layer only maps: it applies the rate limit, parses the body,
//! authenticates the token, has the audit log take the request (and refuses
//! it when no device can), dispatches by path to `sys` handlers or the
//! mount's engine, has the audit log take the response, and turns results
//! into Vault's envelope and errors into `{"errors": [...]}`. It must never
//! put a secret in an error or a log line, nor answer what the audit log
//! did not take.

mod audit;
mod envelope;
mod leases;
mod limits;
mod mounts;
mod openapi;
mod pki;
mod policies;
mod seal;
mod secrets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value};

pub use envelope::ApiError;
use envelope::{Reply, request_id};
pub use limits::{Quota, RateLimits};

use crate::audit::{AuditAuth, AuditRequest, AuditResponse};
use crate::core::{Core, MountEntry};
use crate::server::ServeOptions;

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

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Write => "update",
            Self::Delete => "delete",
        }
    }
}

/// A parsed request, as handlers see it. `Debug` leaves the body out: it
/// may hold a password.
pub(crate) struct Request {
    pub(crate) op: Operation,
    pub(crate) path: String,
    pub(crate) body: Map<String, Value>,
    /// The mount serving `path` (looked up once, in [`dispatch`]): its
    /// path, entry, and the rest of the request path.
    pub(crate) mount: Option<(String, MountEntry, String)>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("op", &self.op)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct ApiState {
    core: Arc<Core>,
    limiters: Arc<limits::Limiters>,
    body_read_timeout: std::time::Duration,
}

/// The router for `/v1/…`. Each request needs a `ConnectInfo<SocketAddr>`
/// extension ([`crate::listener::serve`] adds it; so does
/// `into_make_service_with_connect_info::<SocketAddr>()`): rate limits and
/// request logs go by the client's address.
pub fn router(core: Arc<Core>, options: &ServeOptions) -> Router {
    Router::new()
        .route("/v1/{*path}", any(handle))
        .with_state(ApiState {
            core,
            limiters: Arc::new(limits::Limiters::new(&options.rate_limits)),
            body_read_timeout: options.listener.body_read_timeout,
        })
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

fn operation(method: &Method, list: bool) -> Option<Operation> {
    Some(match method.as_str() {
        "GET" if list => Operation::List,
        "GET" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" | "PATCH" => Operation::Write,
        "DELETE" => Operation::Delete,
        _ => return None,
    })
}

async fn handle(
    State(state): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = request_id();
    let path = path.trim_matches('/').to_owned();
    let op = if method == Method::HEAD && path == "sys/health" {
        // Load balancers check the status alone; the server drops the body.
        Some(Operation::Read)
    } else {
        operation(&method, query.get("list").is_some_and(|v| v == "true"))
    };
    let result = match op {
        Some(op) => {
            let call = Call {
                op,
                path: &path,
                query: &query,
                headers: &headers,
                request_id: &request_id,
                remote,
            };
            dispatch(&state, call, body).await
        }
        None => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation",
        )),
    };
    // One structured line per request. Never the body, never a header:
    // either may hold a token or a credential.
    let elapsed_us = started.elapsed().as_micros() as u64;
    let op = op.map_or("unsupported", Operation::as_str);
    let status = match &result {
        Ok(reply) => reply.status().as_u16(),
        Err(e) => e.status.as_u16(),
    };
    crate::metrics::metrics().request(op, status);
    match result {
        Ok(reply) => {
            let lease_id = reply.lease_id().unwrap_or_default().to_owned();
            tracing::info!(%request_id, op, %path, %remote, status, elapsed_us, %lease_id, "request");
            reply.render(&request_id)
        }
        Err(e) => {
            if e.status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(%request_id, op, %path, %remote, status, elapsed_us, error = %e.message, "internal error");
            } else if e.status.is_server_error() {
                tracing::warn!(%request_id, op, %path, %remote, status, elapsed_us, error = %e.message, "request failed");
            } else {
                tracing::info!(%request_id, op, %path, %remote, status, elapsed_us, error = %e.message, "request refused");
            }
            e.for_client(&request_id).into_response()
        }
    }
}

/// What a request asks, before its body is read.
struct Call<'a> {
    op: Operation,
    path: &'a str,
    query: &'a std::collections::HashMap<String, String>,
    headers: &'a HeaderMap,
    request_id: &'a str,
    remote: SocketAddr,
}

/// Reads a request body, at most [`MAX_BODY_BYTES`] of it, within
/// `timeout`: a client sending a byte a minute does not hold a task forever.
async fn read_body(body: Body, timeout: std::time::Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            })
        }
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {timeout:?}"),
        )),
    }
}

async fn dispatch(state: &ApiState, call: Call<'_>, body: Body) -> Result<Reply, ApiError> {
    let Call {
        op,
        path,
        query,
        headers,
        request_id,
        remote,
    } = call;
    if path == "sys/health" || path == "sys/seal-status" || path == "sys/init" {
        // Unauthenticated, unaudited and never rate limited: load balancers
        // and clients' start-up checks poll them.
        return match op {
            Operation::Read if path == "sys/health" => seal::health(&state.core, query),
            // A broker that serves is initialized (`broker operator init` came first).
            Operation::Read if path == "sys/init" => Ok(Reply::Bare(
                StatusCode::OK,
                serde_json::json!({ "initialized": true }),
            )),
            Operation::Read => Ok(seal::seal_status(&state.core)),
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("unsupported operation on {path}"),
            )),
        };
    }
    if state.core.is_sealed() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker is sealed; restart it to unseal",
        ));
    }
    // The body is read (bounded in size and time) before any answer, even a
    // refusal: a server that answers while the client is still sending
    // closes on unread bytes, and the client sees a reset, not the answer.
    // It is parsed only once the request has passed its budget.
    let body = read_body(body, state.body_read_timeout).await?;
    let core = &state.core;
    let auth = match token(headers) {
        Some(t) if core.is_root_token(t).await => Some(AuditAuth {
            client_token: zeroize::Zeroizing::new(t.to_owned()),
            accessor: String::new(),
            display_name: "root".into(),
            policies: vec!["root".into()],
            token_ttl: 0,
        }),
        _ => None,
    };
    let started = Instant::now();
    let mount = if path.starts_with("sys/") {
        None
    } else {
        core.route(path).await
    };
    let public = mount
        .as_ref()
        .is_some_and(|(_, entry, rest)| op == Operation::Read && pki::is_public(&entry.kind, rest));
    // Budgets are spent after authentication: a request without a token
    // spends only its address's refusal budget, and past it is turned away
    // before the audit device writes a line for it.
    if auth.is_some() || public {
        state
            .limiters
            .admit(remote.ip())
            .map_err(ApiError::too_many_requests)?;
    } else {
        state
            .limiters
            .admit_refusal(remote.ip())
            .map_err(ApiError::too_many_requests)?;
    }
    let body = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::bad_request(
                    "the request body must be a JSON object",
                ));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "failed to parse JSON input: {e}"
                )));
            }
        }
    };
    let (mount_type, mount_accessor) = match &mount {
        _ if path.starts_with("sys/") => (Some("system".to_owned()), None),
        Some((_, entry, _)) => (Some(entry.kind.clone()), Some(entry.accessor.clone())),
        None => (None, None),
    };
    let mount_path = mount.as_ref().map(|(m, _, _)| m.clone());
    let audited = AuditRequest {
        id: request_id.to_owned(),
        operation: op.as_str(),
        path: path.to_owned(),
        mount_type,
        mount_accessor,
        remote,
        data: body.clone(),
    };
    // Fail closed: nothing is served that the audit log has not taken.
    let audit = core.audit();
    audit
        .log_request(auth.as_ref(), &audited)
        .await
        .map_err(ApiError::from)?;
    let result = match &auth {
        None if !public => Err(ApiError::new(StatusCode::FORBIDDEN, "permission denied")),
        _ => {
            route(
                core,
                Request {
                    op,
                    path: path.to_owned(),
                    body,
                    mount,
                },
            )
            .await
        }
    };
    let response = match &result {
        Ok(reply) => reply.audit_response(),
        Err(e) => AuditResponse {
            status: e.status.as_u16(),
            error: Some(e.message.clone()),
            ..AuditResponse::default()
        },
    };
    if response.credential
        && let Some(mount) = &mount_path
    {
        crate::metrics::metrics()
            .issued(mount.trim_end_matches('/'), started.elapsed().as_secs_f64());
    }
    if let Err(e) = audit.log_response(auth.as_ref(), &audited, &response).await {
        // A credential must not leave unaudited: take it back.
        if response.credential
            && let Some(lease_id) = &response.lease_id
            && let Err(revoke) = core.leases().revoke(lease_id).await
        {
            tracing::error!(lease = %lease_id, error = %revoke, "unaudited credential not yet revoked; the expiration worker retries");
        }
        return Err(e.into());
    }
    result
}

async fn route(core: &Core, request: Request) -> Result<Reply, ApiError> {
    if request.path == "sys/seal" {
        match request.op {
            Operation::Write => Ok(seal::seal(core)),
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "unsupported operation on sys/seal",
            )),
        }
    } else if request.path.starts_with("sys/mounts") {
        mounts::handle(core, request).await
    } else if policies::serves(&request.path) {
        policies::handle(core, request).await
    } else if request.path.starts_with("sys/leases") {
        leases::handle(core, request).await
    } else if let Some(path) = leases::legacy_alias(&request.path) {
        leases::handle(core, Request { path, ..request }).await
    } else if request.path == "sys/audit"
        || request.path.starts_with("sys/audit/")
        || request.path.starts_with("sys/audit-hash/")
        || request.path == "sys/audit-public-key"
    {
        audit::handle(core, request).await
    } else if request.path == "sys/metrics" {
        match request.op {
            Operation::Read => {
                let metrics = crate::metrics::metrics();
                metrics.set_leases(&core.leases().counts().await?);
                Ok(Reply::Raw {
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: metrics.encode().into_bytes(),
                })
            }
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "unsupported operation on sys/metrics",
            )),
        }
    } else if request.path == openapi::PATH {
        match request.op {
            Operation::Read => Ok(Reply::Raw {
                content_type: "application/json",
                body: openapi::cached_document(&core.mounts().await)
                    .map(|doc| doc.to_vec())
                    .map_err(|e| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("cannot write the document: {e}"),
                        )
                    })?,
            }),
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "unsupported operation on the OpenAPI document",
            )),
        }
    } else {
        secrets::handle(core, request).await
    }
}
