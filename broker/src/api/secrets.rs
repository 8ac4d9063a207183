//! Requests to a mount: routed to the mount's engine by path.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::envelope::{ApiError, Reply, data, no_content, secret};
use super::{Operation, Request};
use crate::core::Core;

pub(crate) async fn handle(core: &Core, mut req: Request) -> Result<Reply, ApiError> {
    let Some((mount, entry, rest)) = req.mount.take() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no handler for route {:?}. route entry not found.",
                req.path
            ),
        ));
    };
    let mount = mount.trim_end_matches('/');
    if entry.kind == "pki" {
        return super::pki::handle(core, mount, &entry, rest.trim_matches('/'), req).await;
    }
    let db = core.database(mount);
    let (kind, name) = match rest.split_once('/') {
        Some((k, n)) => (k, n.trim_matches('/')),
        None => (rest.as_str(), ""),
    };
    let list = |keys: Vec<String>| {
        if keys.is_empty() {
            Err(ApiError::new(StatusCode::NOT_FOUND, ""))
        } else {
            Ok(data(json!({ "keys": keys })))
        }
    };
    match (req.op, kind, name) {
        (Operation::List, "config", "") => list(db.list_configs().await?),
        (Operation::Write, "config", n) if !n.is_empty() => {
            db.write_config(n, req.body).await?;
            Ok(no_content())
        }
        (Operation::Read, "config", n) if !n.is_empty() => Ok(data(db.read_config(n).await?)),
        (Operation::Delete, "config", n) if !n.is_empty() => {
            db.delete_config(n).await?;
            Ok(no_content())
        }
        (Operation::List, "roles", "") => list(db.list_roles().await?),
        (Operation::Write, "roles", n) if !n.is_empty() => {
            db.write_role(n, req.body).await?;
            Ok(no_content())
        }
        (Operation::Read, "roles", n) if !n.is_empty() => match db.read_role(n).await {
            Ok(v) => Ok(data(v)),
            // A missing role is a 404 on read, as in Vault; anything else is reported.
            Err(crate::engine::EngineError::BadRequest(_)) => {
                Err(ApiError::new(StatusCode::NOT_FOUND, ""))
            }
            Err(e) => Err(e.into()),
        },
        (Operation::Delete, "roles", n) if !n.is_empty() => {
            db.delete_role(n).await?;
            Ok(no_content())
        }
        (Operation::Read, "creds", role) if !role.is_empty() => {
            let (row, creds) = db
                .creds(core.leases(), role, Core::ttls(&entry), "root", None)
                .await?;
            Ok(secret(
                row.id.clone(),
                // The TTL granted, as Vault reports it (not what is left
                // of it a moment later).
                row.expires_at - row.issued_at,
                row.expires_at < row.max_expires_at,
                Value::Object(creds),
            ))
        }
        (Operation::Write, "rotate-root", n) if !n.is_empty() => {
            db.rotate_root(n).await?;
            Ok(no_content())
        }
        (_, "config" | "roles" | "creds" | "rotate-root", _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("unsupported operation on {}", req.path),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no handler for route {:?}", req.path),
        )),
    }
}
