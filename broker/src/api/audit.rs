//! `sys/audit` (enable, disable, list devices), `sys/audit-hash`, and
//! `sys/audit-public-key` (the key that checks the log's signed checkpoints).

use serde_json::{Map, Value, json};

use crate::audit::{AuditError, DeviceConfig, DeviceOptions};
use crate::core::Core;
use crate::framework::{Error, Reply, Request, data, no_content};

impl From<AuditError> for Error {
    fn from(e: AuditError) -> Self {
        match &e {
            AuditError::Invalid(_) | AuditError::Device { .. } => Self::invalid(e.to_string()),
            AuditError::Unavailable => Self::Unavailable(e.to_string()),
            AuditError::Sealed(_) => Self::Internal(e.to_string()),
        }
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
fn flag(options: &Map<String, Value>, name: &str, default: bool) -> Result<bool, Error> {
    match options.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| Error::invalid(format!("options.{name} must be true or false"))),
        Some(_) => Err(Error::invalid(format!(
            "options.{name} must be true or false"
        ))),
    }
}

fn device_config(body: &Map<String, Value>) -> Result<DeviceConfig, Error> {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind != "file" {
        return Err(Error::invalid(format!(
            "unknown audit device type {kind:?}; this broker offers: file"
        )));
    }
    let empty = Map::new();
    let options = match body.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err(Error::invalid("options must be an object")),
    };
    for key in options.keys() {
        match key.as_str() {
            "file_path" | "log_raw" | "hmac_accessor" | "fsync" | "format" => {}
            // Vault's `prefix` lets the caller choose the first bytes of the
            // file (OpenBao's CVE-2025-6000); `mode` would loosen 0600.
            "prefix" | "mode" => {
                return Err(Error::invalid(format!(
                    "option {key:?} is not supported: audit files always start with an entry and have mode 0600"
                )));
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown option {other:?}; file devices take file_path, log_raw, hmac_accessor, fsync"
                )));
            }
        }
    }
    if options
        .get("format")
        .is_some_and(|f| f.as_str() != Some("json"))
    {
        return Err(Error::invalid("format must be json"));
    }
    let file_path = options
        .get("file_path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::invalid("options.file_path is required (a path or stdout)"))?;
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

/// `GET sys/audit-public-key`: the key that checks signed checkpoints.
pub(crate) async fn public_key(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let (public_key, key_id) = core.audit().public_key();
    Ok(data(json!({
        "public_key": public_key,
        "key_id": key_id,
        "algorithm": "ed25519",
    })))
}

/// `PUT sys/audit-hash/{path}`: HMACs `input` as the device logs it.
pub(crate) async fn hash(core: &Core, req: &Request) -> Result<Reply, Error> {
    let input = req
        .str("input")
        .ok_or_else(|| Error::field("input", "input is required"))?;
    Ok(data(
        json!({ "hash": core.audit().hash(req.param("path")?, input).await? }),
    ))
}

/// `GET sys/audit`.
pub(crate) async fn list(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let devices: Map<String, Value> = core
        .audit()
        .list()
        .await
        .iter()
        .map(|(p, d)| (p.clone(), describe(p, d)))
        .collect();
    Ok(data(Value::Object(devices)))
}

/// `PUT sys/audit/{path}`.
pub(crate) async fn enable(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.audit()
        .enable(req.param("path")?, device_config(&req.data)?)
        .await?;
    Ok(no_content())
}

/// `DELETE sys/audit/{path}`.
pub(crate) async fn disable(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.audit().disable(req.param("path")?).await?;
    Ok(no_content())
}
