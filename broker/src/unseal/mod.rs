//! The broker's seal state, and the moves between its states: sealed (no
//! core; key shares are collected), unsealed (a running [`Core`]), and
//! `sys/init`, `sys/unseal`, `sys/seal`, auto-unseal at start, and seal
//! migration.
//!
//! It owns what exists before a core does: storage, the configured seal,
//! the plugin catalog. It must never keep a key share past the attempt it
//! served, never start a core from a key hierarchy that did not fully
//! open, and never write anything while an unseal fails.

mod rekey;

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::core::keys::{self, SealConfig};
use crate::core::{Core, CoreError, CoreOptions};
use crate::plugin::Catalog;
use crate::seal::shamir::{self, ShareError};
use crate::seal::{Seal, SealKind, ShamirSeal};
use crate::storage::Storage;

pub use rekey::Target as RekeyTarget;

/// Why an init, unseal or seal was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    /// The request is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// A key share is wrong (400).
    #[error(transparent)]
    Share(#[from] ShareError),
    /// The seal provider cannot be used (503): the cause names it.
    #[error("{0}")]
    Unavailable(String),
    /// The key hierarchy did not open, or storage failed (the broker stays
    /// sealed; 500 with the cause, which names the seal).
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// What `sys/init` takes (Vault's fields).
#[derive(Debug, Default, Deserialize)]
pub struct InitRequest {
    /// Unseal key shares (`shamir`).
    pub secret_shares: Option<u32>,
    /// Shares needed to unseal.
    pub secret_threshold: Option<u32>,
    /// Recovery key shares (auto-unseal seals).
    pub recovery_shares: Option<u32>,
    /// Recovery shares needed to authorize.
    pub recovery_threshold: Option<u32>,
    /// Not supported: shares are returned in the clear, over TLS.
    #[serde(default)]
    pub pgp_keys: Option<Vec<String>>,
    /// Not supported either.
    #[serde(default)]
    pub recovery_pgp_keys: Option<Vec<String>>,
    /// Not supported either.
    #[serde(default)]
    pub root_token_pgp_key: Option<String>,
    /// Accepted for compatibility: shares are never stored.
    #[serde(default)]
    pub stored_shares: Option<u32>,
}

/// What `sys/init` answers: the shares and the root token, shown once.
pub struct InitResponse {
    /// Unseal key shares, hex (`shamir` only).
    pub keys: Vec<Zeroizing<String>>,
    /// The same, base64.
    pub keys_base64: Vec<Zeroizing<String>>,
    /// Recovery key shares, hex (auto-unseal seals).
    pub recovery_keys: Vec<Zeroizing<String>>,
    /// The same, base64.
    pub recovery_keys_base64: Vec<Zeroizing<String>>,
    /// The root token.
    pub root_token: Zeroizing<String>,
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &self.keys.len())
            .field("recovery_keys", &self.recovery_keys.len())
            .finish_non_exhaustive()
    }
}

impl InitResponse {
    /// Vault's JSON shape.
    pub fn to_json(&self) -> Value {
        fn list(v: &[Zeroizing<String>]) -> Vec<&str> {
            v.iter().map(|s| s.as_str()).collect()
        }
        json!({
            "keys": list(&self.keys),
            "keys_base64": list(&self.keys_base64),
            "recovery_keys": list(&self.recovery_keys),
            "recovery_keys_base64": list(&self.recovery_keys_base64),
            "root_token": self.root_token.as_str(),
        })
    }
}

/// Key shares as text, shown once.
type Shares = Vec<Zeroizing<String>>;

fn split_shares(
    key: &[u8; 32],
    shares: u32,
    threshold: u32,
) -> Result<(Shares, Shares), ShareError> {
    let made = shamir::split(key, shares, threshold)?;
    Ok((
        made.iter().map(|s| shamir::to_hex(s)).collect(),
        made.iter().map(|s| shamir::to_base64(s)).collect(),
    ))
}

