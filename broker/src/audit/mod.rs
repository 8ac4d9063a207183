//! Audit: a fail-closed, HMAC'd, hash-chained record of every request,
//! every response and every lease revocation.
//!
//! Devices are Vault's `file` type (a path, or `stdout`), enabled through
//! `sys/audit` or declared in the configuration file. Each line is a JSON
//! entry in Vault's shape, in a keyed hash chain with signed checkpoints
//! ([`chain`], keys in [`keys`]) that `broker audit verify` checks with the
//! public key (`sys/audit-public-key`). String values in request and
//! response data, tokens and accessors are HMAC-SHA256'd with a salt made
//! per broker and sealed in storage, so the log holds no secret yet an
//! operator can still find a value (`sys/audit-hash`); what is logged in
//! clear is bounded in size ([`bound`]).
//!
//! Each device's file is anchored: its first line and last checkpoint are
//! recorded in sealed storage at every checkpoint, and a file that no longer
//! matches at start (rewritten, cut, or another file put in its place) is
//! reported and not written to until an operator moves it aside.
//!
//! This module must never write a secret in clear (only `log_raw`, a
//! debugging option, does), and must never report success for an entry no
//! device took: the caller then fails the request (fail closed).

pub mod bound;
pub mod chain;
mod file;
pub mod keys;
mod salt;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use file::{FileDevice, Target};
pub use salt::Salt;

use crate::barrier::SealedStorage;
use chain::{Anchor, Reason};
use keys::ChainKeys;

/// The devices enabled over the API.
pub const DEVICES_KEY: &str = "core/audit/devices";
/// Each device's [`Anchor`]: its file's first line and last checkpoint.
const ANCHORS_KEY: &str = "core/audit/anchors";
/// Where a node keeps its anchors: its own record when several nodes
/// share the storage, else the one record.
fn anchors_key(node: Option<&str>) -> String {
    match node {
        Some(node) => format!("{ANCHORS_KEY}/{node}"),
        None => ANCHORS_KEY.to_owned(),
    }
}

/// Where earlier versions kept unkeyed chain heads; dropped at start.
const LEGACY_HEADS_KEY: &str = "core/audit/heads";

/// Why auditing failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No enabled device could take the entry: the request must fail.
    #[error("no audit device could record the request; refusing to serve it")]
    Unavailable,
    /// A device configuration is invalid or not allowed.
    #[error("{0}")]
    Invalid(String),
    /// The device cannot be opened or written.
    #[error("audit device {path}: {source}")]
    Device {
        /// The device's path (`file/`).
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Storage failed.
    #[error(transparent)]
    Sealed(#[from] crate::barrier::SealedError),
}

/// Where `sys/audit` may create files.
#[derive(Debug, Clone, Default)]
pub struct AuditPolicy {
    /// Dev mode: any path (still mode 0600, still no symlink at the end).
    pub any_path: bool,
    /// Directories under which `file_path` may lie.
    pub file_dirs: Vec<PathBuf>,
}

/// A device's settings, as `sys/audit` and the configuration file take them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceOptions {
    /// A path, or `stdout`.
    pub file_path: String,
    /// Log values in clear. For debugging only: the log then holds secrets.
    #[serde(default)]
    pub log_raw: bool,
    /// HMAC token accessors (default true).
    #[serde(default = "yes")]
    pub hmac_accessor: bool,
    /// Flush an issuance's line to disk before the credential is returned
    /// (default true).
    #[serde(default = "yes")]
    pub fsync: bool,
}

fn yes() -> bool {
    true
}

/// A device as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The options.
    pub options: DeviceOptions,
    /// Declared in the configuration file (not removable over the API).
    #[serde(skip)]
    pub from_config: bool,
}

struct Device {
    config: DeviceConfig,
    file: Arc<FileDevice>,
}

/// Who made a request, as the audit log shows it.
#[derive(Clone)]
pub struct AuditAuth {
    /// The token (HMAC'd in the log, never written in clear).
    pub client_token: zeroize::Zeroizing<String>,
    /// The token's accessor.
    pub accessor: String,
    /// The token's display name.
    pub display_name: String,
    /// Its policies.
    pub policies: Vec<String>,
    /// Its TTL in seconds (0: none).
    pub token_ttl: u64,
    /// `service` or `batch`.
    pub token_type: &'static str,
}

