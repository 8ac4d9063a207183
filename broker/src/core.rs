//! The broker's core: storage behind the barrier, the mount table, the
//! plugin catalog and the leases, shared by every request.
//!
//! Opening the core unwraps the keyring with the KMS (creating it on first
//! start). The core must never expose the keyring or the root token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::{Barrier, Keyring, SealedStorage};
use crate::engine::EngineError;
use crate::engine::database::{DatabaseEngine, MountTtls};
use crate::kms::Kms;
use crate::lease::{ConnectionResolver, Leases, ResolvedConnection};
use crate::plugin::Catalog;
use crate::storage::Storage;

const KEYRING_KEY: &str = "core/keyring";
const MOUNTS_KEY: &str = "core/mounts";

/// Why the core could not open.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The KMS could not wrap or unwrap the keyring.
    #[error(transparent)]
    Kms(#[from] crate::kms::KmsError),
    /// The keyring is damaged.
    #[error("keyring: {0}")]
    Keyring(String),
    /// Sealed storage failed.
    #[error(transparent)]
    Sealed(#[from] crate::barrier::SealedError),
}

/// A mounted secrets engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    /// The engine type (`database`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A random id, as Vault reports it.
    pub accessor: String,
    /// Default lease TTL, seconds (0: the system default).
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Max lease TTL, seconds (0: the system max).
    #[serde(default)]
    pub max_lease_ttl: u64,
}

/// System-wide TTL defaults, as in Vault: 32 days.
pub const SYSTEM_DEFAULT_TTL: Duration = Duration::from_secs(32 * 24 * 3600);

/// Mounts by path, with a trailing slash (`database/`).
pub type MountTable = BTreeMap<String, MountEntry>;

/// Finds a lease's current connection config through its mount.
struct MountResolver {
    store: SealedStorage,
    catalog: Arc<Catalog>,
}

#[async_trait::async_trait]
impl ConnectionResolver for MountResolver {
    async fn resolve(&self, mount: &str, config_name: &str) -> Option<ResolvedConnection> {
        DatabaseEngine::new(mount, self.store.clone(), self.catalog.clone())
            .resolve(mount, config_name)
            .await
    }
}

/// The core.
pub struct Core {
    store: SealedStorage,
    catalog: Arc<Catalog>,
    leases: Arc<Leases>,
    mounts: tokio::sync::RwLock<MountTable>,
    root_token: Zeroizing<String>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").finish_non_exhaustive()
    }
}

impl Core {
    /// Opens the core over `storage`, unwrapping (or on first start,
    /// creating and wrapping) the keyring with `kms`.
    pub async fn open(
        storage: Storage,
        kms: &dyn Kms,
        catalog: Arc<Catalog>,
        root_token: &str,
    ) -> Result<Arc<Self>, CoreError> {
        Self::open_with(storage, kms, catalog, root_token, Duration::from_secs(60)).await
    }

    /// [`Core::open`], holding pending leases for `pending_hold` before the
    /// expiration worker may revoke them (keep it above the plugin deadline).
    pub async fn open_with(
        storage: Storage,
        kms: &dyn Kms,
        catalog: Arc<Catalog>,
        root_token: &str,
        pending_hold: Duration,
    ) -> Result<Arc<Self>, CoreError> {
        let keyring = match storage.get(KEYRING_KEY).await? {
            Some(wrapped) => {
                Keyring::from_bytes(&kms.unwrap(&wrapped)?).map_err(CoreError::Keyring)?
            }
            None => {
                let keyring = Keyring::generate().map_err(CoreError::Keyring)?;
                storage
                    .put(KEYRING_KEY, &kms.wrap(&keyring.to_bytes())?)
                    .await?;
                keyring
            }
        };
        let store = SealedStorage::new(storage, Arc::new(Barrier::new(keyring)));
        let mounts: MountTable = store.get(MOUNTS_KEY).await?.unwrap_or_default();
        let resolver = Arc::new(MountResolver {
            store: store.clone(),
            catalog: catalog.clone(),
        });
        let leases = Arc::new(
            Leases::new(store.clone(), catalog.clone())
                .with_resolver(resolver)
                .with_pending_hold(pending_hold),
        );
        Ok(Arc::new(Self {
            store,
            catalog,
            leases,
            mounts: tokio::sync::RwLock::new(mounts),
            root_token: Zeroizing::new(root_token.to_owned()),
        }))
    }

    /// The leases.
    pub fn leases(&self) -> &Arc<Leases> {
        &self.leases
    }

    /// Whether `token` is the root token (constant-time comparison).
    pub fn is_root_token(&self, token: &str) -> bool {
        let (a, b) = (token.as_bytes(), self.root_token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The mount table.
    pub async fn mounts(&self) -> MountTable {
        self.mounts.read().await.clone()
    }

    /// Enables an engine at `path`.
    pub async fn mount(&self, path: &str, entry: MountEntry) -> Result<(), EngineError> {
        let path = format!("{}/", path.trim_matches('/'));
        if path == "/" || path.starts_with("sys/") || path.starts_with("auth/") {
            return Err(EngineError::BadRequest(format!("cannot mount at {path:?}")));
        }
        if entry.kind != "database" {
            return Err(EngineError::BadRequest(format!(
                "unknown engine type {:?}; this broker offers: database",
                entry.kind
            )));
        }
        let mut mounts = self.mounts.write().await;
        if mounts
            .keys()
            .any(|m| m.starts_with(&path) || path.starts_with(m.as_str()))
        {
            return Err(EngineError::BadRequest(format!(
                "path is already in use at {path}"
            )));
        }
        mounts.insert(path, entry);
        self.store.put(MOUNTS_KEY, &*mounts).await?;
        Ok(())
    }

    /// Disables the engine at `path`, revoking its leases first.
    pub async fn unmount(&self, path: &str) -> Result<(), EngineError> {
        let path = format!("{}/", path.trim_matches('/'));
        self.leases.revoke_prefix(&path).await?;
        let mut mounts = self.mounts.write().await;
        mounts.remove(&path);
        self.store.put(MOUNTS_KEY, &*mounts).await?;
        for key in self.store.list(&format!("mounts/{path}")).await? {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    /// The mount serving `path`, its entry, and the rest of the path.
    pub async fn route(&self, path: &str) -> Option<(String, MountEntry, String)> {
        let mounts = self.mounts.read().await;
        mounts
            .iter()
            .filter(|(m, _)| path.starts_with(m.as_str()) || format!("{path}/") == **m)
            .max_by_key(|(m, _)| m.len())
            .map(|(m, e)| {
                (
                    m.clone(),
                    e.clone(),
                    path.get(m.len()..).unwrap_or_default().to_owned(),
                )
            })
    }

    /// The database engine at `mount`.
    pub fn database(&self, mount: &str) -> DatabaseEngine {
        DatabaseEngine::new(mount, self.store.clone(), self.catalog.clone())
    }

    /// The TTLs that apply on a mount.
    pub fn ttls(entry: &MountEntry) -> MountTtls {
        let max = if entry.max_lease_ttl > 0 {
            Duration::from_secs(entry.max_lease_ttl)
        } else {
            SYSTEM_DEFAULT_TTL
        };
        let default = if entry.default_lease_ttl > 0 {
            Duration::from_secs(entry.default_lease_ttl)
        } else {
            max
        };
        MountTtls {
            default: default.min(max),
            max,
        }
    }
}