/// Initializes `storage` for a seal of `kind`: for `shamir`, makes and
/// splits the unseal key; for the others, wraps the root key with `seal`
/// and makes and splits a recovery key. Used by `sys/init` and by
/// `broker operator init`.
pub async fn initialize(
    storage: &Storage,
    kind: SealKind,
    seal: Option<&dyn Seal>,
    request: &InitRequest,
) -> Result<InitResponse, UnsealError> {
    if request.pgp_keys.as_ref().is_some_and(|k| !k.is_empty())
        || request
            .recovery_pgp_keys
            .as_ref()
            .is_some_and(|k| !k.is_empty())
        || request
            .root_token_pgp_key
            .as_ref()
            .is_some_and(|k| !k.is_empty())
    {
        return Err(UnsealError::Invalid(
            "PGP-encrypted key shares are not supported: shares are returned once, \
             in the clear, over this connection (use TLS)"
                .into(),
        ));
    }
    if keys::is_initialized(storage).await? {
        return Err(UnsealError::Core(CoreError::AlreadyInitialized));
    }
    let mut response = InitResponse {
        keys: Vec::new(),
        keys_base64: Vec::new(),
        recovery_keys: Vec::new(),
        recovery_keys_base64: Vec::new(),
        root_token: Zeroizing::new(String::new()),
    };
    if kind == SealKind::Shamir {
        let shares = request.secret_shares.unwrap_or(5);
        let threshold = request.secret_threshold.unwrap_or(3.min(shares));
        shamir::check_split(shares, threshold)?;
        let unseal_key = shamir::random_key().map_err(CoreError::Keyring)?;
        (response.keys, response.keys_base64) = split_shares(&unseal_key, shares, threshold)?;
        let config = SealConfig {
            kind,
            secret_shares: shares,
            secret_threshold: threshold,
            recovery_shares: 0,
            recovery_threshold: 0,
        };
        let seal = ShamirSeal::new(unseal_key);
        response.root_token = Core::initialize(storage, &seal, &config).await?;
        return Ok(response);
    }
    let seal = seal.ok_or_else(|| UnsealError::Invalid(format!("the {kind} seal is not open")))?;
    let shares = request.recovery_shares.unwrap_or(5);
    let threshold = request.recovery_threshold.unwrap_or(3.min(shares));
    if shares > 0 {
        shamir::check_split(shares, threshold)?;
    }
    let config = SealConfig {
        kind,
        secret_shares: 0,
        secret_threshold: 0,
        recovery_shares: shares,
        recovery_threshold: if shares > 0 { threshold } else { 0 },
    };
    let recovery_key = if shares > 0 {
        let key = shamir::random_key().map_err(CoreError::Keyring)?;
        (response.recovery_keys, response.recovery_keys_base64) =
            split_shares(&key, shares, threshold)?;
        Some(key)
    } else {
        None
    };
    // The recovery key first: storage counts as initialized only once the
    // keyring is written, last, by `Core::initialize`.
    if let Some(key) = &recovery_key {
        keys::store_recovery_key(storage, seal, key).await?;
    }
    response.root_token = Core::initialize(storage, seal, &config).await?;
    Ok(response)
}

/// Key shares given so far to `sys/unseal`, and what they are for.
#[derive(Default)]
struct Progress {
    nonce: String,
    shares: Vec<Zeroizing<Vec<u8>>>,
    /// Whether these shares are the previous seal's, for a migration.
    migrate: bool,
}

/// How the broker is unsealed: what the configuration names, and what
/// storage was sealed with before, if it differs (a seal migration).
pub struct SealSetup {
    /// The configured seal's kind.
    pub kind: SealKind,
    /// The configured seal, open; `None` for `shamir`, whose key comes
    /// from shares, or when the provider could not be opened (`error`).
    pub seal: Option<Arc<dyn Seal>>,
    /// Why the configured seal could not be opened.
    pub error: Option<String>,
    /// The seal storage was wrapped with before a migration, if open.
    pub previous: Option<Arc<dyn Seal>>,
    /// Opens the configured seal again (an HSM or KMS that was down at
    /// start may be back); `None` when there is nothing to retry.
    pub reopen: Option<Reopen>,
}

