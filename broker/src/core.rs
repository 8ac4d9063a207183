//! The broker's core: storage behind the barrier, the mount table, the
//! plugin catalog and the leases, shared by every request.
//!
//! Opening the core unwraps the keyring with the KMS (creating it on first
//! start). The core must never expose the keyring or the root token.
//!
//! The mount table is matched on whole path segments: a path names a mount
//! only when it is the mount's path exactly, and a new mount's path is
//! checked ([`mount_path`]) so that it can be routed, listed and written in
//! a lease id unambiguously. Disabling or tuning must never act on a path
//! that is merely inside a mount.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{AuditError, AuditPolicy, Auditor, DeviceConfig};
use crate::barrier::{Barrier, SealedStorage};
use crate::framework::{Error, Mount, MountOptions, Registry, Services, StorageView};
use crate::lease::{ConnectionResolver, Leases, ResolvedConnection};
use crate::plugin::Catalog;
use crate::policy::{PasswordPolicies, PolicyStore};
use crate::seal::Seal;
use crate::storage::Storage;
use crate::token::{TokenError, TokenStore};

mod auth;
pub mod keys;
mod layout;
mod plugins;
mod refresh;
pub mod rewrap;

pub use plugins::CATALOG_PREFIX;

use auth::AUTH_KEY;
pub use auth::TOKEN_AUTH_PATH;
pub use refresh::CACHED;

const MOUNTS_KEY: &str = "core/mounts";

/// How long a rotation waits for the other nodes to adopt the new term.
const ROTATION_SPREAD: Duration = Duration::from_secs(5);
const ROOT_TOKEN_KEY: &str = "core/root-token";
const CLUSTER_ID_KEY: &str = "core/cluster-id";

/// Root tokens: `brk.` and 36 random hex digits, kept only as a hash.
struct RootToken;

/// A fresh root token (`brk.` and 36 random hex digits), as `operator init`
/// makes them; dev mode uses it when no token is chosen.
pub fn generate_root_token() -> Result<Zeroizing<String>, String> {
    RootToken::generate()
}

impl RootToken {
    fn generate() -> Result<Zeroizing<String>, String> {
        let mut bytes = Zeroizing::new([0u8; 18]);
        getrandom::fill(bytes.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Zeroizing::new(format!(
            "brk.{}",
            hex::encode(bytes.as_ref())
        )))
    }

    fn hash(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }
}

