//! What a node reloads when another node (sharing its database) changes
//! what this one caches: the mount tables, the root token's hash, the
//! keyring, the ACLs built from policies, the audit devices, the registered
//! plugins.
//!
//! [`CACHED`] lists them by storage key prefix; the database announces a
//! change to any of them ([`crate::cluster`]), and [`Core::refresh`] reloads
//! the one a key names. Reloading never writes, and never drops a key term
//! the barrier holds.

use super::{AUTH_KEY, Core, CoreError, MOUNTS_KEY, MountTable, ROOT_TOKEN_KEY, keys};

/// The storage keys (or prefixes, ending in `/`) of what the core caches.
pub const CACHED: &[&str] = &[
    MOUNTS_KEY,
    AUTH_KEY,
    ROOT_TOKEN_KEY,
    keys::KEYRING_KEY,
    crate::policy::ACL_PREFIX,
    crate::audit::DEVICES_KEY,
    super::plugins::CATALOG_PREFIX,
];

impl Core {
    /// Reloads what the entry at `key` feeds, if the core caches it.
    pub async fn refresh(&self, key: &str) -> Result<(), CoreError> {
        if self.is_sealed() {
            return Ok(());
        }
        match key {
            MOUNTS_KEY => self.refresh_mounts().await,
            AUTH_KEY => self.refresh_auth().await,
            ROOT_TOKEN_KEY => self.refresh_root_token().await,
            keys::KEYRING_KEY => self.refresh_keyring().await,
            crate::audit::DEVICES_KEY => Ok(self.audit.sync().await?),
            key if key.starts_with(super::plugins::CATALOG_PREFIX) => self.refresh_plugins().await,
            key if key.starts_with(crate::policy::ACL_PREFIX) => {
                self.policies.invalidate();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Reloads everything the core caches (after changes may have been
    /// missed). The keyring first: the rest may be sealed under a new term.
    pub async fn refresh_all(&self) -> Result<(), CoreError> {
        if self.is_sealed() {
            return Ok(());
        }
        self.refresh_keyring().await?;
        self.refresh_mounts().await?;
        self.refresh_auth().await?;
        self.refresh_root_token().await?;
        self.policies.invalidate();
        self.audit.sync().await?;
        self.refresh_plugins().await?;
        Ok(())
    }

    // Each reload reads storage while holding the table's lock: this
    // node's own writers store under the same lock, so a read made before
    // their write can never replace what they put in memory after it.
    async fn refresh_mounts(&self) -> Result<(), CoreError> {
        let mut mounts = self.mounts.write().await;
        let stored: MountTable = self.store.get(MOUNTS_KEY).await?.unwrap_or_default();
        let gone: Vec<_> = mounts
            .iter()
            .filter(|(path, entry)| stored.get(*path).is_none_or(|s| s.uuid != entry.uuid))
            .map(|(path, entry)| (path.clone(), entry.clone()))
            .collect();
        *mounts = stored;
        drop(mounts);
        // What this node held for a mount another node disabled (its
        // connection pools); the mount's storage is already gone.
        for (path, entry) in gone {
            self.forget_context(&path);
            if let Some(backend) = self.backends.get(&entry.kind) {
                backend
                    .unmounted(&Self::context(&self.store, &path, &entry))
                    .await;
            }
        }
        Ok(())
    }

    async fn refresh_auth(&self) -> Result<(), CoreError> {
        let mut table = self.auth.table.write().await;
        let stored: MountTable = self.store.get(AUTH_KEY).await?.unwrap_or_default();
        let gone: Vec<_> = table
            .iter()
            .filter(|(path, entry)| stored.get(*path).is_none_or(|s| s.uuid != entry.uuid))
            .map(|(path, entry)| (path.clone(), entry.clone()))
            .collect();
        *table = stored;
        drop(table);
        for (path, entry) in gone {
            let full = format!("auth/{path}");
            self.forget_context(&full);
            if let Some(backend) = self.auth.backends.get(&entry.kind) {
                backend
                    .unmounted(&Self::context(&self.store, &full, &entry))
                    .await;
            }
        }
        Ok(())
    }

    async fn refresh_root_token(&self) -> Result<(), CoreError> {
        let mut root = self.root_token.write().await;
        *root = self
            .store
            .get(ROOT_TOKEN_KEY)
            .await?
            .ok_or(CoreError::Damaged("the root token record is missing"))?;
        Ok(())
    }

    /// Adopts the stored keyring if another node rotated it; the rewrap
    /// (whichever node holds it) moves values to the new term.
    async fn refresh_keyring(&self) -> Result<(), CoreError> {
        let (stored, _) = keys::stored_keyring(self.store.storage(), &self.root_key).await?;
        let term = stored.term().0;
        let moved = self.store.barrier().adopt(stored).map_err(|e| {
            CoreError::Keyring(format!(
                "the stored keyring does not extend the one in use: {e}"
            ))
        })?;
        if moved {
            tracing::info!(term, "adopted the keyring another node rotated");
            // Said at once, not at the next echo: the rotating node waits
            // for every node to seal under the new term.
            if let Err(e) = self.cluster.echo(term).await {
                tracing::warn!(error = %e, "cannot echo the new key term");
            }
            self.rewrap.start(term);
        }
        Ok(())
    }

    fn forget_context(&self, path: &str) {
        if let Ok(mut contexts) = self.contexts.write() {
            contexts.remove(path);
        }
    }
}