impl std::fmt::Debug for SealSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealSetup")
            .field("kind", &self.kind)
            .field("open", &self.seal.is_some())
            .field("previous", &self.previous.as_ref().map(|p| p.kind()))
            .finish_non_exhaustive()
    }
}

/// Opens a seal provider from its settings. With `true`, it may create the
/// provider's key (a `local` key file, at `sys/init`).
pub type Reopen =
    Box<dyn Fn(bool) -> Result<Option<Arc<dyn Seal>>, crate::seal::SealError> + Send + Sync>;

/// Starts and stops what runs beside an unsealed core (the expiration
/// worker, periodic jobs); the server provides it.
pub trait Beside: Send + Sync {
    /// Called once a core is unsealed; returns the tasks to stop at seal.
    fn start(&self, core: Arc<Core>) -> Vec<tokio::task::JoinHandle<()>>;
}

/// The broker's seal state.
pub struct Unsealer {
    storage: Storage,
    setup: SealSetup,
    /// The configured seal once open (from `setup`, or a later reopen),
    /// or why it is not.
    seal: RwLock<Result<Arc<dyn Seal>, String>>,
    /// Why the last auto-unseal failed.
    last_error: RwLock<Option<String>>,
    /// The rekey in progress, if any.
    rekey: tokio::sync::Mutex<Option<rekey::Rekey>>,
    catalog: Arc<Catalog>,
    options: CoreOptions,
    core: RwLock<Option<Arc<Core>>>,
    progress: tokio::sync::Mutex<Progress>,
    /// Serializes unseal attempts, seals and inits.
    transition: tokio::sync::Mutex<()>,
    beside: Option<Box<dyn Beside>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Set by `sys/seal`: an auto-unseal seal then waits for recovery
    /// shares instead of unsealing itself again.
    sealed_by_operator: std::sync::atomic::AtomicBool,
    myself: Weak<Unsealer>,
}

impl std::fmt::Debug for Unsealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealer")
            .field("kind", &self.setup.kind)
            .finish_non_exhaustive()
    }
}

impl Unsealer {
    /// A sealed broker over `storage`.
    pub fn new(
        storage: Storage,
        setup: SealSetup,
        catalog: Arc<Catalog>,
        options: CoreOptions,
        beside: Option<Box<dyn Beside>>,
    ) -> Arc<Self> {
        let seal = match (&setup.seal, &setup.error) {
            (Some(seal), _) => Ok(seal.clone()),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => Err(format!("the {} seal is not open", setup.kind)),
        };
        Arc::new_cyclic(|myself| Self {
            storage,
            seal: RwLock::new(seal),
            last_error: RwLock::new(None),
            rekey: tokio::sync::Mutex::new(None),
            setup,
            catalog,
            options,
            core: RwLock::new(None),
            progress: tokio::sync::Mutex::default(),
            transition: tokio::sync::Mutex::new(()),
            beside,
            tasks: std::sync::Mutex::default(),
            sealed_by_operator: std::sync::atomic::AtomicBool::new(false),
            myself: myself.clone(),
        })
    }

    /// The running core, if unsealed.
    pub fn core(&self) -> Option<Arc<Core>> {
        self.core.read().ok().and_then(|c| c.clone())
    }

    /// The configured seal's kind.
    pub fn kind(&self) -> SealKind {
        self.setup.kind
    }

