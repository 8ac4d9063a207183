//! The broker's state as load balancers and operators see it: `sys/health`,
//! `sys/seal-status`, `sys/init`, `sys/unseal` and `sys/seal`; and the
//! barrier key's rotation, `sys/rotate` and `sys/key-status`.
//!
//! While sealed there is no core: [`while_sealed`] answers the few paths
//! that work then, from the [`Unsealer`]; once unsealed the same paths
//! run from the system table and reach the same [`Unsealer`].
//!
//! Health and seal status answer without a token, without audit and past
//! the rate limit, as Vault's do: a load balancer polls them. They must
//! never say more than Vault says there (no mounts, no counts), but for
//! the node's id, whether it shares its storage (`ha_enabled`), and one
//! flag: `degraded`, true while some connection config's pool cannot be
//! built (which one is in the log and in that config's own errors).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::core::Core;
use crate::framework::{Error, Operation, Reply, Request, no_content};
use crate::unseal::{InitRequest, RekeyTarget, UnsealError, Unsealer};

/// Every node serves (there are no standbys, even with several nodes on
/// one database): the fields are kept so Vault's clients and load-balancer
/// checks parse the answer.
const STANDBY: bool = false;

/// A status code from a query parameter such as `sealedcode=200`.
fn code(query: &Map<String, Value>, name: &str, default: u16) -> Result<StatusCode, Error> {
    let Some(value) = query.get(name) else {
        return Ok(StatusCode::from_u16(default).unwrap_or(StatusCode::OK));
    };
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| Error::field(name, format!("{name}: {text:?} is not an HTTP status code")))
}

/// `GET sys/health`: 200 when serving, 503 when sealed (Vault's codes;
/// `sealedcode`, `activecode`, `standbycode`, `uninitcode` and `standbyok`
/// change them as they do in Vault). A degraded mount keeps the code (the
/// other mounts serve) and sets `degraded` in the body.
pub(crate) async fn health(core: &Core, req: &Request) -> Result<Reply, Error> {
    let query = &req.data;
    let sealed = core.is_sealed();
    let status = if sealed {
        code(query, "sealedcode", 503)?
    } else if STANDBY {
        if query
            .get("standbyok")
            .is_some_and(|v| matches!(v.as_str(), Some("" | "true")) || v == &Value::Bool(true))
        {
            code(query, "activecode", 200)?
        } else {
            code(query, "standbycode", 429)?
        }
    } else {
        code(query, "activecode", 200)?
    };
    // Checked for a clear 400 though an uninitialized broker does not serve.
    code(query, "uninitcode", 501)?;
    let degraded = core
        .catalog()
        .pools()
        .iter()
        .any(|pools| pools.any_failed());
    Ok(Reply::Bare(
        status,
        json!({
            "initialized": true,
            "sealed": sealed,
            "standby": STANDBY,
            "performance_standby": false,
            "replication_dr_mode": "disabled",
            "replication_perf_mode": "disabled",
            "cluster_name": "broker",
            "cluster_id": core.cluster_id(),
            "server_time_utc": crate::clock::unix_now(),
            "version": env!("CARGO_PKG_VERSION"),
            "degraded": degraded,
            "node_id": core.cluster().node_id().as_str(),
            "ha_enabled": core.cluster().is_shared(),
        }),
    ))
}

impl From<UnsealError> for Error {
    fn from(e: UnsealError) -> Self {
        match e {
            UnsealError::Invalid(m) => Error::invalid(m),
            UnsealError::Share(e) => Error::field("key", e.to_string()),
            UnsealError::Unavailable(m) => Error::Unavailable(m),
            UnsealError::Core(
                e @ (crate::core::CoreError::AlreadyInitialized
                | crate::core::CoreError::NotInitialized),
            ) => Error::invalid(e.to_string()),
            // The cause names the seal and what failed (never a key).
            UnsealError::Core(e) => Error::Unavailable(format!("cannot unseal: {e}")),
        }
    }
}

