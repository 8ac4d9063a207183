//! The broker's state as load balancers and operators see it: `sys/health`,
//! `sys/seal-status`, and `sys/seal`; and the barrier key's rotation,
//! `sys/rotate` and `sys/key-status`.
//!
//! Health and seal status answer without a token, without audit and past
//! the rate limit, as Vault's do: a load balancer polls them. They must
//! never say more than Vault says there (no mounts, no counts), but for
//! one flag: `degraded`, true while some connection config's pool cannot be
//! built (which one is in the log and in that config's own errors).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::core::Core;
use crate::framework::{Error, Reply, Request, no_content};

/// This broker runs alone: there are no standbys to report. The fields
/// are kept so Vault's clients and load-balancer checks parse the answer.
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
        }),
    ))
}

/// `GET sys/seal-status`, in Vault's shape. The keyring is unwrapped by the
/// KMS at start, so there are no key shares: `t` and `n` are 1 and
/// `progress` 0, as Vault reports for an auto-unsealed server.
pub(crate) async fn seal_status(core: &Core, _req: &Request) -> Result<Reply, Error> {
    Ok(Reply::Bare(
        StatusCode::OK,
        json!({
            "type": "kms",
            "initialized": true,
            "sealed": core.is_sealed(),
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": env!("CARGO_PKG_VERSION"),
            "migration": false,
            "cluster_name": "broker",
            "cluster_id": core.cluster_id(),
            "recovery_seal": true,
            "storage_type": "broker",
        }),
    ))
}

/// `GET sys/init`: a broker that serves is initialized (`broker operator
/// init` came first).
pub(crate) async fn init(_core: &Core, _req: &Request) -> Result<Reply, Error> {
    Ok(Reply::Bare(StatusCode::OK, json!({ "initialized": true })))
}

/// `PUT sys/rotate` (sudo): a new barrier key term, as Vault's.
pub(crate) async fn rotate(core: &Core, _req: &Request) -> Result<Reply, Error> {
    core.rotate_keyring().await?;
    Ok(no_content())
}

/// `GET sys/key-status` (sudo): the active term and its install time, in
/// Vault's shape (`install_time` is empty for a term made before install
/// times were kept).
pub(crate) async fn key_status(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let (term, installed) = core.key_term()?;
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
    })))
}

/// `PUT sys/seal` (root only): drops the keyring from memory. Every later
/// request but health and seal status gets a 503 until a restart.
pub(crate) async fn seal(core: &Core, _req: &Request) -> Result<Reply, Error> {
    core.seal();
    Ok(no_content())
}