    async fn install(&self, core: Arc<Core>) {
        core.attach_unsealer(self.myself.clone());
        let tasks = match &self.beside {
            Some(beside) => beside.start(core.clone()),
            None => Vec::new(),
        };
        if let Ok(mut held) = self.tasks.lock() {
            held.extend(tasks);
        }
        if let Ok(mut slot) = self.core.write() {
            *slot = Some(core);
        }
        self.sealed_by_operator
            .store(false, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(seal = %self.setup.kind, "the broker is unsealed");
    }

    /// Opens the core with `seal`; on a seal migration (storage wrapped by
    /// `seal`, the configuration naming another), wraps the root key with
    /// the configured seal first. `recovery` is the recovery key a
    /// `shamir` → auto migration keeps (the old unseal key).
    async fn open_with(
        &self,
        seal: Arc<dyn Seal>,
        recovery: Option<&[u8; 32]>,
    ) -> Result<Arc<Core>, UnsealError> {
        let stored = keys::seal_config(&self.storage).await?;
        let stored_kind = stored.as_ref().map_or(SealKind::Local, |c| c.kind);
        if stored_kind != self.setup.kind && seal.kind() == stored_kind {
            self.migrate(seal.as_ref(), stored.as_ref(), recovery)
                .await?;
            let target = self.configured_seal()?;
            return Ok(Core::open(
                self.storage.clone(),
                target,
                self.catalog.clone(),
                self.options.clone(),
            )
            .await?);
        }
        Ok(Core::open(
            self.storage.clone(),
            seal,
            self.catalog.clone(),
            self.options.clone(),
        )
        .await?)
    }

    /// Moves the root key from the seal `from` to the configured one.
    async fn migrate(
        &self,
        from: &dyn Seal,
        stored: Option<&SealConfig>,
        recovery: Option<&[u8; 32]>,
    ) -> Result<(), UnsealError> {
        let target = self.configured_seal()?;
        let target = target.as_ref();
        if self.setup.kind == SealKind::Shamir {
            return Err(UnsealError::Invalid(
                "migrating to the shamir seal is not supported: shares would have nowhere to be shown"
                    .into(),
            ));
        }
        let (root, _keyring) = keys::unseal(&self.storage, from).await?;
        let mut config = SealConfig {
            kind: self.setup.kind,
            secret_shares: 0,
            secret_threshold: 0,
            recovery_shares: stored.map_or(0, |c| c.recovery_shares),
            recovery_threshold: stored.map_or(0, |c| c.recovery_threshold),
        };
        // The old unseal shares become the recovery shares, as in Vault.
        if let (Some(old), Some(key)) = (stored, recovery) {
            config.recovery_shares = old.secret_shares;
            config.recovery_threshold = old.secret_threshold;
            keys::store_recovery_key(&self.storage, target, key).await?;
        } else if let Some(key) = keys::recovery_key(&self.storage, from).await? {
            keys::store_recovery_key(&self.storage, target, &key).await?;
        }
        keys::rewrap_root(&self.storage, &root, target, &config).await?;
        tracing::warn!(from = %from.kind(), to = %self.setup.kind, "seal migrated: the root key is now wrapped by the new seal");
        Ok(())
    }

    /// The configured seal, opening it again if it failed before.
    fn configured_seal(&self) -> Result<Arc<dyn Seal>, UnsealError> {
        self.open_seal(false)
    }

    /// The configured seal; with `create`, its key may be made (at init).
    fn open_seal(&self, create: bool) -> Result<Arc<dyn Seal>, UnsealError> {
        if let Ok(Ok(seal)) = self.seal.read().as_deref() {
            return Ok(seal.clone());
        }
        let reopened = match &self.setup.reopen {
            Some(reopen) => match reopen(create) {
                Ok(Some(seal)) => Ok(seal),
                Ok(None) => Err(format!("the {} seal is not open", self.setup.kind)),
                Err(e) => Err(e.to_string()),
            },
            None => Err(self.unavailable_text()),
        };
        if let Ok(mut slot) = self.seal.write() {
            *slot = reopened.clone();
        }
        reopened.map_err(UnsealError::Unavailable)
    }

    /// Why the broker did not unseal itself: the last auto-unseal's error,
    /// or why the configured seal is not open.
    pub fn unavailable_text(&self) -> String {
        if let Ok(Some(last)) = self.last_error.read().as_deref() {
            return last.clone();
        }
        match self.seal.read().as_deref() {
            Ok(Err(e)) => e.clone(),
            _ => format!("the {} seal is not open", self.setup.kind),
        }
    }

    /// Unseals with the configured auto-unseal seal (or the previous one,
    /// for a migration); nothing for `shamir`. On failure the broker stays
    /// sealed, and the cause is what sealed requests are told.
    pub async fn auto_unseal(&self) -> Result<bool, UnsealError> {
        let result = self.try_auto_unseal().await;
        if let Ok(mut last) = self.last_error.write() {
            *last = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    async fn try_auto_unseal(&self) -> Result<bool, UnsealError> {
        if !self.setup.kind.auto_unseals() || self.core().is_some() {
            return Ok(self.core().is_some());
        }
        let _one = self.transition.lock().await;
        if !keys::is_initialized(&self.storage).await? {
            return Ok(false);
        }
        let stored_kind = keys::seal_config(&self.storage)
            .await?
            .map_or(SealKind::Local, |c| c.kind);
        let seal = if stored_kind == self.setup.kind {
            self.configured_seal()?
        } else if stored_kind == SealKind::Shamir {
            // A shamir → auto migration needs the old shares: sys/unseal
            // with migrate=true.
            return Ok(false);
        } else {
            self.setup.previous.clone().ok_or_else(|| {
                UnsealError::Invalid(format!(
                    "storage is sealed by the {stored_kind} seal and the configuration names {}: \
                     to migrate, give the old seal as [previous_seal]",
                    self.setup.kind
                ))
            })?
        };
        let core = self.open_with(seal, None).await?;
        self.install(core).await;
        Ok(true)
    }

    /// Keeps trying to auto-unseal every `every` while sealed, unless an
    /// operator sealed the broker (then recovery shares are needed).
    pub fn spawn_auto_unseal(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = me.upgrade() else { return };
                if me.core().is_some()
                    || me
                        .sealed_by_operator
                        .load(std::sync::atomic::Ordering::SeqCst)
                {
                    continue;
                }
                if let Err(e) = me.auto_unseal().await {
                    tracing::error!(error = %e, "auto-unseal failed; the broker stays sealed and retries");
                }
            }
        })
    }