/// Why the core could not open.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The seal could not wrap or unwrap the root key.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// The keyring is damaged.
    #[error("keyring: {0}")]
    Keyring(String),
    /// Sealed storage failed.
    #[error(transparent)]
    Sealed(#[from] crate::barrier::SealedError),
    /// An audit device would not open: the broker must not serve unaudited.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A backend's path table is malformed (a bug, caught by the tests).
    #[error(transparent)]
    Table(#[from] crate::framework::PatternError),
    /// The token store would not open.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// Storage has a keyring but lacks a record every initialized broker has.
    #[error("the storage is damaged: {0}")]
    Damaged(&'static str),
    /// `broker operator init` has not been run on this storage.
    #[error("the storage is not initialized: run `broker operator init` first")]
    NotInitialized,
    /// `broker operator init` was run on storage that is in use.
    #[error("the storage is already initialized; the root token was shown when it was")]
    AlreadyInitialized,
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
    /// A random id, fixed at mount time, as Vault reports it.
    #[serde(default)]
    pub uuid: String,
    /// Its options (`{"version": "2"}` for KV version 2), as its backend
    /// accepted them when it was enabled.
    #[serde(default, skip_serializing_if = "MountOptions::is_empty")]
    pub options: MountOptions,
}

impl MountEntry {
    /// Applies a tune: `None` leaves a field as it is; the default TTL may
    /// not pass the max.
    fn retune(
        &mut self,
        description: Option<String>,
        default_lease_ttl: Option<u64>,
        max_lease_ttl: Option<u64>,
    ) -> Result<(), Error> {
        if let Some(d) = description {
            self.description = d;
        }
        if let Some(t) = default_lease_ttl {
            self.default_lease_ttl = t;
        }
        if let Some(t) = max_lease_ttl {
            self.max_lease_ttl = t;
        }
        if self.max_lease_ttl > 0 && self.default_lease_ttl > self.max_lease_ttl {
            return Err(Error::field(
                "default_lease_ttl",
                "default_lease_ttl cannot be greater than max_lease_ttl",
            ));
        }
        Ok(())
    }
}

/// A random id in the UUID form Vault uses for request ids, mount ids and
/// cluster ids (random bits, not a versioned UUID).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // Ids are not secrets; a failure leaves zeros rather than failing a request.
    let _ = getrandom::fill(&mut b);
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The TTLs that apply on a mount.
#[derive(Debug, Clone, Copy)]
pub struct MountTtls {
    /// Default lease TTL.
    pub default: Duration,
    /// Max lease TTL.
    pub max: Duration,
}

/// System-wide TTL defaults, as in Vault: 32 days.
pub const SYSTEM_DEFAULT_TTL: Duration = Duration::from_secs(32 * 24 * 3600);

/// Mounts by path, with a trailing slash (`database/`).
pub type MountTable = BTreeMap<String, MountEntry>;

/// The longest mount path, in bytes.
pub const MAX_MOUNT_PATH: usize = 128;

/// First segments Vault keeps for itself (in any case): a mount there would
/// shadow, or be shadowed by, the system's own paths.
pub const RESERVED_MOUNTS: &[&str] = &["sys", "auth", "cubbyhole", "identity", "audit"];

/// `path` without its outer slashes, if its segments can be a mount's
/// (see [`mount_path`]).
pub(crate) fn checked_segments(path: &str) -> Result<&str, Error> {
    let trimmed = path.trim_matches('/');
    let bad = |why: &str| {
        Err(Error::field(
            "path",
            format!(
                "path: {why}; a mount path is 1-{MAX_MOUNT_PATH} characters of segments made of letters, digits, '-', '_' or '.', separated by '/'"
            ),
        ))
    };
    if trimmed.is_empty() {
        return bad("a mount path is required");
    }
    if trimmed.len() > MAX_MOUNT_PATH {
        return bad(&format!("it is {} bytes long", trimmed.len()));
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() {
            return bad("it has an empty segment ('//')");
        }
        if segment == "." || segment == ".." {
            return bad("'.' and '..' are not allowed as segments");
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return bad(&format!("character {c:?} is not allowed"));
        }
    }
    Ok(trimmed)
}

/// Checks a path a new mount would take and returns it as the mount table
/// keys it (`team/db/`). Segments are 1 or more letters, digits, `-`, `_`
/// or `.`, never `.` or `..`; the path is at most [`MAX_MOUNT_PATH`] bytes
/// and starts with no reserved name. Lease ids, storage keys and policies
/// all embed the path, so anything else could make two paths alias.
pub fn mount_path(path: &str) -> Result<String, Error> {
    let trimmed = checked_segments(path)?;
    let first = trimmed.split('/').next().unwrap_or_default();
    if let Some(reserved) = RESERVED_MOUNTS
        .iter()
        .find(|r| r.eq_ignore_ascii_case(first))
    {
        return Err(Error::field(
            "path",
            format!(
                "path: {first:?} is reserved (like Vault, {reserved}/ belongs to the system, in any case)"
            ),
        ));
    }
    not_tune(trimmed)?;
    Ok(format!("{trimmed}/"))
}

/// `sys/mounts/<path>/tune` tunes `<path>`: a mount ending in `tune` could
/// never be disabled or tuned itself.
pub(crate) fn not_tune(trimmed: &str) -> Result<(), Error> {
    if trimmed == "tune" || trimmed.ends_with("/tune") {
        return Err(Error::field(
            "path",
            "path: a mount path cannot end with the segment 'tune'",
        ));
    }
    Ok(())
}

/// The longest mount whose path is `path` or a whole-segment prefix of it:
/// one map lookup per segment, however many mounts there are.
pub(crate) fn longest_mount<'a>(
    mounts: &'a MountTable,
    path: &str,
) -> Option<(&'a String, &'a MountEntry)> {
    let mut key = String::with_capacity(path.len() + 1);
    key.push_str(path.trim_end_matches('/'));
    key.push('/');
    loop {
        if let Some(found) = mounts.get_key_value(key.as_str()) {
            return Some(found);
        }
        key.pop();
        let cut = key.rfind('/')?;
        key.truncate(cut + 1);
    }
}

/// Finds a lease's current connection through its mount's backend.
struct MountResolver {
    store: SealedStorage,
    mounts: Arc<tokio::sync::RwLock<MountTable>>,
    /// Set once the backends are built (they need the leases, which need
    /// this resolver).
    backends: std::sync::OnceLock<Arc<Registry>>,
}

#[async_trait::async_trait]
impl ConnectionResolver for MountResolver {
    async fn resolve(&self, mount: &str, config_name: &str) -> Option<ResolvedConnection> {
        let path = format!("{}/", mount.trim_end_matches('/'));
        let entry = self.mounts.read().await.get(&path).cloned()?;
        let backend = self.backends.get()?.get(&entry.kind)?.clone();
        let context = Core::context(&self.store, &path, &entry);
        backend.connection(&context, config_name).await
    }
}

/// The core.
pub struct Core {
    store: SealedStorage,
    catalog: Arc<Catalog>,
    leases: Arc<Leases>,
    backends: Arc<Registry>,
    mounts: Arc<tokio::sync::RwLock<MountTable>>,
    /// What the system backend's handlers see as their mount.
    system: Arc<Mount>,
    /// What the token store's handlers see as their mount.
    token_mount: Arc<Mount>,
    /// What handlers see of each mount, made once per mount and TTL
    /// setting rather than per request (checked against the table on use).
    contexts: std::sync::RwLock<std::collections::HashMap<String, Arc<Mount>>>,
    /// SHA-256 of the root token: the token itself is never stored.
    root_token: tokio::sync::RwLock<[u8; 32]>,
    cluster_id: String,
    audit: Arc<Auditor>,
    policies: PolicyStore,
    password_policies: PasswordPolicies,
    tokens: Arc<TokenStore>,
    /// Auth methods mounted under `auth/` (`core/auth.rs`).
    auth: auth::AuthMounts,
    /// What wraps the root key: rekeys and seal migrations wrap it again.
    seal: Arc<dyn Seal>,
    /// What encrypts the keyring in storage: a rotation stores the new one.
    root_key: keys::RootKey,
    /// The seal state this core runs under (set once it is installed), for
    /// `sys/seal-status`, `sys/unseal`, `sys/seal` and rekeys.
    unsealer: std::sync::OnceLock<std::sync::Weak<crate::unseal::Unsealer>>,
    /// One keyring rotation at a time: two made from the same keyring
    /// would each store a different key for the same term.
    rotation: tokio::sync::Mutex<()>,
    /// Moves stored values to the active key term after a rotation.
    rewrap: rewrap::Rewrap,
    /// This node among the others on the same storage.
    cluster: Arc<crate::cluster::Cluster>,
}

/// How the core runs.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// How long a pending lease is left to its in-flight issuance before
    /// the expiration worker may revoke it (keep it above the plugin deadline).
    pub pending_hold: Duration,
    /// Where `sys/audit` may create files.
    pub audit_policy: AuditPolicy,
    /// Audit devices the configuration file declares, by path.
    pub audit_devices: Vec<(String, DeviceConfig)>,
    /// When auth methods lock an identity out.
    pub lockout: crate::auth::lockout::LockoutSettings,
    /// The HSM token CA keys may be generated in (`[hsm]`, or the pkcs11
    /// seal's token).
    pub hsm: Option<Arc<crate::hsm::HsmConnection>>,
    /// How fast the rewrap after a rotation walks storage.
    pub rewrap: rewrap::RewrapSettings,
    /// Who this node is among those sharing its storage.
    pub node: crate::cluster::NodeOptions,
}