impl std::fmt::Debug for AuditAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditAuth")
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// A request, as the audit log shows it.
#[derive(Clone)]
pub struct AuditRequest {
    /// The request id (also in the response envelope).
    pub id: String,
    /// `read`, `list`, `update`, `delete`.
    pub operation: &'static str,
    /// Under `/v1/`.
    pub path: String,
    /// The mount's engine type, if the path is on a mount.
    pub mount_type: Option<String>,
    /// The mount's accessor.
    pub mount_accessor: Option<String>,
    /// The client.
    pub remote: SocketAddr,
    /// The body.
    pub data: Map<String, Value>,
    /// Keys whose values are logged in clear (bounded), because they name
    /// things rather than hold secrets and an operator needs them to follow
    /// a lease: the fields the path's table marks so. Every other string,
    /// in the request and in the response, is HMAC'd.
    pub clear_fields: std::sync::Arc<[&'static str]>,
}

impl std::fmt::Debug for AuditRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the body: it may hold a password.
        f.debug_struct("AuditRequest")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A response, as the audit log shows it.
#[derive(Clone, Default)]
pub struct AuditResponse {
    /// The HTTP status.
    pub status: u16,
    /// The response's `data`.
    pub data: Option<Value>,
    /// The lease handed out or renewed.
    pub lease_id: Option<String>,
    /// The lease's TTL, seconds.
    pub lease_duration: i64,
    /// The error message of a failed request.
    pub error: Option<String>,
    /// The response hands out a credential or a key (durable before it leaves).
    pub credential: bool,
    /// The `auth` block of a response that hands out a token.
    pub auth: Option<Value>,
    /// The `wrap_info` block of a wrapped response.
    pub wrap_info: Option<Value>,
}

impl std::fmt::Debug for AuditResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the data: it holds the credential.
        f.debug_struct("AuditResponse")
            .field("status", &self.status)
            .field("lease_id", &self.lease_id)
            .finish_non_exhaustive()
    }
}

/// The audit broker: the enabled devices and the salt.
pub struct Auditor {
    store: SealedStorage,
    salt: Salt,
    keys: Arc<ChainKeys>,
    policy: AuditPolicy,
    devices: tokio::sync::RwLock<BTreeMap<String, Device>>,
    /// Serializes saving the anchors, so an older set never lands last.
    anchors: tokio::sync::Mutex<()>,
    /// This node's id, on storage several nodes share.
    node: Option<String>,
    /// Where this node's anchors are kept.
    anchors_key: String,
    /// Devices another node enabled that this node could not open: while
    /// no device here takes an entry, these keep requests refused (fail
    /// closed) rather than served unaudited.
    unopened: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

fn normalize(path: &str) -> Result<String, AuditError> {
    let p = path.trim_matches('/');
    if p.is_empty()
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(AuditError::Invalid(format!(
            "invalid audit device path {path:?}: use letters, digits, '-', '_', '.'"
        )));
    }
    Ok(format!("{p}/"))
}

impl AuditPolicy {
    /// Where a device asked for over the API may write `file_path`: refused
    /// unless it lies under one of `file_dirs` (links in the directory part
    /// resolved now), then opened beneath that directory with no link
    /// followed on the way, so the check cannot be raced.
    fn target(&self, file_path: &str) -> Result<Target, AuditError> {
        if file_path == "stdout" {
            return Ok(Target::Stdout);
        }
        if self.any_path {
            return Ok(Target::parse(file_path));
        }
        let path = Path::new(file_path);
        let refuse = |why: &str| {
            Err(AuditError::Invalid(format!(
                "file_path {file_path:?} is not allowed: {why}"
            )))
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return refuse("it names no file");
        };
        if !path.is_absolute() || name == ".." {
            return refuse("use an absolute path to a file");
        }
        let Ok(parent) = parent.canonicalize() else {
            return refuse("its directory does not exist");
        };
        let beneath = self.file_dirs.iter().find_map(|dir| {
            let dir = dir.canonicalize().ok()?;
            let below = parent.strip_prefix(&dir).ok()?.join(name);
            Some(Target::Beneath { dir, file: below })
        });
        match beneath {
            Some(target) => Ok(target),
            None => refuse(
                "audit files must lie under a directory listed in the configuration's audit.file_dirs",
            ),
        }
    }
}

