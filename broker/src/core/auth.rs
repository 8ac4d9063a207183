//! Auth methods mounted under `auth/` (`sys/auth`): their table, kept
//! apart from the secrets engines' (Vault keeps the two apart too), routed
//! by longest whole-segment match below `auth/`.
//!
//! Disabling a method revokes every token it issued at a login, and so
//! every lease those tokens made, before its storage goes. The token
//! store itself is `auth/token/`, built in: it is listed here but can be
//! neither mounted over nor disabled.

use std::sync::Arc;

use super::{Core, CoreError, MountEntry, MountTable, checked_segments, longest_mount, not_tune};
use crate::barrier::SealedStorage;
use crate::framework::{Error, Mount, Registry, Services};

pub(super) const AUTH_KEY: &str = "core/auth";

/// The built-in token store's path in the `sys/auth` listing.
pub const TOKEN_AUTH_PATH: &str = "token/";

/// The auth mounts and the methods they may be.
pub(crate) struct AuthMounts {
    /// By path below `auth/`, with a trailing slash (`approle/`).
    pub(super) table: tokio::sync::RwLock<MountTable>,
    pub(super) backends: Arc<Registry>,
}

impl AuthMounts {
    /// The table stored in `store`, and the methods built from `services`.
    pub(crate) async fn open(
        store: &SealedStorage,
        services: &Services,
    ) -> Result<Self, CoreError> {
        let table: MountTable = store.get(AUTH_KEY).await?.unwrap_or_default();
        Ok(Self {
            table: tokio::sync::RwLock::new(table),
            backends: Arc::new(Registry::new(services, crate::auth::AUTH_METHODS)?),
        })
    }
}

/// Checks a path a new auth mount would take (below `auth/`) and returns
/// it as the table keys it (`approle/`, `ci/jwt/`).
fn auth_path(path: &str) -> Result<String, Error> {
    let trimmed = checked_segments(path)?;
    let first = trimmed.split('/').next().unwrap_or_default();
    if first.eq_ignore_ascii_case("token") {
        return Err(Error::field(
            "path",
            "path: auth/token/ is the token store, built in",
        ));
    }
    not_tune(trimmed)?;
    Ok(format!("{trimmed}/"))
}

impl Core {
    /// The auth methods this broker offers, by type.
    pub fn auth_backends(&self) -> &Registry {
        &self.auth.backends
    }

    /// The auth mounts, by path below `auth/` (the token store not included).
    pub async fn auth_mounts(&self) -> MountTable {
        self.auth.table.read().await.clone()
    }

    /// Enables an auth method at `auth/<path>`.
    pub async fn enable_auth(&self, path: &str, mut entry: MountEntry) -> Result<(), Error> {
        let path = auth_path(path)?;
        let Some(backend) = self.auth.backends.get(&entry.kind) else {
            return Err(Error::field(
                "type",
                format!(
                    "unknown auth method type {:?}; this broker offers: {}",
                    entry.kind,
                    self.auth.backends.kinds().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        entry.options = backend.mount_options(std::mem::take(&mut entry.options))?;
        let mut table = self.auth.table.write().await;
        // The stored table, not this node's copy: another node may have
        // changed it.
        let (stored, ()) = self
            .store
            .update(AUTH_KEY, |stored: Option<MountTable>| {
                let mut stored = stored.unwrap_or_default();
                if stored
                    .keys()
                    .any(|m| m.starts_with(&path) || path.starts_with(m.as_str()))
                {
                    return Err(Error::invalid(format!(
                        "path is already in use at auth/{path}"
                    )));
                }
                stored.insert(path.clone(), entry.clone());
                Ok((stored, ()))
            })
            .await?;
        *table = stored;
        Ok(())
    }

    /// The auth mount whose path is exactly `path` (below `auth/`).
    async fn exact_auth(&self, path: &str) -> Result<(String, MountEntry), Error> {
        let path = format!("{}/", path.trim_matches('/'));
        let table = self.auth.table.read().await;
        match table.get(&path) {
            Some(entry) => Ok((path, entry.clone())),
            None => Err(Error::invalid(format!("no auth method at auth/{path}"))),
        }
    }

    /// Disables the auth method at `auth/<path>`: the tokens it issued are
    /// revoked (with their children and leases), then its storage goes.
    pub async fn disable_auth(&self, path: &str) -> Result<(), Error> {
        let (path, entry) = self.exact_auth(path).await?;
        self.tokens.revoke_mount(&entry.accessor).await?;
        let mut table = self.auth.table.write().await;
        let (stored, removed) = self
            .store
            .update(AUTH_KEY, |stored: Option<MountTable>| {
                let mut stored = stored.unwrap_or_default();
                let removed = stored.remove(&path).is_some();
                Ok::<_, Error>((stored, removed))
            })
            .await?;
        *table = stored;
        if !removed {
            return Ok(());
        }
        drop(table);
        let full = format!("auth/{path}");
        if let Ok(mut contexts) = self.contexts.write() {
            contexts.remove(&full);
        }
        let context = Self::context(&self.store, &full, &entry);
        if let Some(backend) = self.auth.backends.get(&entry.kind) {
            backend.unmounted(&context).await;
        }
        context.storage.delete_all("").await?;
        Ok(())
    }

    /// Changes an auth mount's description and token TTLs.
    pub async fn tune_auth(
        &self,
        path: &str,
        description: Option<String>,
        default_lease_ttl: Option<u64>,
        max_lease_ttl: Option<u64>,
    ) -> Result<(), Error> {
        let (path, _) = self.exact_auth(path).await?;
        let mut table = self.auth.table.write().await;
        let (stored, ()) = self
            .store
            .update(AUTH_KEY, |stored: Option<MountTable>| {
                let mut stored = stored.unwrap_or_default();
                let entry = stored
                    .get_mut(&path)
                    .ok_or_else(|| Error::invalid(format!("no auth method at auth/{path}")))?;
                entry.retune(description.clone(), default_lease_ttl, max_lease_ttl)?;
                Ok::<_, Error>((stored, ()))
            })
            .await?;
        *table = stored;
        Ok(())
    }

    /// The auth mount serving `auth/<rest>`, as its handlers see it (its
    /// path is `auth/<mount>/`).
    pub async fn route_auth(&self, rest: &str) -> Option<Arc<Mount>> {
        let table = self.auth.table.read().await;
        let (path, entry) = longest_mount(&table, rest)?;
        let full = format!("auth/{path}");
        let ttls = Self::ttls(entry);
        if let Ok(contexts) = self.contexts.read()
            && let Some(context) = contexts.get(&full)
            && context.uuid == entry.uuid
            && context.default_ttl == ttls.default
            && context.max_ttl == ttls.max
        {
            return Some(context.clone());
        }
        let context = Arc::new(Self::context(&self.store, &full, entry));
        if let Ok(mut contexts) = self.contexts.write() {
            contexts.insert(full, context.clone());
        }
        Some(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_paths_are_checked_like_mounts_and_keep_off_the_token_store() {
        assert_eq!(auth_path("approle").unwrap(), "approle/");
        assert_eq!(auth_path("/ci/jwt/").unwrap(), "ci/jwt/");
        for bad in ["token", "Token/x", "", "a//b", "..", "a/tune", "a b"] {
            assert!(auth_path(bad).is_err(), "{bad:?}");
        }
    }
}
