//! The registered plugins (`sys/plugins/catalog`), as stored under
//! [`CATALOG_PREFIX`], and the core's operations on them: register by
//! SHA-256, deregister, reload, and load them all at unseal or when another
//! node changed them. The catalog ([`crate::plugin::Catalog`]) checks each
//! file against its hash; this module must never store a registration
//! whose file did not match.

use crate::barrier::SealedStorage;
use crate::framework::Error;
use crate::plugin::{CatalogError, Registration};

use super::{Core, CoreError};

/// Where registrations are stored, one entry per name.
pub const CATALOG_PREFIX: &str = "core/plugin-catalog/";

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        match &e {
            CatalogError::Invalid(_) | CatalogError::HashMismatch(_) | CatalogError::Load(_) => {
                Self::invalid(e.to_string())
            }
        }
    }
}

/// Every stored registration.
pub(super) async fn stored(store: &SealedStorage) -> Result<Vec<Registration>, CoreError> {
    let mut all = Vec::new();
    for key in store.list(CATALOG_PREFIX).await? {
        let key = if key.starts_with(CATALOG_PREFIX) {
            key
        } else {
            format!("{CATALOG_PREFIX}{key}")
        };
        if let Some(r) = store.get::<Registration>(&key).await? {
            all.push(r);
        }
    }
    Ok(all)
}

impl Core {
    /// Registers (or re-registers) a plugin: its file must be in the plugin
    /// directory with this SHA-256 and load; then it is usable at once, on
    /// every node.
    pub async fn register_plugin(&self, registration: Registration) -> Result<(), Error> {
        let plugin = self.catalog.load_registered(&registration, true).await?;
        self.catalog.install(registration.clone(), plugin)?;
        self.store
            .put(
                &format!("{CATALOG_PREFIX}{}", registration.name),
                &registration,
            )
            .await?;
        tracing::info!(plugin = %registration.name, sha256 = %registration.sha256, "plugin registered");
        Ok(())
    }

    /// Removes a registered plugin. Mounts' leases through it stay; they are
    /// revoked once it is registered again.
    pub async fn deregister_plugin(&self, name: &str) -> Result<(), Error> {
        self.catalog.remove(name)?;
        self.store
            .delete(&format!("{CATALOG_PREFIX}{name}"))
            .await?;
        Ok(())
    }

    /// Reads a registered plugin's file again, checks its hash and loads
    /// it (`sys/plugins/reload/backend`). A file that changed is refused,
    /// and the plugin stays unavailable until it is registered again.
    pub async fn reload_plugin(&self, name: &str) -> Result<(), Error> {
        let registration = self
            .catalog
            .registration(name)
            .ok_or_else(|| Error::NotFound(format!("no registered plugin named {name:?}")))?;
        match self.catalog.load_registered(&registration, false).await {
            Ok(plugin) => Ok(self.catalog.install(registration, plugin)?),
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "registered plugin refused on reload");
                self.catalog.refuse(registration, e.to_string());
                Err(e.into())
            }
        }
    }

    /// Loads the stored registrations into the catalog.
    pub(super) async fn refresh_plugins(&self) -> Result<(), CoreError> {
        self.catalog.sync(stored(&self.store).await?).await;
        Ok(())
    }
}
