//! KV version 1: the request body is the secret, stored whole at its path
//! (`kv/<path>`), replaced by each write, gone with a delete. A read
//! answers the secret as `data`, with a `lease_duration` that is only a
//! hint to re-read (the secret's own `ttl` field, else the mount's default
//! TTL): nothing is leased, as in Vault.

use serde_json::{Map, Value};

use super::path::SecretPath;
use super::{KvBackend, KvError, check_size, list_folder, secret_path, store};
use crate::duration::Ttl;
use crate::framework::{Error, Reply, Request, list, no_content};

/// The `lease_duration` a read answers: the secret's `ttl` (or `lease`)
/// field when it is a duration, else the mount's default TTL.
fn refresh_interval(secret: &Map<String, Value>, default: std::time::Duration) -> i64 {
    let given = secret.get("ttl").or_else(|| secret.get("lease"));
    let ttl = match given {
        Some(Value::Number(n)) => n.as_u64().and_then(|s| Ttl::from_secs(s).ok()),
        Some(Value::String(s)) => Ttl::parse(s).ok(),
        _ => None,
    };
    crate::duration::capped_secs(ttl.map_or(default, |t| t.0))
}

impl KvBackend {
    /// Whether a write creates the secret (policies grant `create` and
    /// `update` apart). A path that is not valid does not exist; the write
    /// itself refuses it, after the policy check.
    pub(super) async fn v1_exists(&self, req: &Request) -> Result<bool, Error> {
        let Ok(path) = SecretPath::parse(req.param("path")?) else {
            return Ok(false);
        };
        Ok(req
            .mount
            .storage
            .get::<Value>(&store::v1_key(&path))
            .await?
            .is_some())
    }

    pub(super) async fn v1_read(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        let Some(secret) = req
            .mount
            .storage
            .get::<Map<String, Value>>(&store::v1_key(&path))
            .await?
        else {
            return Err(Error::NotFound(String::new()));
        };
        Ok(Reply::Envelope {
            lease_id: String::new(),
            lease_duration: refresh_interval(&secret, req.mount.default_ttl),
            renewable: false,
            data: Value::Object(secret),
            credential: false,
        })
    }

    pub(super) async fn v1_write(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        if req.data.is_empty() {
            return Err(KvError::NoFields.into());
        }
        check_size(&req.data)?;
        req.mount
            .storage
            .put(&store::v1_key(&path), &req.data)
            .await?;
        Ok(no_content())
    }

    pub(super) async fn v1_delete(&self, req: &Request) -> Result<Reply, Error> {
        let path = secret_path(req)?;
        req.mount.storage.delete(&store::v1_key(&path)).await?;
        Ok(no_content())
    }

    pub(super) async fn v1_list(&self, req: &Request) -> Result<Reply, Error> {
        let folder = list_folder(req)?;
        list(req.mount.storage.list(&store::v1_folder(folder)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn the_refresh_interval_is_the_secrets_ttl_else_the_mounts() {
        let default = Duration::from_secs(2_764_800);
        let of = |v: Value| refresh_interval(v.as_object().unwrap(), default);
        assert_eq!(of(json!({ "password": "x" })), 2_764_800);
        assert_eq!(of(json!({ "ttl": "1h" })), 3600);
        assert_eq!(of(json!({ "ttl": 90 })), 90);
        assert_eq!(of(json!({ "lease": "30m" })), 1800);
        assert_eq!(of(json!({ "ttl": "soon" })), 2_764_800);
        assert_eq!(of(json!({ "ttl": -5 })), 2_764_800);
        assert_eq!(of(json!({ "ttl": u64::MAX })), 2_764_800);
    }
}
