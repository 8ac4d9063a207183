//! The HTTP API: Vault's paths, envelope and status codes for the subset
//! the broker implements, so Vault clients work unchanged.
//!
//! This layer only maps (docs/architecture.md, "A request"): it finds the
//! path in its backend's table (the system's for `sys/`, the mount's
//! engine's otherwise), authenticates the token, applies the rate limits,
//! parses the body, has the audit log take the request (and refuses it
//! when no device can), answers 404, 405 and `?help=1` from the table,
//! calls the handler, has the audit log take the response, and turns
//! results into Vault's envelope and errors into `{"errors": [...]}`. It
//! must never put a secret in an error or a log line, nor answer what the
//! audit log did not take.

mod audit;
mod capabilities;
mod cluster;
mod envelope;
mod leases;
mod limits;
mod mounts;
mod openapi;
mod plugins;
mod policies;
mod route;
mod seal;
mod system;
mod token;
mod wrapping;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

pub use envelope::ApiError;
use envelope::request_id;
pub use limits::{Quota, RateLimits};
use route::{Found, find};

use crate::audit::{AuditAuth, AuditRequest, AuditResponse};
use crate::core::Core;
use crate::framework::openapi::MERGE_PATCH;
use crate::framework::{Access, Caller, Operation, PathInfo, Reply, Request};
use crate::policy::Capability;
use crate::server::ServeOptions;

/// The largest request body accepted (Vault's default is 32 MiB; ours is
/// smaller because nothing we take is large).
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone)]
struct ApiState {
    unsealer: Arc<crate::unseal::Unsealer>,
    limiters: Arc<limits::Limiters>,
    body_read_timeout: std::time::Duration,
}

/// The router for `/v1/…`. Each request needs a `ConnectInfo<SocketAddr>`
/// extension ([`crate::listener::serve`] adds it; so does
/// `into_make_service_with_connect_info::<SocketAddr>()`): rate limits and
/// request logs go by the client's address.
pub fn router(unsealer: Arc<crate::unseal::Unsealer>, options: &ServeOptions) -> Router {
    Router::new()
        .route("/v1/{*path}", any(handle))
        .with_state(ApiState {
            unsealer,
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

// Each argument is one of axum's extractors: what the request brings.
#[allow(clippy::too_many_arguments)]
async fn handle(
    State(state): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    peer: Option<axum::Extension<crate::tls::PeerCertificates>>,
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
        Operation::from_method(
            method.as_str(),
            query.get("list").is_some_and(|v| query_true(v)),
        )
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
                peer: peer.map(|axum::Extension(p)| p.0),
            };
            dispatch(&state, call, body).await
        }
        None => {
            // A method no path takes: say which this one does, if any.
            let found = match state.unsealer.core() {
                Some(core) => find(&core, &path).await.ok().flatten(),
                None => None,
            };
            let info = found.as_ref().and_then(Found::info);
            Err(method_not_allowed(&path, info))
        }
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
            envelope::render(reply, &request_id)
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
    /// The certificate chain the client presented over TLS, if any.
    peer: Option<Peer>,
}

/// A client's certificate chain, leaf first.
type Peer = Arc<Vec<rustls::pki_types::CertificateDer<'static>>>;

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

/// A 405 naming the methods `info`'s path takes in `Allow`.
fn method_not_allowed(path: &str, info: Option<&PathInfo>) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("unsupported operation on {path}"),
    );
    error.allow = info.map(allowed_methods);
    error
}

/// The HTTP methods that reach `info`'s operations, as `Allow` lists them.
fn allowed_methods(info: &PathInfo) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for op in &info.operations {
        let names: &[&str] = match op {
            Operation::Read => &["GET"],
            Operation::List => &["GET", "LIST"],
            Operation::Create | Operation::Update => &["POST", "PUT"],
            Operation::Patch => &["PATCH"],
            Operation::Delete => &["DELETE"],
        };
        for name in names {
            if !methods.contains(name) {
                methods.push(name);
            }
        }
    }
    methods.join(", ")
}