    /// `sys/seal-status` in Vault's shape.
    pub async fn status(&self) -> Result<Value, UnsealError> {
        let initialized = keys::is_initialized(&self.storage).await?;
        let stored = keys::seal_config(&self.storage).await?;
        let (n, t) = stored.as_ref().map_or((0, 0), SealConfig::operator_split);
        let migration =
            initialized && stored.as_ref().map_or(SealKind::Local, |c| c.kind) != self.setup.kind;
        let progress = self.progress.lock().await;
        let core = self.core();
        Ok(json!({
            "type": self.setup.kind.as_str(),
            "initialized": initialized,
            "sealed": core.is_none(),
            "t": t,
            "n": n,
            "progress": progress.shares.len(),
            "nonce": progress.nonce,
            "version": env!("CARGO_PKG_VERSION"),
            "build_date": "",
            "migration": migration,
            "cluster_name": "broker",
            "cluster_id": core.as_ref().map(|c| c.cluster_id().to_owned()).unwrap_or_default(),
            "recovery_seal": self.setup.kind.auto_unseals(),
            "storage_type": "broker",
        }))
    }

    /// `PUT sys/init`: initializes, then (auto-unseal seals) unseals.
    pub async fn initialize(&self, request: &InitRequest) -> Result<InitResponse, UnsealError> {
        let response = {
            let _one = self.transition.lock().await;
            let seal = if self.setup.kind.auto_unseals() {
                Some(self.open_seal(true)?)
            } else {
                None
            };
            initialize(&self.storage, self.setup.kind, seal.as_deref(), request).await?
        };
        if self.setup.kind.auto_unseals() {
            self.auto_unseal().await?;
        }
        Ok(response)
    }