impl Default for CoreOptions {
    fn default() -> Self {
        Self {
            pending_hold: Duration::from_secs(60),
            audit_policy: AuditPolicy::default(),
            audit_devices: Vec::new(),
            lockout: Default::default(),
            hsm: None,
            rewrap: Default::default(),
            node: Default::default(),
        }
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").finish_non_exhaustive()
    }
}

impl Core {
    /// Initializes empty storage: a root key wrapped by `seal`, a keyring
    /// under it, and a root token, whose hash alone is stored. Returns the
    /// root token, which is never shown again. Refuses storage that already
    /// has a keyring.
    pub async fn initialize(
        storage: &Storage,
        seal: &dyn Seal,
        config: &keys::SealConfig,
    ) -> Result<Zeroizing<String>, CoreError> {
        let (_root, keyring) = keys::initialize(storage, seal, config).await?;
        let store = SealedStorage::new(storage.clone(), Arc::new(Barrier::new(keyring)));
        let token = RootToken::generate().map_err(CoreError::Keyring)?;
        store.put(ROOT_TOKEN_KEY, &RootToken::hash(&token)).await?;
        store.put(CLUSTER_ID_KEY, &random_uuid()).await?;
        layout::mark_current(&store).await?;
        Ok(token)
    }

    /// Opens initialized storage, unwrapping its root key with `seal` and
    /// the keyring with that, and the audit devices (those enabled before,
    /// and `options.audit_devices`).
    pub async fn open(
        storage: Storage,
        seal: Arc<dyn Seal>,
        catalog: Arc<Catalog>,
        options: CoreOptions,
    ) -> Result<Arc<Self>, CoreError> {
        let (root_key, keyring) = keys::unseal(&storage, seal.as_ref()).await?;
        let store = SealedStorage::new(storage, Arc::new(Barrier::new(keyring)));
        let root_token: [u8; 32] = store
            .get(ROOT_TOKEN_KEY)
            .await?
            .ok_or(CoreError::Damaged("the root token record is missing"))?;
        // Registered plugins before the mounts that may name them.
        catalog.sync(plugins::stored(&store).await?).await;
        let mut mounts: MountTable = store.get(MOUNTS_KEY).await?.unwrap_or_default();
        layout::upgrade(&store, &mut mounts).await?;
        let mounts = Arc::new(tokio::sync::RwLock::new(mounts));
        let cluster_id: String = store.get(CLUSTER_ID_KEY).await?.unwrap_or_default();
        let resolver = Arc::new(MountResolver {
            store: store.clone(),
            mounts: mounts.clone(),
            backends: std::sync::OnceLock::new(),
        });
        let audit = Arc::new(
            Auditor::open(
                store.clone(),
                options.audit_policy,
                options.audit_devices,
                store
                    .storage()
                    .cluster()
                    .map(|_| options.node.id.as_str().to_owned()),
            )
            .await?,
        );
        let leases = Arc::new(
            Leases::new(store.clone(), catalog.clone())
                .with_resolver(resolver.clone())
                .with_events(audit.clone())
                .with_pending_hold(options.pending_hold),
        );
        let tokens = TokenStore::open(store.clone(), leases.clone()).await?;
        let services = Services {
            catalog: catalog.clone(),
            leases: leases.clone(),
            tokens: tokens.clone(),
            lockout: options.lockout,
            password_policies: PasswordPolicies::new(store.clone()),
            hsm: options.hsm.clone(),
        };
        let backends = Arc::new(Registry::new(&services, crate::engine::ENGINES)?);
        let auth = auth::AuthMounts::open(&store, &services).await?;
        // Set once, here, on a resolver no one else has built backends for.
        let _ = resolver.backends.set(backends.clone());
        let policies = PolicyStore::new(store.clone());
        let system = Arc::new(Mount {
            path: "sys/".into(),
            kind: "system".into(),
            uuid: String::new(),
            accessor: "system".into(),
            default_ttl: SYSTEM_DEFAULT_TTL,
            max_ttl: SYSTEM_DEFAULT_TTL,
            storage: StorageView::new(store.clone(), "core/system"),
            options: Default::default(),
        });
        let token_mount = Arc::new(Mount {
            path: "auth/token/".into(),
            kind: "token".into(),
            uuid: String::new(),
            accessor: "auth_token".into(),
            default_ttl: SYSTEM_DEFAULT_TTL,
            max_ttl: SYSTEM_DEFAULT_TTL,
            storage: StorageView::new(store.clone(), "core/token"),
            options: Default::default(),
        });
        let cluster = crate::cluster::Cluster::new(store.storage().clone(), options.node.clone());
        // Last: it may start a walk over storage in the background.
        let rewrap = rewrap::Rewrap::resume(store.clone(), options.rewrap, cluster.clone()).await?;
        Ok(Arc::new(Self {
            cluster,
            rewrap,
            seal,
            root_key,
            unsealer: std::sync::OnceLock::new(),
            rotation: tokio::sync::Mutex::new(()),
            auth,
            token_mount,
            store,
            catalog,
            leases,
            backends,
            mounts,
            contexts: std::sync::RwLock::default(),
            system,
            root_token: tokio::sync::RwLock::new(root_token),
            cluster_id,
            audit,
            policies,
            password_policies: services.password_policies.clone(),
            tokens,
        }))
    }

