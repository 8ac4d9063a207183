//! `sys/mounts`: enabling, disabling, listing and tuning secrets engines.
//!
//! A path here names a mount exactly: disabling or tuning a path inside a
//! mount (`db/config`) is refused, never applied to the mount's data. TTL
//! fields take the range [`crate::duration`] documents.

use serde_json::{Value, json};

use super::envelope::{ApiError, Reply, data, no_content};
use super::{Operation, Request};
use crate::core::{Core, MountEntry};
use crate::duration::Ttl;

/// A TTL field, `None` when absent. Vault's `"system"` means the default.
fn ttl_field(config: Option<&Value>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(Value::Object(config)) = config else {
        return Ok(None);
    };
    if config.get(name).and_then(Value::as_str) == Some("system") {
        return Ok(Some(0));
    }
    Ttl::field(config, name)
        .map(|t| t.map(Ttl::secs))
        .map_err(ApiError::bad_request)
}

fn mount_of(tune_path: &str) -> &str {
    tune_path
        .strip_suffix("/tune")
        .unwrap_or(tune_path)
        .trim_matches('/')
}

fn describe(entry: &MountEntry) -> Value {
    json!({
        "type": entry.kind,
        "description": entry.description,
        "accessor": entry.accessor,
        "uuid": entry.uuid,
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "options": null,
        "config": {
            "default_lease_ttl": entry.default_lease_ttl,
            "max_lease_ttl": entry.max_lease_ttl,
            "force_no_cache": false,
        },
    })
}

pub(crate) async fn handle(core: &Core, req: Request) -> Result<Reply, ApiError> {
    // `sys/mountsX` is another path, not mount `X`.
    let rest = match req.path.strip_prefix("sys/mounts") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unsupported path under sys/",
            ));
        }
    };
    match (req.op, rest) {
        (Operation::Read, "") => {
            let mounts: serde_json::Map<String, Value> = core
                .mounts()
                .await
                .iter()
                .map(|(p, e)| (p.clone(), describe(e)))
                .collect();
            Ok(data(Value::Object(mounts)))
        }
        (Operation::Write, path) if !path.is_empty() && !path.ends_with("/tune") => {
            let kind = req
                .body
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if kind.is_empty() {
                return Err(ApiError::bad_request(
                    "type is required, e.g. {\"type\": \"database\"}",
                ));
            }
            let config = req.body.get("config");
            let mut accessor = [0u8; 4];
            let _ = getrandom::fill(&mut accessor);
            let entry = MountEntry {
                accessor: format!("{kind}_{}", hex::encode(accessor)),
                uuid: crate::core::random_uuid(),
                kind,
                description: req
                    .body
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                default_lease_ttl: ttl_field(config, "default_lease_ttl")?.unwrap_or(0),
                max_lease_ttl: ttl_field(config, "max_lease_ttl")?.unwrap_or(0),
            };
            core.mount(path, entry).await?;
            Ok(no_content())
        }
        (Operation::Delete, path) if !path.is_empty() && !path.ends_with("/tune") => {
            core.unmount(path).await?;
            Ok(no_content())
        }
        (Operation::Read, path) if path.ends_with("/tune") => {
            let mount = mount_of(path);
            let mounts = core.mounts().await;
            let entry = mounts
                .get(&format!("{mount}/"))
                .ok_or_else(|| ApiError::bad_request(format!("no mount at {mount}")))?;
            let ttls = Core::ttls(entry);
            Ok(data(json!({
                "description": entry.description,
                "default_lease_ttl": ttls.default.as_secs(),
                "max_lease_ttl": ttls.max.as_secs(),
            })))
        }
        (Operation::Write, path) if path.ends_with("/tune") => {
            // Vault takes the TTLs at the top level here, not under `config`.
            let body = Value::Object(req.body.clone());
            let description = match req.body.get("description") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) => Some(d.clone()),
                Some(_) => return Err(ApiError::bad_request("description must be a string")),
            };
            core.tune(
                mount_of(path),
                description,
                ttl_field(Some(&body), "default_lease_ttl")?,
                ttl_field(Some(&body), "max_lease_ttl")?,
            )
            .await?;
            Ok(no_content())
        }
        _ => Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation on sys/mounts",
        )),
    }
}
