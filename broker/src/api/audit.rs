//! `sys/audit` (enable, disable, list devices), `sys/audit-hash`, and
//! `sys/audit-public-key` (the key that checks the log's signed checkpoints).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::envelope::{ApiError, Reply, data, no_content};
use super::{Operation, Request};
use crate::audit::{AuditError, DeviceConfig, DeviceOptions};
use crate::core::Core;

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        let status = match &e {
            AuditError::Invalid(_) | AuditError::Device { .. } => StatusCode::BAD_REQUEST,
            AuditError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuditError::Sealed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

fn describe(path: &str, d: &DeviceConfig) -> Value {
    json!({
        "type": d.kind,
        "description": d.description,
        "path": path,
        "local": false,
        "options": {
            "file_path": d.options.file_path,
            "log_raw": d.options.log_raw.to_string(),
            "hmac_accessor": d.options.hmac_accessor.to_string(),
            "fsync": d.options.fsync.to_string(),
        },
    })
}

/// Vault sends options as strings (`"true"`); accept both forms.
fn flag(options: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ApiError> {
    match options.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("options.{name} must be true or false"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "options.{name} must be true or false"
        ))),
    }
}

fn device_config(body: &Map<String, Value>) -> Result<DeviceConfig, ApiError> {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind != "file" {
        return Err(ApiError::bad_request(format!(
            "unknown audit device type {kind:?}; this broker offers: file"
        )));
    }
    let empty = Map::new();
    let options = match body.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err(ApiError::bad_request("options must be an object")),
    };
    for key in options.keys() {
        match key.as_str() {
            "file_path" | "log_raw" | "hmac_accessor" | "fsync" | "format" => {}
            // Vault's `prefix` lets the caller choose the first bytes of the
            // file (OpenBao's CVE-2025-6000); `mode` would loosen 0600.
            "prefix" | "mode" => {
                return Err(ApiError::bad_request(format!(
                    "option {key:?} is not supported: audit files always start with an entry and have mode 0600"
                )));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown option {other:?}; file devices take file_path, log_raw, hmac_accessor, fsync"
                )));
            }
        }
    }
    if options
        .get("format")
        .is_some_and(|f| f.as_str() != Some("json"))
    {
        return Err(ApiError::bad_request("format must be json"));
    }
    let file_path = options
        .get("file_path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("options.file_path is required (a path or stdout)"))?;
    Ok(DeviceConfig {
        kind: kind.to_owned(),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        options: DeviceOptions {
            file_path: file_path.to_owned(),
            log_raw: flag(options, "log_raw", false)?,
            hmac_accessor: flag(options, "hmac_accessor", true)?,
            fsync: flag(options, "fsync", true)?,
        },
        from_config: false,
    })
}

pub(crate) async fn handle(core: &Core, req: Request) -> Result<Reply, ApiError> {
    let audit = core.audit();
    if req.path == "sys/audit-public-key" {
        if req.op != Operation::Read {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "unsupported operation on sys/audit-public-key",
            ));
        }
        let (public_key, key_id) = audit.public_key();
        return Ok(data(json!({
            "public_key": public_key,
            "key_id": key_id,
            "algorithm": "ed25519",
        })));
    }
    if let Some(device) = req.path.strip_prefix("sys/audit-hash/") {
        if req.op != Operation::Write {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "unsupported operation on sys/audit-hash",
            ));
        }
        let input = req
            .body
            .get("input")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("input is required"))?;
        return Ok(data(json!({ "hash": audit.hash(device, input).await? })));
    }
    let rest = req
        .path
        .strip_prefix("sys/audit")
        .unwrap_or_default()
        .trim_start_matches('/');
    match (req.op, rest) {
        (Operation::Read, "") => {
            let devices: Map<String, Value> = audit
                .list()
                .await
                .iter()
                .map(|(p, d)| (p.clone(), describe(p, d)))
                .collect();
            Ok(data(Value::Object(devices)))
        }
        (Operation::Write, path) if !path.is_empty() => {
            audit.enable(path, device_config(&req.body)?).await?;
            Ok(no_content())
        }
        (Operation::Delete, path) if !path.is_empty() => {
            audit.disable(path).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation on sys/audit",
        )),
    }
}
