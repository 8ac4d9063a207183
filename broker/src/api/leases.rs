//! `sys/leases/…`: lookup, renew, revoke, revoke-prefix, revoke-force.

use serde_json::{Value, json};

use super::envelope::{ApiError, Reply, data, no_content, secret};
use super::{Operation, Request};
use crate::core::Core;
use crate::duration::Ttl;

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64),
    )
    .to_string()
}

fn lease_id(req: &Request, suffix: &str) -> Result<String, ApiError> {
    let from_path = suffix.trim_matches('/');
    let id = if from_path.is_empty() {
        req.body
            .get("lease_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    } else {
        from_path
    };
    if id.is_empty() {
        return Err(ApiError::bad_request("lease_id is required"));
    }
    Ok(id.to_owned())
}

pub(crate) async fn handle(core: &Core, req: Request) -> Result<Reply, ApiError> {
    let rest = req
        .path
        .strip_prefix("sys/leases/")
        .unwrap_or_default()
        .to_owned();
    let leases = core.leases();
    let now = crate::clock::unix_now_signed();
    match (req.op, rest.as_str()) {
        (Operation::List, r) if r.starts_with("lookup") => {
            // A listed path is a folder: `database/creds/app` lists `database/creds/app/`.
            let mut prefix = r.trim_start_matches("lookup").trim_matches('/').to_owned();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            let ids = leases.list(&prefix, 10_000).await?;
            // Vault lists one level: the next path segment, with a trailing slash for folders.
            let mut keys: Vec<String> = ids
                .iter()
                .map(|id| {
                    let tail = &id[prefix.len()..];
                    match tail.split_once('/') {
                        Some((head, _)) => format!("{head}/"),
                        None => tail.to_owned(),
                    }
                })
                .collect();
            keys.dedup();
            if keys.is_empty() {
                return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, ""));
            }
            Ok(data(json!({ "keys": keys })))
        }
        (Operation::Write, "lookup") => {
            let id = lease_id(&req, "")?;
            let row = leases.lookup(&id).await?;
            Ok(data(json!({
                "id": row.id,
                "issue_time": rfc3339(row.issued_at),
                "expire_time": rfc3339(row.expires_at),
                "last_renewal": null,
                "renewable": row.state == crate::storage::LeaseState::Active && row.expires_at < row.max_expires_at,
                "ttl": (row.expires_at - now).max(0),
                "state": row.state.as_str(),
                "revocation_attempts": row.attempts,
                "last_revocation_error": row.last_error,
            })))
        }
        (Operation::Write, r) if r == "renew" || r.starts_with("renew/") => {
            let id = lease_id(&req, r.trim_start_matches("renew"))?;
            let increment = Ttl::field(&req.body, "increment")
                .map_err(ApiError::bad_request)?
                .unwrap_or_default();
            let row = leases.renew(&id, increment.0).await?;
            Ok(secret(
                row.id.clone(),
                (row.expires_at - now).max(0),
                row.expires_at < row.max_expires_at,
                Value::Null,
            ))
        }
        (Operation::Write, r) if r == "revoke" || r.starts_with("revoke/") => {
            let id = lease_id(&req, r.trim_start_matches("revoke"))?;
            leases.revoke(&id).await?;
            Ok(no_content())
        }
        (Operation::Write, r) if r.starts_with("revoke-prefix/") => {
            leases
                .revoke_prefix(r.trim_start_matches("revoke-prefix/"))
                .await?;
            Ok(no_content())
        }
        (Operation::Write, r) if r.starts_with("revoke-force/") => {
            leases
                .revoke_force(r.trim_start_matches("revoke-force/"))
                .await?;
            Ok(no_content())
        }
        _ => Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation on sys/leases",
        )),
    }
}