impl Auditor {
    /// Opens the devices enabled before (from storage) and those the
    /// configuration file declares. A device that will not open stops the
    /// broker from starting: it must not serve unaudited.
    ///
    /// `node` is this node's id when several nodes share the storage: each
    /// node then writes a chain of its own (every line names the node) and
    /// keeps its own anchors (`core/audit/anchors/<node>`; the shared record
    /// of a single node before is read once, as a start).
    pub async fn open(
        store: SealedStorage,
        policy: AuditPolicy,
        declared: Vec<(String, DeviceConfig)>,
        node: Option<String>,
    ) -> Result<Self, AuditError> {
        let salt = Salt::load_or_create(&store).await?;
        let keys = Arc::new(ChainKeys::load_or_create(&store).await?);
        let stored: BTreeMap<String, DeviceConfig> =
            store.get(DEVICES_KEY).await?.unwrap_or_default();
        let anchors_key = anchors_key(node.as_deref());
        let mut anchors: BTreeMap<String, Anchor> = match store.get(&anchors_key).await? {
            Some(anchors) => anchors,
            None => store.get(ANCHORS_KEY).await?.unwrap_or_default(),
        };
        store.delete(LEGACY_HEADS_KEY).await?;
        let mut devices = BTreeMap::new();
        for (path, mut config) in declared {
            config.from_config = true;
            let path = normalize(&path)?;
            let anchor = anchors.remove(&path);
            // The operator wrote this path in the configuration: taken as is.
            let target = Target::parse(&config.options.file_path);
            devices.insert(
                path.clone(),
                Self::start(&path, config, target, &keys, anchor, node.clone())?,
            );
        }
        for (path, config) in stored {
            if !devices.contains_key(&path) {
                let anchor = anchors.remove(&path);
                // Enabled over the API: still within what the policy allows now.
                let target = policy.target(&config.options.file_path)?;
                devices.insert(
                    path.clone(),
                    Self::start(&path, config, target, &keys, anchor, node.clone())?,
                );
            }
        }
        for (path, device) in &devices {
            match device.file.refused() {
                Some(why) => tracing::error!(
                    device = %path,
                    file = %device.config.options.file_path,
                    reason = %why,
                    "the audit file does not match the chain this broker recorded; the device refuses to write until the file is moved aside and the broker reopens it (SIGHUP or restart)"
                ),
                // The checkpoint that marks this start (and anchors a new file).
                None => {
                    if let Err(e) = device.file.start() {
                        crate::metrics::metrics().audit_failure(path);
                        tracing::error!(device = %path, error = %e, "audit device failed");
                    }
                }
            }
        }
        let auditor = Self {
            store,
            salt,
            keys,
            node,
            anchors_key,
            unopened: Default::default(),
            policy,
            devices: tokio::sync::RwLock::new(devices),
            anchors: tokio::sync::Mutex::new(()),
        };
        auditor.save_anchors(&*auditor.devices.read().await).await;
        Ok(auditor)
    }