/// `GET sys/seal-status`, in Vault's shape: the seal's type, its share
/// split (`t` of `n`: unseal shares for `shamir`, recovery shares for the
/// others) and the progress of an unseal.
pub(crate) async fn seal_status(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let Some(unsealer) = core.unsealer() else {
        // A core opened without a seal state (benchmarks): unsealed.
        return Ok(Reply::Bare(
            StatusCode::OK,
            json!({ "type": core.seal_provider().kind().as_str(), "initialized": true,
                    "sealed": core.is_sealed(), "t": 0, "n": 0, "progress": 0, "nonce": "",
                    "cluster_name": "broker", "cluster_id": core.cluster_id(),
                    "version": env!("CARGO_PKG_VERSION") }),
        ));
    };
    Ok(Reply::Bare(StatusCode::OK, unsealer.status().await?))
}

/// `GET sys/init`: a broker that serves is initialized.
pub(crate) async fn init(_core: &Core, _req: &Request) -> Result<Reply, Error> {
    Ok(Reply::Bare(StatusCode::OK, json!({ "initialized": true })))
}

/// `PUT sys/init` on a broker that serves: it is initialized already.
pub(crate) async fn init_again(_core: &Core, _req: &Request) -> Result<Reply, Error> {
    Err(Error::invalid("the broker is already initialized"))
}

/// `PUT sys/unseal` on a broker that serves: its status, as Vault answers.
pub(crate) async fn unseal(core: &Core, req: &Request) -> Result<Reply, Error> {
    seal_status(core, req).await
}

/// `PUT sys/rotate` (sudo): a new barrier key term, as Vault's.
pub(crate) async fn rotate(core: &Core, _req: &Request) -> Result<Reply, Error> {
    core.rotate_keyring().await?;
    Ok(no_content())
}

/// `GET sys/key-status` (sudo): the active term and its install time, in
/// Vault's shape (`install_time` is empty for a term made before install
/// times were kept), and ours: `rewrap`, where moving stored values to the
/// active term stands (see `core/rewrap.rs`).
pub(crate) async fn key_status(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let (term, installed) = core.key_term()?;
    let (rewrap, rewrap_error) = core.rewrap_status();
    let install_time = installed
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(crate::framework::data(json!({
        "term": term,
        "install_time": install_time,
        "rewrap": crate::core::rewrap::report(rewrap.as_ref(), rewrap_error.as_deref()),
    })))
}

/// `PUT sys/seal` (sudo): stops the core and drops its keys from memory.
/// Every later request but health, seal status and unseal gets a 503
/// until the broker is unsealed again.
pub(crate) async fn seal(core: &Core, _req: &Request) -> Result<Reply, Error> {
    match core.unsealer() {
        Some(unsealer) => unsealer.seal().await,
        None => core.seal(),
    }
    Ok(no_content())
}

fn sealed_error(e: UnsealError) -> ApiError {
    let e = Error::from(e);
    let status = match &e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.to_string())
}

fn flag(data: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a boolean"))),
    }
}