    /// `PUT sys/unseal`: takes one key share (unseal shares for `shamir`,
    /// recovery shares after `sys/seal` of an auto-unseal seal, the old
    /// seal's shares with `migrate`); unseals once the threshold is met.
    pub async fn unseal(
        &self,
        key: Option<&str>,
        reset: bool,
        migrate: bool,
    ) -> Result<Value, UnsealError> {
        if self.core().is_some() {
            return self.status().await;
        }
        if reset {
            *self.progress.lock().await = Progress::default();
            return self.status().await;
        }
        let Some(key) = key else {
            return Err(UnsealError::Invalid(
                "'key' must be given (a key share), or 'reset' set to true".into(),
            ));
        };
        let stored = keys::seal_config(&self.storage).await?.ok_or_else(|| {
            UnsealError::Invalid("the broker is not initialized: PUT sys/init first".into())
        })?;
        if stored.kind != self.setup.kind && stored.kind == SealKind::Shamir && !migrate {
            return Err(UnsealError::Invalid(
                "the configured seal differs from the one storage was sealed with: \
                 give the old seal's shares with migrate=true"
                    .into(),
            ));
        }
        let share = shamir::parse_share(key)?;
        let (shares, threshold) = {
            let mut progress = self.progress.lock().await;
            if progress.shares.is_empty() {
                progress.nonce = crate::core::random_uuid();
                progress.migrate = migrate;
            }
            if progress.migrate != migrate {
                return Err(UnsealError::Invalid(
                    "migrate must be the same for every share of one unseal (reset to start over)"
                        .into(),
                ));
            }
            if !progress.shares.iter().any(|s| **s == *share) {
                progress.shares.push(share);
            }
            let (_, threshold) = stored.operator_split();
            if (progress.shares.len() as u32) < threshold {
                drop(progress);
                return self.status().await;
            }
            let taken = std::mem::take(&mut progress.shares);
            *progress = Progress::default();
            (taken, threshold)
        };
        let _one = self.transition.lock().await;
        if self.core().is_some() {
            return self.status().await;
        }
        let key = shamir::combine(&shares, u8::try_from(threshold).unwrap_or(u8::MAX))?;
        drop(shares);
        let core = if stored.kind == SealKind::Shamir {
            let seal: Arc<dyn Seal> = Arc::new(ShamirSeal::new(key.clone()));
            self.open_with(seal, Some(&key))
                .await
                .map_err(|e| match e {
                    UnsealError::Core(CoreError::Seal(crate::seal::SealError::Unwrap {
                        ..
                    })) => UnsealError::Share(ShareError::Wrong),
                    other => other,
                })?
        } else {
            // Recovery shares: they authorize, the seal unwraps.
            let seal = self.configured_seal()?;
            let expected = keys::recovery_key(&self.storage, seal.as_ref())
                .await?
                .ok_or_else(|| UnsealError::Invalid("this broker has no recovery key".into()))?;
            if !same_key(&expected, &key) {
                return Err(UnsealError::Share(ShareError::Wrong));
            }
            self.open_with(seal, None).await?
        };
        self.install(core).await;
        self.status().await
    }

    /// `PUT sys/seal`: stops the core's workers, drops its keys, and
    /// forgets it; the broker answers 503 until unsealed again.
    pub async fn seal(&self) {
        let _one = self.transition.lock().await;
        self.sealed_by_operator
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stop().await;
        tracing::warn!("the broker is sealed");
    }

    /// Stops the core (at seal, and when the server exits): workers first,
    /// then the audit heads are saved, then the keys dropped.
    pub async fn stop(&self) {
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let core = self.core.write().ok().and_then(|mut c| c.take());
        if let Some(core) = core {
            // Its jobs move to another node now, not when the holds run out.
            core.cluster().leave().await;
            core.audit().save_heads().await;
            core.seal();
        }
    }

    /// Opens a core directly with `seal` (dev mode, tests): no shares.
    pub async fn open_now(&self, seal: Arc<dyn Seal>) -> Result<Arc<Core>, UnsealError> {
        let _one = self.transition.lock().await;
        let core = self.open_with(seal, None).await?;
        self.install(core.clone()).await;
        Ok(core)
    }
}

/// Whether two keys are equal, compared in constant time.
pub(crate) fn same_key(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}