fn no_handler(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no handler for route {path:?}. route entry not found."),
    )
}

/// Parses a body: empty, or a JSON object.
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to parse JSON input: {e}"
        ))),
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
        peer,
    } = call;
    let Some(core) = state.unsealer.core() else {
        let data = if op == Operation::Read {
            Map::new()
        } else {
            parse_body(&read_body(body, state.body_read_timeout).await?)?
        };
        let query = query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        return seal::while_sealed(&state.unsealer, op, path, &query, data).await;
    };
    let core = &core;
    let found = find(core, path).await?;
    let help = query.get("help").is_some_and(|v| query_true(v));
    // GET's query parameters are its data, as in Vault (`sys/health?standbyok=true`).
    let query_data = || -> Map<String, Value> {
        query
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "list" | "help"))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };
    if let Some(found) = &found
        && found.access() == Access::Open
        && !help
    {
        // Unauthenticated, unaudited and never rate limited: load balancers
        // and clients' start-up checks poll these, sealed or not.
        let (Some(info), Some(route)) = (found.info(), &found.route) else {
            return Err(no_handler(path));
        };
        let Some(serving) = info.serving(op) else {
            return Err(method_not_allowed(path, Some(info)));
        };
        let request = Request {
            operation: serving,
            path: path.to_owned(),
            params: route.params.clone(),
            // The open writes (`sys/init`, `sys/unseal`) take a body.
            data: if op == Operation::Read {
                query_data()
            } else {
                parse_body(&read_body(body, state.body_read_timeout).await?)?
            },
            mount: found.mount.clone(),
            caller: Caller::Anonymous,
            remote: remote.ip(),
            peer_certificates: None,
        };
        return found.target.call(core, route.index, &request).await;
    }
    if core.is_sealed() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker is sealed: give key shares to sys/unseal (`broker operator unseal`)",
        ));
    }
    // The body is read (bounded in size and time) before any answer, even a
    // refusal: a server that answers while the client is still sending
    // closes on unread bytes, and the client sees a reset, not the answer.
    // It is parsed only once the request has passed its budget.
    let body = read_body(body, state.body_read_timeout).await?;
    let caller = match token(headers) {
        Some(t) => authenticate(core, t, remote.ip()).await?,
        None => None,
    };
    let auth = caller
        .as_ref()
        .map(|c| audit_auth(c, token(headers).unwrap_or_default()));
    let started = Instant::now();
    let info = found.as_ref().and_then(Found::info);
    let public = info.is_some_and(|i| i.access == Access::Public && i.serving(op).is_some());
    // Budgets are spent after authentication: a request without a token
    // spends only its address's refusal budget, and past it is turned away
    // before the audit device writes a line for it.
    if caller.is_some() || public {
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
    let mut data = parse_body(&body)?;
    // A wrap TTL is read before anything is served: a bad one must not
    // leave a credential made and never handed out.
    let wrap =
        wrap_ttl(headers)?.or((path == "sys/wrapping/wrap").then_some(wrapping::DEFAULT_WRAP_TTL));
    if op == Operation::Read {
        data.extend(query_data());
    }
    // The audit log takes the body whether or not a path serves it.
    let audit_data = data.clone();
    let mut request = found.as_ref().map(|f| Request {
        operation: op,
        path: path.to_owned(),
        params: f
            .route
            .as_ref()
            .map(|r| r.params.clone())
            .unwrap_or_default(),
        data,
        mount: f.mount.clone(),
        caller: caller.clone().unwrap_or(Caller::Anonymous),
        remote: remote.ip(),
        peer_certificates: peer.clone(),
    });
    // A write to a path that tells creates from updates asks whether its
    // object exists, once the caller is known (policies grant the two apart).
    if let (Some(f), Some(route), Some(req)) = (
        &found,
        found.as_ref().and_then(|f| f.route.as_ref()),
        request.as_mut(),
    ) && caller.is_some()
        && op == Operation::Update
        && f.target.exists(core, route.index, req).await? == Some(false)
    {
        req.operation = Operation::Create;
    }
    let operation = request.as_ref().map_or(op, |r| r.operation);
    // Deny by default: the token's policies must grant the operation's
    // capability on the path, and `sudo` too on a root-protected path.
    let allowed = public
        || match &caller {
            None => false,
            Some(caller) => {
                let sudo = info.is_some_and(|i| i.access == Access::Sudo);
                permits(core, caller, path, operation, sudo).await?
            }
        };
    let (mount_type, mount_accessor) = match &found {
        Some(f) => (
            Some(f.mount.kind.clone()),
            (f.mount.kind != "system").then(|| f.mount.accessor.clone()),
        ),
        None => (None, None),
    };
    let audited = AuditRequest {
        id: request_id.to_owned(),
        operation: operation.as_str(),
        path: path.to_owned(),
        mount_type,
        mount_accessor,
        remote,
        data: audit_data,
        clear_fields: info
            .map(PathInfo::clear_fields)
            .unwrap_or_else(|| Arc::new([])),
    };
    // Fail closed: nothing is served that the audit log has not taken.
    let audit = core.audit();
    audit
        .log_request(auth.as_ref(), &audited)
        .await
        .map_err(ApiError::from)?;
    let result = match (&found, request) {
        _ if !allowed => {
            crate::metrics::metrics().denied();
            Err(ApiError::new(StatusCode::FORBIDDEN, "permission denied"))
        }
        (Some(found), Some(request)) => match merge_patch_body(headers, &request, found.info()) {
            Ok(()) => serve(core, found, &request, help).await,
            Err(e) => Err(e),
        },
        _ => Err(no_handler(path)),
    };
    // A response asked to be wrapped goes behind a single-use token: the
    // audit log and the client see only the wrapping.
    let result = match (result, wrap) {
        (Ok(reply), Some(ttl)) => wrapping::wrap(core, reply, ttl, path).await,
        (result, _) => result,
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
        && let Some(found) = &found
    {
        crate::metrics::metrics().issued(found.mount.name(), started.elapsed().as_secs_f64());
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
    // A token's last use ends it, once its request is answered.
    if let Some(Caller::Token(t)) = &caller
        && t.last_use
        && let Err(e) = core.tokens().revoke_tree(&t.entry.accessor).await
    {
        tracing::warn!(error = %e, "a token past its last use is not yet revoked; the expiration worker finishes it");
    }
    result
}

/// Who holds `token`: the root token, a live token of the store, or no one
/// (an unknown, expired or revoked token is no one).
async fn authenticate(
    core: &Core,
    token: &str,
    remote: std::net::IpAddr,
) -> Result<Option<Caller>, ApiError> {
    if core.is_root_token(token).await {
        return Ok(Some(Caller::Root));
    }
    match core.tokens().authenticate(token, remote).await {
        Ok(found) => Ok(found.map(|t| Caller::Token(Arc::new(t)))),
        Err(e) => Err(ApiError::from(crate::framework::Error::from(e))),
    }
}

/// What the audit log records of the caller.
fn audit_auth(caller: &Caller, token: &str) -> AuditAuth {
    let now = crate::clock::unix_now_signed();
    let (accessor, token_ttl, token_type) = match caller {
        Caller::Token(t) => (
            t.entry.accessor.clone(),
            t.entry.ttl_left(now),
            t.entry.token_type.as_str(),
        ),
        Caller::Root | Caller::Anonymous => (String::new(), 0, "service"),
    };
    AuditAuth {
        client_token: zeroize::Zeroizing::new(token.to_owned()),
        accessor,
        display_name: caller.display_name().to_owned(),
        policies: caller.policies(),
        token_ttl,
        token_type,
    }
}

/// The capability an operation needs.
pub(crate) fn capability(op: Operation) -> Capability {
    match op {
        Operation::Read => Capability::Read,
        Operation::List => Capability::List,
        Operation::Create => Capability::Create,
        Operation::Update => Capability::Update,
        Operation::Patch => Capability::Patch,
        Operation::Delete => Capability::Delete,
    }
}

/// Whether `caller`'s policies grant `op` on `path` (and `sudo` there, if
/// the path is root-protected).
async fn permits(
    core: &Core,
    caller: &Caller,
    path: &str,
    op: Operation,
    sudo: bool,
) -> Result<bool, ApiError> {
    let policies = match caller {
        Caller::Root => return Ok(true),
        Caller::Anonymous => return Ok(false),
        Caller::Token(t) => &t.entry.policies,
    };
    let acl = core
        .policies()
        .cached_acl(policies)
        .await
        .map_err(|e| ApiError::from(crate::framework::Error::from(e)))?;
    let listed;
    let acl_path = if op == Operation::List {
        listed = format!("{path}/");
        &listed
    } else {
        path
    };
    // The operation's capability and `sudo` come from the one rule that
    // decides the request (for a list, the rule for `path/` or `path`).
    let granted = acl.granted(acl_path, op == Operation::List);
    Ok(granted.allows(capability(op)) && (!sudo || granted.allows(Capability::Sudo)))
}

/// A PATCH to a path that takes one must say its body is a merge patch, as
/// Vault requires (415 otherwise): a client sending a whole object as JSON
/// expects it to replace, not to merge. A path without PATCH answers 405
/// as before.
fn merge_patch_body(
    headers: &HeaderMap,
    request: &Request,
    info: Option<&PathInfo>,
) -> Result<(), ApiError> {
    if request.operation != Operation::Patch
        || info.is_none_or(|i| i.serving(Operation::Patch).is_none())
    {
        return Ok(());
    }
    let given = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Parameters (`; charset=utf-8`) aside; media types ignore case.
    let media = given.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case(MERGE_PATCH) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "PATCH requires Content-Type of {MERGE_PATCH}, got {:?}",
            media.chars().take(64).collect::<String>()
        ),
    ))
}