/// The paths that answer while the broker is sealed (there is no core):
/// health, seal status, init, unseal. Every other gets a 503 saying how
/// to unseal.
pub(crate) async fn while_sealed(
    unsealer: &Unsealer,
    op: Operation,
    path: &str,
    query: &Map<String, Value>,
    data: Map<String, Value>,
) -> Result<Reply, ApiError> {
    let status = unsealer.status().await.map_err(sealed_error)?;
    let initialized = status["initialized"] == Value::Bool(true);
    match (path, op) {
        ("sys/seal-status", Operation::Read) => Ok(Reply::Bare(StatusCode::OK, status)),
        ("sys/health", Operation::Read) => {
            let code = if initialized {
                code(query, "sealedcode", 503)
            } else {
                code(query, "uninitcode", 501)
            }
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(Reply::Bare(
                code,
                json!({
                    "initialized": initialized,
                    "sealed": true,
                    "standby": STANDBY,
                    "performance_standby": false,
                    "replication_dr_mode": "disabled",
                    "replication_perf_mode": "disabled",
                    "server_time_utc": crate::clock::unix_now(),
                    "version": env!("CARGO_PKG_VERSION"),
                }),
            ))
        }
        ("sys/init", Operation::Read) => Ok(Reply::Bare(
            StatusCode::OK,
            json!({ "initialized": initialized }),
        )),
        ("sys/init", Operation::Update | Operation::Create) => {
            let request: InitRequest = serde_json::from_value(Value::Object(data))
                .map_err(|e| ApiError::bad_request(format!("sys/init: {e}")))?;
            let response = unsealer.initialize(&request).await.map_err(sealed_error)?;
            Ok(Reply::Bare(StatusCode::OK, response.to_json()))
        }
        ("sys/unseal", Operation::Update | Operation::Create) => {
            let key = match data.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => Some(k.as_str()),
                Some(_) => return Err(ApiError::bad_request("key must be a string")),
            };
            let reset = flag(&data, "reset")?;
            let migrate = flag(&data, "migrate")?;
            let status = unsealer
                .unseal(key, reset, migrate)
                .await
                .map_err(sealed_error)?;
            Ok(Reply::Bare(StatusCode::OK, status))
        }
        _ if !initialized => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker is not initialized: PUT sys/init (`broker operator init`) first",
        )),
        _ if unsealer.kind().auto_unseals() => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the broker is sealed: {} (it retries; after sys/seal, give recovery key shares to sys/unseal)",
                unsealer.unavailable_text()
            ),
        )),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker is sealed: give key shares to sys/unseal (`broker operator unseal`)",
        )),
    }
}

fn rekey_target(req: &Request) -> RekeyTarget {
    if req.path.starts_with("sys/rekey-recovery-key") {
        RekeyTarget::Recovery
    } else {
        RekeyTarget::Barrier
    }
}

fn unsealer_of(core: &Core) -> Result<std::sync::Arc<Unsealer>, Error> {
    core.unsealer()
        .ok_or_else(|| Error::invalid("this broker has no seal state to rekey"))
}

/// `GET sys/rekey/init` (and `sys/rekey-recovery-key/init`).
pub(crate) async fn rekey_status(core: &Core, req: &Request) -> Result<Reply, Error> {
    let status = unsealer_of(core)?.rekey_status(rekey_target(req)).await?;
    Ok(Reply::Bare(StatusCode::OK, status))
}

/// `PUT sys/rekey/init`: starts a rekey to `secret_shares` shares.
pub(crate) async fn rekey_start(core: &Core, req: &Request) -> Result<Reply, Error> {
    if req
        .data
        .get("pgp_keys")
        .is_some_and(|k| k.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(Error::field(
            "pgp_keys",
            "PGP-encrypted key shares are not supported",
        ));
    }
    let shares = req.uint("secret_shares", 255)?.unwrap_or(5) as u32;
    let threshold = req.uint("secret_threshold", 255)?.unwrap_or(3) as u32;
    let status = unsealer_of(core)?
        .rekey_start(rekey_target(req), shares, threshold)
        .await?;
    Ok(Reply::Bare(StatusCode::OK, status))
}

/// `DELETE sys/rekey/init`: cancels the rekey.
pub(crate) async fn rekey_cancel(core: &Core, req: &Request) -> Result<Reply, Error> {
    unsealer_of(core)?.rekey_cancel(rekey_target(req)).await;
    Ok(no_content())
}

/// `PUT sys/rekey/update`: one current key share, with the rekey's nonce.
pub(crate) async fn rekey_update(core: &Core, req: &Request) -> Result<Reply, Error> {
    let key = req
        .str("key")
        .ok_or_else(|| Error::field("key", "key is required (a current key share)"))?;
    let nonce = req
        .str("nonce")
        .ok_or_else(|| Error::field("nonce", "nonce is required (from sys/rekey/init)"))?;
    let answer = unsealer_of(core)?
        .rekey_update(core, rekey_target(req), key, nonce)
        .await?;
    Ok(Reply::Bare(StatusCode::OK, answer))
}