    fn start(
        path: &str,
        config: DeviceConfig,
        target: Target,
        keys: &Arc<ChainKeys>,
        anchor: Option<Anchor>,
        node: Option<String>,
    ) -> Result<Device, AuditError> {
        if config.kind != "file" {
            return Err(AuditError::Invalid(format!(
                "unknown audit device type {:?}; this broker offers: file",
                config.kind
            )));
        }
        let file = FileDevice::open(target, keys.clone(), anchor, node).map_err(|source| {
            AuditError::Device {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(Device {
            config,
            file: Arc::new(file),
        })
    }

    /// Enables a device at `path` (`sys/audit/:path`), writing a first entry
    /// to prove it works.
    pub async fn enable(&self, path: &str, config: DeviceConfig) -> Result<(), AuditError> {
        let path = normalize(path)?;
        let target = self.policy.target(&config.options.file_path)?;
        // Over the API, only a regular file (or stdout): opening a FIFO or a
        // device could block or write somewhere unexpected.
        if config.options.file_path != "stdout"
            && std::fs::symlink_metadata(&config.options.file_path)
                .is_ok_and(|m| !m.file_type().is_file())
        {
            return Err(AuditError::Invalid(format!(
                "file_path {:?} exists and is not a regular file",
                config.options.file_path
            )));
        }
        let mut devices = self.devices.write().await;
        if devices.contains_key(&path) {
            return Err(AuditError::Invalid(format!(
                "path already in use at {path}"
            )));
        }
        let file_path = config.options.file_path.clone();
        // A new device starts a new chain in a new file, or goes on in a
        // file that holds only this broker's lines.
        // Off the async threads: an existing file is read in full.
        let device = {
            let (path, keys, node) = (path.clone(), self.keys.clone(), self.node.clone());
            tokio::task::spawn_blocking(move || {
                Self::start(&path, config, target, &keys, None, node)
            })
            .await
            .map_err(|e| AuditError::Invalid(format!("audit open task failed: {e}")))??
        };
        if let Some(why) = device.file.refused() {
            return Err(AuditError::Invalid(format!(
                "file_path {file_path:?} holds lines this broker cannot vouch for ({why}); choose another file or move it aside"
            )));
        }
        // Compared by what was opened, not by the string: `/d//a.log` and a
        // link to `/d/a.log` are the same file.
        let identity = device.file.identity();
        if devices.values().any(|d| {
            d.config.options.file_path == file_path
                || (identity.is_some() && d.file.identity() == identity)
        }) {
            return Err(AuditError::Invalid(format!(
                "another audit device already writes to {file_path}"
            )));
        }
        let entry = event_entry("audit-device-enabled", json!({ "path": path }));
        let file = device.file.clone();
        tokio::task::spawn_blocking(move || file.append(entry, true))
            .await
            .map_err(|e| AuditError::Invalid(format!("audit write task failed: {e}")))?
            .map_err(|source| AuditError::Device {
                path: path.clone(),
                source,
            })?;
        devices.insert(path, device);
        self.persist(&devices).await?;
        self.save_anchors(&devices).await;
        Ok(())
    }

    /// Disables the device at `path`.
    pub async fn disable(&self, path: &str) -> Result<(), AuditError> {
        let path = normalize(path)?;
        let mut devices = self.devices.write().await;
        match devices.get(&path) {
            None => return Ok(()),
            Some(d) if d.config.from_config => {
                return Err(AuditError::Invalid(format!(
                    "{path} is declared in the configuration file; remove it there"
                )));
            }
            Some(_) => {}
        }
        devices.remove(&path);
        self.persist(&devices).await?;
        self.save_anchors(&devices).await;
        Ok(())
    }

    /// Brings the devices in line with the stored list after another node
    /// enabled or disabled one: each node opens the device's file on its
    /// own machine. A device this node cannot open is logged and left out:
    /// the other devices still record this node's requests, and with none
    /// the node refuses requests as it would with a failed device.
    pub async fn sync(&self) -> Result<(), AuditError> {
        // Read under the lock `enable` and `disable` store under: a list
        // read before their write never undoes it.
        let mut devices = self.devices.write().await;
        let stored: BTreeMap<String, DeviceConfig> =
            self.store.get(DEVICES_KEY).await?.unwrap_or_default();
        let before = devices.len();
        devices.retain(|path, d| d.config.from_config || stored.contains_key(path));
        let mut changed = devices.len() != before;
        let mut unopened = std::collections::BTreeSet::new();
        for (path, config) in stored {
            if devices.contains_key(&path) {
                continue;
            }
            let target = match self.policy.target(&config.options.file_path) {
                Ok(target) => target,
                Err(e) => {
                    tracing::error!(device = %path, error = %e, "another node enabled an audit device this node may not open");
                    unopened.insert(path);
                    continue;
                }
            };
            let opened = {
                let (path, keys, node) = (path.clone(), self.keys.clone(), self.node.clone());
                tokio::task::spawn_blocking(move || {
                    Self::start(&path, config, target, &keys, None, node)
                })
                .await
                .map_err(|e| AuditError::Invalid(format!("audit open task failed: {e}")))?
            };
            match opened {
                Ok(device) => {
                    if let Some(why) = device.file.refused() {
                        tracing::error!(device = %path, reason = %why, "another node enabled an audit device whose file here holds lines this broker cannot vouch for; it refuses to write");
                    } else if let Err(e) = device.file.start() {
                        tracing::error!(device = %path, error = %e, "audit device failed");
                    }
                    tracing::info!(device = %path, "opened an audit device another node enabled");
                    devices.insert(path, device);
                    changed = true;
                }
                Err(e) => {
                    tracing::error!(device = %path, error = %e, "cannot open an audit device another node enabled");
                    unopened.insert(path);
                }
            }
        }
        *self
            .unopened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = unopened;
        if changed {
            self.save_anchors(&devices).await;
        }
        Ok(())
    }

    async fn persist(&self, devices: &BTreeMap<String, Device>) -> Result<(), AuditError> {
        let stored: BTreeMap<&String, &DeviceConfig> = devices
            .iter()
            .filter(|(_, d)| !d.config.from_config)
            .map(|(p, d)| (p, &d.config))
            .collect();
        self.store.put(DEVICES_KEY, &stored).await?;
        Ok(())
    }

    /// The enabled devices.
    pub async fn list(&self) -> BTreeMap<String, DeviceConfig> {
        self.devices
            .read()
            .await
            .iter()
            .map(|(p, d)| (p.clone(), d.config.clone()))
            .collect()
    }

    /// Whether any device is enabled (here, or on another node and not
    /// openable here).
    pub async fn enabled(&self) -> bool {
        !self.devices.read().await.is_empty()
            || !self
                .unopened
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty()
    }

    /// `sys/audit-hash/:path`: `input` HMAC'd the way device `path` logs it.
    pub async fn hash(&self, path: &str, input: &str) -> Result<String, AuditError> {
        let path = normalize(path)?;
        let devices = self.devices.read().await;
        let device = devices
            .get(&path)
            .ok_or_else(|| AuditError::Invalid(format!("unknown audit device {path}")))?;
        Ok(if device.config.options.log_raw {
            input.to_owned()
        } else {
            self.salt.hmac(input)
        })
    }

    /// Reopens every file device (SIGHUP, after log rotation): the old
    /// file ends with a checkpoint, a new one begins with one. A device that
    /// refused its file checks the file afresh: once the operator has moved
    /// it aside, the device starts a new file continuing the recorded chain.
    pub async fn reopen(&self) {
        let devices = self.devices.read().await;
        for (path, device) in devices.iter() {
            let was_refused = device.file.refused().is_some();
            let file = device.file.clone();
            match tokio::task::spawn_blocking(move || file.reopen()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(device = %path, error = %e, "cannot reopen audit file")
                }
                Err(e) => tracing::error!(device = %path, error = %e, "audit reopen task failed"),
            }
            match device.file.refused() {
                Some(why) => tracing::error!(
                    device = %path,
                    reason = %why,
                    "the audit file does not match the chain this broker recorded; the device still refuses to write"
                ),
                None if was_refused => tracing::warn!(
                    device = %path,
                    "the audit device writes again: a new file continues the recorded chain"
                ),
                None => {}
            }
        }
        self.save_anchors(&devices).await;
    }

    /// At a clean stop: a closing checkpoint in every file, and the anchors
    /// saved, so the files end where an auditor and the next start expect.
    /// (The name is kept from when this saved bare chain heads.)
    pub async fn save_heads(&self) {
        let devices = self.devices.read().await;
        for (path, device) in devices.iter() {
            if device.file.refused().is_some() {
                continue;
            }
            let file = device.file.clone();
            match tokio::task::spawn_blocking(move || file.checkpoint(Reason::Shutdown)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(device = %path, error = %e, "no closing checkpoint"),
                Err(e) => tracing::error!(device = %path, error = %e, "no closing checkpoint"),
            }
        }
        self.save_anchors(&devices).await;
    }

    /// Records every device's anchor in sealed storage. A device that
    /// refused its file keeps the anchor it was checked against.
    async fn save_anchors(&self, devices: &BTreeMap<String, Device>) {
        let _one_at_a_time = self.anchors.lock().await;
        let anchors: BTreeMap<&String, Anchor> = devices
            .iter()
            .filter_map(|(path, d)| {
                d.file.take_moved();
                d.file.anchor().map(|a| (path, a))
            })
            .collect();
        if let Err(e) = self.store.put(&self.anchors_key, &anchors).await {
            tracing::error!(error = %e, "cannot record the audit chain anchors");
        }
    }

    /// The checkpoint key's public half, in PEM, and its key id.
    pub fn public_key(&self) -> (String, String) {
        let public = self.keys.public();
        (public.to_pem(), public.key_id())
    }

    /// Records a request before it is served.
    pub async fn log_request(
        &self,
        auth: Option<&AuditAuth>,
        request: &AuditRequest,
    ) -> Result<(), AuditError> {
        self.write(false, |raw, hmac_accessor| {
            self.entry("request", auth, request, None, raw, hmac_accessor)
        })
        .await
    }

    /// Records a response before it leaves. One that hands out a lease is
    /// on disk (with `fsync`) before this returns.
    pub async fn log_response(
        &self,
        auth: Option<&AuditAuth>,
        request: &AuditRequest,
        response: &AuditResponse,
    ) -> Result<(), AuditError> {
        let durable = response.lease_id.is_some() || response.credential;
        self.write(durable, |raw, hmac_accessor| {
            self.entry(
                "response",
                auth,
                request,
                Some(response),
                raw,
                hmac_accessor,
            )
        })
        .await
    }

    /// Records something that happened without a request (a revocation by
    /// the expiration worker, a rotation).
    pub async fn log_event(&self, kind: &str, details: Value) -> Result<(), AuditError> {
        self.log_events(kind, vec![details]).await
    }

    /// Records several events of one kind in one write per device (and one
    /// fsync), in order.
    pub async fn log_events(&self, kind: &str, details: Vec<Value>) -> Result<(), AuditError> {
        if details.is_empty() {
            return Ok(());
        }
        let entries: Vec<_> = details.into_iter().map(|d| event_entry(kind, d)).collect();
        self.write_all(true, |_, _| entries.clone()).await
    }

    /// Writes to every device; succeeds if at least one took the entry, or
    /// if none is enabled.
    async fn write(
        &self,
        durable: bool,
        build: impl Fn(bool, bool) -> Map<String, Value>,
    ) -> Result<(), AuditError> {
        self.write_all(durable, |raw, hmac_accessor| {
            vec![build(raw, hmac_accessor)]
        })
        .await
    }

    /// Writes entries to every device, in one write each; succeeds if at
    /// least one device took them, or if none is enabled.
    async fn write_all(
        &self,
        durable: bool,
        build: impl Fn(bool, bool) -> Vec<Map<String, Value>>,
    ) -> Result<(), AuditError> {
        let devices = self.devices.read().await;
        if devices.is_empty() {
            // No device here, but the cluster has one this node could not
            // open: refused, not served unaudited.
            let unopened = self
                .unopened
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if unopened.is_empty() {
                return Ok(());
            }
            crate::metrics::metrics()
                .audit_failure(unopened.iter().next().map_or("", String::as_str));
            return Err(AuditError::Unavailable);
        }
        let mut written = 0;
        let mut moved = false;
        for (path, device) in devices.iter() {
            let options = &device.config.options;
            let entries = build(options.log_raw, options.hmac_accessor);
            let durable = durable && options.fsync;
            let file = device.file.clone();
            match tokio::task::spawn_blocking(move || file.append_all(entries, durable)).await {
                Ok(Ok(())) => {
                    written += 1;
                    moved |= device.file.moved();
                }
                Ok(Err(e)) => {
                    crate::metrics::metrics().audit_failure(path);
                    tracing::error!(device = %path, error = %e, "audit device failed")
                }
                Err(e) => {
                    crate::metrics::metrics().audit_failure(path);
                    tracing::error!(device = %path, error = %e, "audit write task failed")
                }
            }
        }
        if moved {
            self.save_anchors(&devices).await;
        }
        if written == 0 {
            return Err(AuditError::Unavailable);
        }
        Ok(())
    }

    fn entry(
        &self,
        kind: &str,
        auth: Option<&AuditAuth>,
        request: &AuditRequest,
        response: Option<&AuditResponse>,
        raw: bool,
        hmac_accessor: bool,
    ) -> Map<String, Value> {
        let secret = |s: &str| {
            if raw { s.to_owned() } else { self.salt.hmac(s) }
        };
        let accessor = |s: &str| {
            if raw || !hmac_accessor || s.is_empty() {
                s.to_owned()
            } else {
                self.salt.hmac(s)
            }
        };
        let mut entry = Map::new();
        entry.insert("time".into(), json!(now_rfc3339()));
        entry.insert("type".into(), json!(kind));
        if let Some(a) = auth {
            entry.insert(
                "auth".into(),
                json!({
                    "client_token": secret(&a.client_token),
                    "accessor": accessor(&a.accessor),
                    "display_name": a.display_name,
                    "policies": a.policies,
                    "token_policies": a.policies,
                    "token_ttl": a.token_ttl,
                    "token_type": a.token_type,
                }),
            );
        }
        let data = if request.data.is_empty() {
            Value::Null
        } else {
            let original = Value::Object(request.data.clone());
            bound::data(
                &original,
                self.redact(&original, &request.clear_fields, raw),
                &self.salt,
            )
        };
        entry.insert(
            "request".into(),
            json!({
                "id": request.id,
                "operation": request.operation,
                "path": bound::clear_str(&request.path, &self.salt),
                "mount_type": request.mount_type,
                "mount_accessor": request.mount_accessor,
                "client_token": auth.map(|a| secret(&a.client_token)),
                "client_token_accessor": auth.map(|a| accessor(&a.accessor)),
                "remote_address": request.remote.ip().to_string(),
                "remote_port": request.remote.port(),
                "data": data,
            }),
        );
        if let Some(r) = response {
            let mut body = json!({
                "status": r.status,
                "mount_type": request.mount_type,
                "data": r.data.as_ref().map(|d| bound::data(d, self.redact(d, &request.clear_fields, raw), &self.salt)),
            });
            // A token handed out is a secret like any other: HMAC'd, with
            // only its policies and type in clear.
            const TOKEN_CLEAR: &[&str] = &[
                "policies",
                "token_policies",
                "token_type",
                "lease_duration",
                "renewable",
                "orphan",
                "num_uses",
                "ttl",
                "creation_time",
                "creation_path",
            ];
            if let Some(auth) = &r.auth {
                body["auth"] = self.redact(auth, TOKEN_CLEAR, raw);
            }
            if let Some(wrap_info) = &r.wrap_info {
                body["wrap_info"] = self.redact(wrap_info, TOKEN_CLEAR, raw);
            }
            if let Some(lease_id) = &r.lease_id {
                body["secret"] =
                    json!({ "lease_id": lease_id, "lease_duration": r.lease_duration });
            }
            entry.insert("response".into(), body);
            if let Some(e) = &r.error {
                // An error may quote the request (an unknown type, a bad name).
                entry.insert("error".into(), json!(bound::clear_str(e, &self.salt)));
            }
        }
        entry
    }

    /// Every string and number HMAC'd (a number as its JSON text: a PIN
    /// stored in a KV secret is a secret too; Vault hashes numbers it was
    /// sent as well), except under the keys in `clear` (at any depth),
    /// which are logged in clear but bounded, as keys are. `true`, `false`
    /// and `null` stay as they are.
    fn redact(&self, value: &Value, clear: &[&str], raw: bool) -> Value {
        if raw {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.salt.hmac(s)),
            Value::Number(n) => Value::String(self.salt.hmac(&n.to_string())),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact(v, clear, raw)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if clear.contains(&k.as_str()) {
                            bound::clear_value(v, &self.salt)
                        } else {
                            self.redact(v, clear, raw)
                        };
                        (bound::clear_str(k, &self.salt), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn event_entry(kind: &str, details: Value) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("time".into(), json!(now_rfc3339()));
    entry.insert("type".into(), json!("event"));
    entry.insert("event".into(), json!({ "type": kind, "details": details }));
    entry
}

#[async_trait::async_trait]
impl crate::lease::LeaseEvents for Auditor {
    async fn revoked_all(&self, lease_ids: &[String]) {
        let details = lease_ids
            .iter()
            .map(|id| json!({ "lease_id": id }))
            .collect();
        if let Err(e) = self.log_events("lease-revoked", details).await {
            tracing::error!(leases = lease_ids.len(), error = %e, "revocations not audited");
        }
    }

    async fn revoked(&self, lease_id: &str) {
        if let Err(e) = self
            .log_event("lease-revoked", json!({ "lease_id": lease_id }))
            .await
        {
            // The credential is gone either way; the failure itself is loud.
            tracing::error!(lease = %lease_id, error = %e, "revocation not audited");
        }
    }

    async fn revocation_failed(&self, lease_id: &str, attempts: i64, error: &str) {
        let details = json!({ "lease_id": lease_id, "attempts": attempts, "error": error });
        if let Err(e) = self.log_event("lease-revocation-failed", details).await {
            tracing::error!(lease = %lease_id, error = %e, "failed revocation not audited");
        }
    }

    async fn forgotten(&self, lease_id: &str) {
        if let Err(e) = self
            .log_event("lease-forgotten", json!({ "lease_id": lease_id }))
            .await
        {
            tracing::error!(lease = %lease_id, error = %e, "forced revocation not audited");
        }
    }
}