/// The `X-Vault-Wrap-TTL` header, if the client asked for wrapping.
fn wrap_ttl(headers: &HeaderMap) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(value) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Vault-Wrap-TTL: not text"))?;
    let ttl = crate::duration::Ttl::parse(text)
        .map_err(|e| ApiError::bad_request(format!("X-Vault-Wrap-TTL: {e}")))?;
    if ttl.0.is_zero() {
        return Ok(None);
    }
    Ok(Some(ttl.0))
}

/// Answers a request that reached a path: 404 when the path is not in the
/// table, help when asked, 405 for an operation the path does not serve,
/// else its handler.
async fn serve(
    core: &Core,
    found: &Found,
    request: &Request,
    help: bool,
) -> Result<Reply, ApiError> {
    let (Some(info), Some(route)) = (found.info(), &found.route) else {
        return Err(no_handler(&request.path));
    };
    if help {
        return Ok(Reply::Bare(
            StatusCode::OK,
            json!({ "help": crate::framework::help::text(&found.mount.kind, &request.path, info) }),
        ));
    }
    if info.serving(request.operation).is_none() {
        return Err(method_not_allowed(&request.path, Some(info)));
    }
    match found.target.call(core, route.index, request).await {
        // A read of nothing is an empty 404, as Vault answers it: clients
        // tell "absent" from "failed" by that.
        Err(e) if e.status == StatusCode::NOT_FOUND && request.operation == Operation::Read => {
            Err(ApiError::new(StatusCode::NOT_FOUND, ""))
        }
        other => other,
    }
}

/// Whether a query flag (`?list=…`, `?help=…`) is set, read as Vault reads
/// it (Go's `strconv.ParseBool`): hvac sends `list=True`.
fn query_true(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}