    /// Replaces the root token (dev mode, where the operator chooses it).
    pub async fn set_root_token(&self, token: &str) -> Result<(), CoreError> {
        let hash = RootToken::hash(token);
        // Stored under the lock a reload reads under (`core/refresh.rs`).
        let mut root = self.root_token.write().await;
        self.store.put(ROOT_TOKEN_KEY, &hash).await?;
        *root = hash;
        Ok(())
    }

    /// The plugin catalog (and through it, the database pools).
    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// This broker's id (shared by nodes on one storage), made at init.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The audit devices.
    pub fn audit(&self) -> &Arc<Auditor> {
        &self.audit
    }

    /// This node among those sharing the storage.
    pub fn cluster(&self) -> &Arc<crate::cluster::Cluster> {
        &self.cluster
    }

    /// The leases.
    pub fn leases(&self) -> &Arc<Leases> {
        &self.leases
    }

    /// The backends, by mount type.
    pub fn backends(&self) -> &Registry {
        &self.backends
    }

    /// Whether `token` is the root token. Hashes are compared, in constant
    /// time, so neither the token nor its length leaks through timing.
    pub async fn is_root_token(&self, token: &str) -> bool {
        let given = RootToken::hash(token);
        let root = self.root_token.read().await;
        given
            .iter()
            .zip(root.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }

    /// Seals the broker (`sys/seal`): the keyring is dropped from memory and
    /// zeroized, so nothing in storage opens and nothing new is sealed. The
    /// API answers 503 and the expiration worker stops. Only a restart, which
    /// unwraps the keyring through the KMS again, unseals.
    pub fn seal(&self) {
        self.store.barrier().seal_keys();
        tracing::warn!("the core is sealed: its keys left memory");
    }

    /// Ties this core to the seal state that runs it (once).
    pub(crate) fn attach_unsealer(&self, unsealer: std::sync::Weak<crate::unseal::Unsealer>) {
        let _ = self.unsealer.set(unsealer);
    }

    /// The seal state this core runs under; `None` for a core opened
    /// directly (benchmarks, unit tests).
    pub(crate) fn unsealer(&self) -> Option<Arc<crate::unseal::Unsealer>> {
        self.unsealer.get().and_then(std::sync::Weak::upgrade)
    }

    /// The seal that wraps the root key.
    pub fn seal_provider(&self) -> &Arc<dyn Seal> {
        &self.seal
    }

    /// The root key (rekeys wrap it again).
    pub(crate) fn root_key(&self) -> &keys::RootKey {
        &self.root_key
    }

    /// Rotates the barrier key (`sys/rotate`): a new term, stored under
    /// the root key *before* anything is sealed with it; older terms stay, so
    /// what they sealed still opens. Returns the new term.
    ///
    /// The new keyring is made from the one stored, and stored only if no
    /// other node stored another meanwhile (then this one adopts that and
    /// tries again): two nodes rotating at once never make two keys for
    /// one term.
    pub async fn rotate_keyring(&self) -> Result<u32, Error> {
        const TRIES: usize = 8;
        let _one_at_a_time = self.rotation.lock().await;
        let barrier = self.store.barrier();
        for _ in 0..TRIES {
            let (stored, raw) = keys::stored_keyring(self.store.storage(), &self.root_key)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot read the keyring: {e}")))?;
            // The stored keyring extends the one in use (or is it): rotate
            // from there.
            barrier.adopt(stored).map_err(|e| {
                Error::Internal(format!(
                    "the stored keyring does not extend the one in use: {e}"
                ))
            })?;
            let next = barrier
                .rotated_keyring()
                .map_err(|e| Error::Internal(format!("cannot rotate the keyring: {e}")))?;
            let term = next.term().0;
            let stored_it =
                keys::replace_keyring(self.store.storage(), &self.root_key, &raw, &next)
                    .await
                    .map_err(|e| {
                        Error::Unavailable(format!("cannot store the new keyring: {e}"))
                    })?;
            if !stored_it {
                continue;
            }
            // Adopted, not installed: this node's change feed may have
            // adopted the stored keyring already.
            barrier
                .adopt(next)
                .map_err(|e| Error::Internal(format!("cannot use the new keyring: {e}")))?;
            tracing::info!(term, "barrier key rotated");
            // Done once every live node seals under the new term (they adopt
            // it within milliseconds of the commit): a write answered after
            // this uses it on whichever node it lands.
            let _ = self.cluster.echo(term).await;
            if !self.cluster.until_all_on_term(term, ROTATION_SPREAD).await {
                tracing::warn!(
                    term,
                    "not every node adopted the new key term in time; the rewrap catches what they seal under the old one"
                );
            }
            self.rewrap.start(term);
            return Ok(term);
        }
        Err(Error::Conflict(
            "other nodes kept rotating the keyring at the same time; try again".into(),
        ))
    }

    /// The rewrap's record (`None` before its first walk) and its last
    /// failure, if it is waiting to try again.
    pub fn rewrap_status(&self) -> (Option<rewrap::RewrapStatus>, Option<String>) {
        self.rewrap.status()
    }

    /// The barrier key's active term and when it was made (if known).
    pub fn key_term(&self) -> Result<(u32, Option<i64>), Error> {
        self.store
            .barrier()
            .term()
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// The ACL policies.
    pub fn policies(&self) -> &PolicyStore {
        &self.policies
    }

    /// The password policies.
    pub fn password_policies(&self) -> &PasswordPolicies {
        &self.password_policies
    }

    /// The token store.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    /// Whether [`Self::seal`] has run.
    pub fn is_sealed(&self) -> bool {
        self.store.barrier().is_sealed()
    }

    /// The mount table.
    pub async fn mounts(&self) -> MountTable {
        self.mounts.read().await.clone()
    }

    /// Enables an engine at `path` (see [`mount_path`] for what it may be).
    pub async fn mount(&self, path: &str, mut entry: MountEntry) -> Result<(), Error> {
        let path = mount_path(path)?;
        let Some(backend) = self.backends.get(&entry.kind) else {
            return Err(Error::field(
                "type",
                format!(
                    "unknown engine type {:?}; this broker offers: {}",
                    entry.kind,
                    self.backends.kinds().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        entry.options = backend.mount_options(std::mem::take(&mut entry.options))?;
        let mut mounts = self.mounts.write().await;
        // The stored table, not this node's copy: another node may have
        // changed it.
        let (table, ()) = self
            .store
            .update(MOUNTS_KEY, |stored: Option<MountTable>| {
                let mut table = stored.unwrap_or_default();
                if table
                    .keys()
                    .any(|m| m.starts_with(&path) || path.starts_with(m.as_str()))
                {
                    // Vault answers 400 here, and its clients expect it.
                    return Err(Error::invalid(format!("path is already in use at {path}")));
                }
                table.insert(path.clone(), entry.clone());
                Ok((table, ()))
            })
            .await?;
        *mounts = table;
        Ok(())
    }

    /// The mount whose path is exactly `path`: a path inside a mount is a
    /// 400 naming that mount (acting on it would reach the mount's data),
    /// one under no mount a 404.
    async fn exact_mount(&self, path: &str) -> Result<String, Error> {
        let path = format!("{}/", path.trim_matches('/'));
        let mounts = self.mounts.read().await;
        if mounts.contains_key(&path) {
            return Ok(path);
        }
        match mounts.keys().find(|m| path.starts_with(m.as_str())) {
            Some(m) => Err(Error::invalid(format!(
                "{path} is not a mount: it is a path inside mount {m}; name the mount itself ({})",
                m.trim_end_matches('/')
            ))),
            None if path.len() <= MAX_MOUNT_PATH + 1 => {
                Err(Error::NotFound(format!("no mount at {path}")))
            }
            None => Err(Error::NotFound("no mount at that path".into())),
        }
    }

    /// Disables the engine at `path`, which must be a mount's path exactly,
    /// revoking its leases first.
    pub async fn unmount(&self, path: &str) -> Result<(), Error> {
        let path = self.exact_mount(path).await?;
        self.leases.revoke_prefix(&path).await?;
        let mut mounts = self.mounts.write().await;
        let (table, entry) = self
            .store
            .update(MOUNTS_KEY, |stored: Option<MountTable>| {
                let mut table = stored.unwrap_or_default();
                match table.remove(&path) {
                    Some(entry) => Ok((table, entry)),
                    None => Err(Error::NotFound(format!("no mount at {path}"))),
                }
            })
            .await?;
        *mounts = table;
        drop(mounts);
        if let Ok(mut contexts) = self.contexts.write() {
            contexts.remove(&path);
        }
        let context = Self::context(&self.store, &path, &entry);
        if let Some(backend) = self.backends.get(&entry.kind) {
            backend.unmounted(&context).await;
        }
        context.storage.delete_all("").await?;
        Ok(())
    }

    /// Changes a mount's description and TTLs; `None` leaves a field as is.
    /// Leases already issued keep the TTLs they were issued with.
    pub async fn tune(
        &self,
        path: &str,
        description: Option<String>,
        default_lease_ttl: Option<u64>,
        max_lease_ttl: Option<u64>,
    ) -> Result<(), Error> {
        let path = self.exact_mount(path).await.map_err(|e| match e {
            // Vault answers 400 for tuning a path that is not mounted.
            Error::NotFound(m) => Error::invalid(m),
            e => e,
        })?;
        let mut mounts = self.mounts.write().await;
        let (table, ()) = self
            .store
            .update(MOUNTS_KEY, |stored: Option<MountTable>| {
                let mut table = stored.unwrap_or_default();
                let entry = table
                    .get_mut(&path)
                    .ok_or_else(|| Error::invalid(format!("no mount at {path}")))?;
                entry.retune(description.clone(), default_lease_ttl, max_lease_ttl)?;
                Ok::<_, Error>((table, ()))
            })
            .await?;
        *mounts = table;
        Ok(())
    }

    /// What a handler sees of the mount at `path`: its storage is rooted
    /// at its UUID.
    pub(crate) fn context(store: &SealedStorage, path: &str, entry: &MountEntry) -> Mount {
        let ttls = Self::ttls(entry);
        Mount {
            path: path.to_owned(),
            kind: entry.kind.clone(),
            uuid: entry.uuid.clone(),
            accessor: entry.accessor.clone(),
            default_ttl: ttls.default,
            max_ttl: ttls.max,
            storage: StorageView::for_mount(store.clone(), &entry.uuid),
            options: entry.options.clone(),
        }
    }

    /// The mount serving `path` (longest match on whole segments), as its
    /// handlers see it; the rest of the path follows its `path`.
    pub async fn route_mount(&self, path: &str) -> Option<Arc<Mount>> {
        let mounts = self.mounts.read().await;
        let (mount, entry) = longest_mount(&mounts, path)?;
        let ttls = Self::ttls(entry);
        let fresh = |m: &Mount| {
            m.uuid == entry.uuid && m.default_ttl == ttls.default && m.max_ttl == ttls.max
        };
        if let Ok(contexts) = self.contexts.read()
            && let Some(context) = contexts.get(mount.as_str())
            && fresh(context)
        {
            return Some(context.clone());
        }
        let context = Arc::new(Self::context(&self.store, mount, entry));
        if let Ok(mut contexts) = self.contexts.write() {
            contexts.insert(mount.clone(), context.clone());
        }
        Some(context)
    }

    /// Runs every mounted engine's periodic work due at `now` (see
    /// [`crate::framework::Backend::periodic`]), one mount after another.
    /// Nothing while sealed, nor on a node that does not hold the periodic
    /// job (one node of those sharing the storage runs it).
    pub async fn periodic(&self, now: i64) {
        if self.is_sealed() || !self.cluster.hold(crate::cluster::Job::Periodic).await {
            return;
        }
        let mounts = self.mounts.read().await.clone();
        for (path, entry) in &mounts {
            if let Some(backend) = self.backends.get(&entry.kind) {
                let context = Self::context(&self.store, path, entry);
                backend.periodic(&context, now).await;
            }
        }
    }

    /// Runs [`Core::periodic`] every `every` until the task is aborted.
    pub fn spawn_periodic(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.periodic(crate::clock::unix_now_signed()).await;
            }
        })
    }

    /// The token store's mount (`auth/token/`).
    pub fn token_mount(&self) -> Arc<Mount> {
        self.token_mount.clone()
    }

    /// The system backend's mount (`sys/`): no storage of its own.
    pub fn system_mount(&self) -> Arc<Mount> {
        self.system.clone()
    }

    /// The TTLs that apply on a mount. Stored values beyond the longest
    /// TTL (written before it was checked) are capped to it.
    pub fn ttls(entry: &MountEntry) -> MountTtls {
        let max = if entry.max_lease_ttl > 0 {
            Duration::from_secs(entry.max_lease_ttl).min(crate::duration::MAX_TTL)
        } else {
            SYSTEM_DEFAULT_TTL
        };
        let default = if entry.default_lease_ttl > 0 {
            Duration::from_secs(entry.default_lease_ttl).min(crate::duration::MAX_TTL)
        } else {
            max
        };
        MountTtls {
            default: default.min(max),
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_mount_is_found_by_whole_segments() {
        let entry: MountEntry =
            serde_json::from_value(serde_json::json!({ "type": "database", "accessor": "a" }))
                .unwrap();
        let mut mounts = MountTable::new();
        for path in ["db/", "db2/", "team/", "team/db/"] {
            mounts.insert(path.into(), entry.clone());
        }
        let found = |path: &str| longest_mount(&mounts, path).map(|(m, _)| m.as_str());
        assert_eq!(found("db/roles/app"), Some("db/"));
        assert_eq!(found("db"), Some("db/"));
        assert_eq!(found("db/"), Some("db/"));
        assert_eq!(found("db2/creds/x"), Some("db2/"));
        assert_eq!(found("db22/creds/x"), None);
        assert_eq!(found("team/db/creds/x"), Some("team/db/"));
        assert_eq!(found("team/dbx/creds"), Some("team/"));
        assert_eq!(found("elsewhere"), None);
        assert_eq!(found(""), None);
    }
}
