//! The server's configuration file (`broker server --config broker.toml`).
//!
//! Parsing is strict: an unknown key is an error, so a typo never silently
//! falls back to a default. This module only reads and checks the file; it
//! must never open storage, keys or sockets (that is [`crate::server`]'s job).
//!
//! ```toml
//! [listener]
//! address = "127.0.0.1:8200"
//!
//! [storage]
//! type = "sqlite"            # or "postgres" with `url = "postgres://…"`
//! path = "/var/lib/broker/broker.db"
//!
//! [seal]                   # absent: "shamir" (key shares, as Vault)
//! type = "local"
//! key_file = "/var/lib/broker/kms.key"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::api::{Quota, RateLimits};
use crate::duration::Ttl;
use crate::listener::ListenerLimits;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or does not match the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line (never a value from the file).
        message: String,
    },
    /// Text (not from a file) is not valid TOML or does not match the schema.
    #[error("{0}")]
    Syntax(String),
    /// The settings contradict each other or are unsafe.
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the API listens.
    pub listener: ListenerConfig,
    /// Where sealed entries and leases are kept.
    pub storage: StorageConfig,
    /// What wraps the root key (`[seal]`; `[kms]`, its old name, is
    /// still read). Absent, `shamir`: the broker starts sealed until
    /// enough key shares are given.
    #[serde(default, alias = "kms")]
    pub seal: SealSettings,
    /// The seal storage was wrapped with before, during a seal migration:
    /// the broker unwraps the root key with it and wraps it again with
    /// `[seal]`. Remove it once the migration is done.
    #[serde(default)]
    pub previous_seal: Option<SealSettings>,
    /// Plugin runtime settings.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Lease expiration settings.
    #[serde(default)]
    pub leases: LeasesConfig,
    /// Request rate limiting (answers 429 past the limit). Absent, the
    /// per-client defaults apply.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Audit devices, and where `sys/audit` may create files.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Auth methods' settings.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[hsm]`: the PKCS#11 token CA keys may be generated in
    /// (`pki/root/generate/kms`). Absent, a `pkcs11` seal's token is used.
    #[serde(default)]
    pub hsm: Option<crate::hsm::HsmSettings>,
    /// The barrier's background rewrap.
    #[serde(default)]
    pub barrier: BarrierConfig,
    /// `[cluster]`: this node's id and address among the nodes sharing a
    /// PostgreSQL database.
    #[serde(default)]
    pub cluster: crate::cluster::ClusterSettings,
}

/// `[barrier]`: how fast the rewrap after `sys/rotate` walks storage. It
/// reads `rewrap_batch` values at a time and pauses `rewrap_pause_ms`
/// after each batch, leaving the storage to requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BarrierConfig {
    /// Values per batch (1 to 10000).
    pub rewrap_batch: u32,
    /// Milliseconds of pause after each batch (at most 60000).
    pub rewrap_pause_ms: u64,
}

impl Default for BarrierConfig {
    fn default() -> Self {
        let defaults = crate::core::rewrap::RewrapSettings::default();
        Self {
            rewrap_batch: defaults.batch,
            rewrap_pause_ms: u64::try_from(defaults.pause.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `[auth.lockout]`: failed logins before an identity is locked.
    #[serde(default)]
    pub lockout: LockoutConfig,
}

/// `[auth.lockout]`, Vault's user lockout: `threshold` failed logins of
/// one identity (a role id, a JWT role) lock it for `duration`; a count
/// starts over `counter_reset` after its last failure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Failures before the lock (1 to 1000; default 5).
    pub threshold: u32,
    /// How long the lock lasts (default 15m).
    pub duration: Ttl,
    /// How long after the last failure a count starts over (default 15m).
    pub counter_reset: Ttl,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let d = crate::auth::lockout::LockoutSettings::default();
        Self {
            threshold: d.threshold,
            duration: Ttl(d.duration),
            counter_reset: Ttl(d.counter_reset),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Directories under which `sys/audit` may create audit files. Empty:
    /// devices enabled over the API can only write to `stdout`.
    #[serde(default)]
    pub file_dirs: Vec<PathBuf>,
    /// Devices enabled at start-up (`[[audit.devices]]`); the API cannot
    /// disable them.
    #[serde(default)]
    pub devices: Vec<AuditDeviceConfig>,
}

/// `[[audit.devices]]`: a `file` device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditDeviceConfig {
    /// Its path in `sys/audit` (e.g. `file`).
    pub path: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A file, or `stdout`.
    pub file_path: String,
    /// Values in clear: debugging only, the log then holds secrets.
    #[serde(default)]
    pub log_raw: bool,
    /// HMAC token accessors (default true).
    #[serde(default = "yes")]
    pub hmac_accessor: bool,
    /// An issuance's line is on disk before the credential is returned
    /// (default true).
    #[serde(default = "yes")]
    pub fsync: bool,
}

fn yes() -> bool {
    true
}

/// `[listener]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port` to bind.
    pub address: SocketAddr,
    /// The listener's certificate chain, PEM (leaf first): with
    /// `tls_key_file`, the API is served over TLS.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key, PEM (PKCS#8, SEC1 or PKCS#1).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Plain HTTP on an address other than loopback: refused unless said
    /// explicitly here (behind a TLS-terminating proxy, say).
    #[serde(default)]
    pub tls_disable: bool,
    /// How long a client has to send a request's headers (and a TLS
    /// handshake); also how long an idle kept-alive HTTP/1.1 connection
    /// stays open (hyper counts both from when it starts waiting for a
    /// request). Default 30s; 1s to 1h.
    #[serde(default)]
    pub header_read_timeout: Option<Ttl>,
    /// How long a connection may send and receive nothing while the broker
    /// waits on it. Default 5m; 1s to 24h.
    #[serde(default)]
    pub idle_timeout: Option<Ttl>,
    /// How long a client has to send a request's body. Default 30s; 1s to 1h.
    #[serde(default)]
    pub body_read_timeout: Option<Ttl>,
    /// Connections open at once. Default 4096; 1 to 1,000,000.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (IPv6: one /64).
    /// Default 512; 1 to `max_connections`.
    #[serde(default)]
    pub max_connections_per_client: Option<usize>,
}

impl ListenerConfig {
    /// The connection bounds, defaults filled in.
    pub fn limits(&self) -> ListenerLimits {
        let d = ListenerLimits::default();
        ListenerLimits {
            header_read_timeout: self
                .header_read_timeout
                .map_or(d.header_read_timeout, |t| t.0),
            idle_timeout: self.idle_timeout.map_or(d.idle_timeout, |t| t.0),
            body_read_timeout: self.body_read_timeout.map_or(d.body_read_timeout, |t| t.0),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_client: self
                .max_connections_per_client
                .unwrap_or(d.max_connections_per_client)
                .min(self.max_connections.unwrap_or(d.max_connections)),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let limits = self.limits();
        let secs = |name: &str, d: Duration, max: u64| {
            if d < Duration::from_secs(1) || d > Duration::from_secs(max) {
                Err(ConfigError::Invalid(format!(
                    "listener.{name} must be between 1s and {}",
                    humantime::format_duration(Duration::from_secs(max))
                )))
            } else {
                Ok(())
            }
        };
        secs("header_read_timeout", limits.header_read_timeout, 3600)?;
        secs("idle_timeout", limits.idle_timeout, 86_400)?;
        secs("body_read_timeout", limits.body_read_timeout, 3600)?;
        if !(1..=1_000_000).contains(&limits.max_connections) {
            return Err(ConfigError::Invalid(
                "listener.max_connections must be between 1 and 1000000".into(),
            ));
        }
        if self.max_connections_per_client == Some(0) {
            return Err(ConfigError::Invalid(
                "listener.max_connections_per_client must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The certificate and key files, when the listener serves TLS.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((
            self.tls_cert_file.as_deref()?,
            self.tls_key_file.as_deref()?,
        ))
    }
}

/// `[storage]`: `type = "sqlite"` or `type = "postgres"`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// One SQLite file (WAL): the single-node default.
    Sqlite {
        /// The database file, created by `broker operator init`.
        path: PathBuf,
    },
    /// A PostgreSQL database several broker nodes can share.
    Postgres {
        /// A `postgres://` URL. Leave the password out and set `PGPASSWORD`
        /// to keep it out of the file.
        url: Zeroizing<String>,
    },
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            // The URL may carry a password.
            Self::Postgres { .. } => f.debug_struct("Postgres").finish_non_exhaustive(),
        }
    }
}

/// `[seal]`: what wraps the root key, by `type`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SealSettings {
    /// Key shares handed out by `sys/init`; the broker starts sealed and
    /// `sys/unseal` takes shares until the threshold is met.
    #[default]
    Shamir,
    /// A key file, created with mode 0600 by `broker operator init`.
    Local {
        /// The key file. Keep it off the disk that holds the storage.
        key_file: PathBuf,
    },
    /// A non-extractable AES key in an HSM, through PKCS#11.
    Pkcs11(crate::seal::Pkcs11SealSettings),
    /// A key in AWS KMS, or a KMS API server at `endpoint`; see
    /// [`crate::seal::awskms`] for the settings and their environment
    /// fallbacks.
    Awskms(crate::seal::AwsKmsConfig),
}

impl SealSettings {
    /// The provider this names.
    pub fn kind(&self) -> crate::seal::SealKind {
        match self {
            Self::Shamir => crate::seal::SealKind::Shamir,
            Self::Local { .. } => crate::seal::SealKind::Local,
            Self::Pkcs11(_) => crate::seal::SealKind::Pkcs11,
            Self::Awskms(_) => crate::seal::SealKind::Awskms,
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Where compiled plugins are cached (default: `$BROKER_PLUGIN_CACHE_DIR`,
    /// else the user's cache directory).
    pub cache_dir: Option<PathBuf>,
    /// The directory of third-party plugins (Vault's `plugin_directory`).
    /// A plugin in it runs only once registered in `sys/plugins/catalog`
    /// with its file's SHA-256, which is checked again at every unseal and
    /// reload; nothing here is loaded otherwise.
    pub directory: Option<PathBuf>,
}

/// `[leases]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeasesConfig {
    /// How often the expiration worker looks for due leases.
    pub worker_interval: Ttl,
    /// How long a lease may stay `pending` before the worker treats its
    /// issuance as abandoned and revokes it. Keep it above the plugin
    /// deadline, or the worker may race an issuance still in flight.
    pub pending_hold: Ttl,
}

impl Default for LeasesConfig {
    fn default() -> Self {
        Self {
            worker_interval: Ttl(Duration::from_secs(1)),
            pending_hold: Ttl(Duration::from_secs(60)),
        }
    }
}

/// `[rate_limit]`: token buckets, answering 429 with `Retry-After` past
/// them. `sys/health` and `sys/seal-status` are never limited.
///
/// - `rate`/`burst`: one bucket for the whole listener, as Vault's global
///   rate-limit quota (none by default);
/// - `per_client_rate`/`per_client_burst`: one bucket per client address
///   (default 1000/s, bursts of 2000), spent by requests with a valid token
///   and by public paths;
/// - `unauthenticated_rate`/`unauthenticated_burst`: one bucket per client
///   address for requests without a valid token (default 20/s, bursts of
///   100). Each such refusal is audited; past this budget it is not, so a
///   client without a token cannot fill the audit disk.
///
/// A rate of 0 turns that bucket off. Buckets apply after authentication:
/// requests without a token never spend the others' budgets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second for the whole listener, sustained.
    pub rate: Option<u32>,
    /// Requests allowed at once above `rate` (default: `rate`).
    pub burst: Option<u32>,
    /// Requests per second per client address.
    pub per_client_rate: Option<u32>,
    /// Requests at once per client address (default: twice the rate).
    pub per_client_burst: Option<u32>,
    /// Refused unauthenticated requests per second per client address.
    pub unauthenticated_rate: Option<u32>,
    /// Refused unauthenticated requests at once per client address
    /// (default: five times the rate).
    pub unauthenticated_burst: Option<u32>,
}

impl RateLimitConfig {
    /// The budgets, defaults filled in.
    pub fn limits(&self) -> RateLimits {
        let d = RateLimits::default();
        let bucket =
            |rate: Option<u32>, burst: Option<u32>, factor: u32, default: Option<Quota>| match rate
            {
                Some(rate) => Quota::new(rate, burst.unwrap_or(rate.saturating_mul(factor))),
                None => match (default, burst) {
                    (Some(q), Some(burst)) => Quota::new(q.rate.get(), burst),
                    (default, _) => default,
                },
            };
        RateLimits {
            global: bucket(self.rate, self.burst, 1, d.global),
            per_client: bucket(self.per_client_rate, self.per_client_burst, 2, d.per_client),
            refusals_per_client: bucket(
                self.unauthenticated_rate,
                self.unauthenticated_burst,
                5,
                d.refusals_per_client,
            ),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        for (name, rate, burst) in [
            ("", self.rate, self.burst),
            ("per_client_", self.per_client_rate, self.per_client_burst),
            (
                "unauthenticated_",
                self.unauthenticated_rate,
                self.unauthenticated_burst,
            ),
        ] {
            if rate.is_none_or(|r| r > 0) && burst == Some(0) {
                return Err(ConfigError::Invalid(format!(
                    "rate_limit.{name}burst must be at least 1 (a rate of 0 turns the limit off)"
                )));
            }
            if rate.is_none() && burst.is_some() && name.is_empty() {
                return Err(ConfigError::Invalid(
                    "rate_limit.burst needs rate_limit.rate".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Syntax(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(parse_message(text, &e)))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let listener = &self.listener;
        let addr = listener.address;
        if listener.tls_cert_file.is_some() != listener.tls_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "listener: give both tls_cert_file and tls_key_file, or neither".into(),
            ));
        }
        if listener.tls().is_some() && listener.tls_disable {
            return Err(ConfigError::Invalid(
                "listener: tls_disable = true contradicts tls_cert_file and tls_key_file".into(),
            ));
        }
        if listener.tls().is_none() && !addr.ip().is_loopback() && !listener.tls_disable {
            return Err(ConfigError::Invalid(format!(
                "listener.address {addr} is not loopback, so it must serve TLS: set tls_cert_file and \
                 tls_key_file, or choose plain HTTP explicitly with tls_disable = true (behind a \
                 TLS-terminating proxy)"
            )));
        }
        listener.check()?;
        self.rate_limit.check()?;
        if self.leases.worker_interval.0.is_zero() {
            return Err(ConfigError::Invalid(
                "leases.worker_interval must be more than zero".into(),
            ));
        }
        if !(1..=10_000).contains(&self.barrier.rewrap_batch) {
            return Err(ConfigError::Invalid(format!(
                "barrier.rewrap_batch must be 1 to 10000, not {}",
                self.barrier.rewrap_batch
            )));
        }
        if self.barrier.rewrap_pause_ms > 60_000 {
            return Err(ConfigError::Invalid(format!(
                "barrier.rewrap_pause_ms must be at most 60000, not {}",
                self.barrier.rewrap_pause_ms
            )));
        }
        let lockout = &self.auth.lockout;
        if !(1..=1000).contains(&lockout.threshold) {
            return Err(ConfigError::Invalid(format!(
                "auth.lockout.threshold must be 1 to 1000, not {}",
                lockout.threshold
            )));
        }
        if let Some(id) = &self.cluster.node_id {
            crate::cluster::NodeId::parse(id)
                .map_err(|e| ConfigError::Invalid(format!("cluster.node_id: {e}")))?;
        }
        if let SealSettings::Pkcs11(pkcs11) = &self.seal {
            pkcs11
                .check()
                .map_err(|e| ConfigError::Invalid(format!("seal: {e}")))?;
        }
        if let Some(hsm) = &self.hsm {
            hsm.check()
                .map_err(|e| ConfigError::Invalid(format!("hsm: {e}")))?;
        }
        Ok(())
    }

    /// Who this node is among those sharing its storage: `[cluster]`'s
    /// `node_id` (else the host's name and the listener's port) and
    /// `api_addr` (else the listener's address).
    pub fn node(&self) -> crate::cluster::NodeOptions {
        let listener = &self.listener;
        let id = self
            .cluster
            .node_id
            .as_deref()
            .and_then(|id| crate::cluster::NodeId::parse(id).ok())
            .unwrap_or_else(|| crate::cluster::NodeId::default_for(listener.address.port()));
        let scheme = if listener.tls().is_some() {
            "https"
        } else {
            "http"
        };
        crate::cluster::NodeOptions {
            id,
            api_address: self
                .cluster
                .api_addr
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}", listener.address)),
            timing: Default::default(),
        }
    }

    /// The token CA keys are generated in (`pki/…/generate/kms`): `[hsm]`,
    /// else the `pkcs11` seal's token; `None` without either.
    pub fn managed_key_hsm(&self) -> Option<crate::hsm::HsmSettings> {
        match (&self.hsm, &self.seal) {
            (Some(hsm), _) => Some(hsm.clone()),
            (None, SealSettings::Pkcs11(seal)) => Some(seal.hsm()),
            (None, _) => None,
        }
    }
}

/// toml's messages quote the offending source line, which may hold a
/// password (a storage URL); keep only the position and the reason.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let reason = e.message();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {reason}")
        }
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [listener]
        address = "127.0.0.1:8200"
        [storage]
        type = "sqlite"
        path = "/var/lib/broker/broker.db"
        [kms]
        type = "local"
        key_file = "/etc/broker/kms.key"
    "#;

    #[test]
    fn a_pkcs11_seal_and_an_hsm_section_parse() {
        let text = MINIMAL.replace(
            "[kms]\n        type = \"local\"\n        key_file = \"/etc/broker/kms.key\"",
            "[seal]\ntype = \"pkcs11\"\nlib = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
             token_label = \"broker\"\nkey_label = \"root\"\npin = \"9876\"\n\
             [hsm]\nlib = \"/usr/lib/softhsm/libsofthsm2.so\"\nslot = 3\n",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.seal.kind(), crate::seal::SealKind::Pkcs11);
        assert_eq!(c.managed_key_hsm().unwrap().slot, Some(3));
        assert!(!format!("{c:?}").contains("9876"), "the PIN never shows");
        let both = text.replace("slot = 3", "slot = 3\ntoken_label = \"x\"");
        let e = Config::parse(&both).unwrap_err().to_string();
        assert!(e.contains("hsm: give token_label or slot, not both"), "{e}");
        let no_hsm = text.split("[hsm]").next().unwrap().to_owned();
        let c = Config::parse(&no_hsm).unwrap();
        assert_eq!(
            c.managed_key_hsm().unwrap().token_label.as_deref(),
            Some("broker"),
            "the seal's token holds CA keys when [hsm] is absent"
        );
    }

    #[test]
    fn a_minimal_file_gets_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(matches!(c.storage, StorageConfig::Sqlite { .. }));
        assert_eq!(c.leases.worker_interval.0, Duration::from_secs(1));
        assert_eq!(c.rate_limit.limits(), RateLimits::default());
        assert_eq!(c.listener.limits(), ListenerLimits::default());
    }

    #[test]
    fn typos_are_errors_with_a_line() {
        let text = MINIMAL.replace("key_file", "keyfile");
        let e = Config::parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("line 7: ") && e.contains("keyfile"), "{e}");
    }

    #[test]
    fn a_storage_password_never_reaches_an_error_or_debug() {
        let text = r#"
            [listener]
            address = "127.0.0.1:8200"
            [storage]
            type = "postgres"
            url = "postgres://broker:hunter2secret@db/broker"
            extra = 1
            [kms]
            type = "local"
            key_file = "/k"
        "#;
        let e = Config::parse(text).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let ok = Config::parse(&text.replace("extra = 1", "")).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn the_readme_examples_are_valid() {
        let readme = include_str!("../../README.md");
        // The agent's example is another file's (agent::config checks it).
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .filter(|b| !b.contains("[auto_auth]"))
            .collect();
        assert_eq!(
            blocks.len(),
            5,
            "the deployment, audit, awskms, HSM and lockout examples"
        );
        let c = Config::parse(blocks[0]).unwrap();
        assert_eq!(c.rate_limit.limits().global, Quota::new(500, 1000));
        assert_eq!(c.leases.pending_hold.0, Duration::from_secs(60));
        let audit = blocks
            .iter()
            .find(|b| b.contains("[audit") && !b.contains("[listener]"))
            .unwrap_or_else(|| panic!("no README audit example"));
        let c = Config::parse(&format!("{}\n{audit}", blocks[0])).unwrap();
        assert_eq!(c.audit.devices.len(), 1);
        assert!(c.audit.devices[0].fsync);
        // The HSM and lockout examples, on the minimal configuration.
        let block = |table: &str| {
            blocks
                .iter()
                .find(|b| b.contains(table) && !b.contains("[listener]"))
                .copied()
                .unwrap_or_else(|| panic!("no README example with {table}"))
        };
        let c = Config::parse(&format!("{MINIMAL}\n{}", block("[hsm]"))).unwrap();
        assert_eq!(
            c.managed_key_hsm().unwrap().token_label.as_deref(),
            Some("broker")
        );
        let without_seal = MINIMAL.split("[kms]").next().unwrap_or_default().to_owned();
        let c = Config::parse(&format!("{without_seal}\n{}", block("type = \"awskms\""))).unwrap();
        assert_eq!(c.seal.kind(), crate::seal::SealKind::Awskms);
        let c = Config::parse(&format!("{MINIMAL}\n{}", block("[auth.lockout]"))).unwrap();
        assert_eq!(c.auth.lockout.threshold, 5);
        assert_eq!(c.auth.lockout.duration.0, Duration::from_secs(15 * 60));
        let node = Config::parse(blocks[0]).unwrap().node();
        assert_eq!(node.id.as_str(), "node1");
        assert_eq!(node.api_address, "https://broker1.internal:8200");
    }

    #[test]
    fn the_deployment_guide_example_is_valid() {
        let guide = include_str!("../../docs/deployment.md");
        let block = guide
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap_or_else(|| panic!("no toml example in docs/deployment.md"));
        let c = Config::parse(block).unwrap();
        assert!(matches!(c.storage, StorageConfig::Postgres { .. }));
        assert_eq!(c.seal.kind(), crate::seal::SealKind::Awskms);
        let node = c.node();
        assert_eq!(node.id.as_str(), "node1");
        assert_eq!(node.api_address, "https://10.0.0.11:8200");
    }

    #[test]
    fn a_node_id_is_checked_and_defaults_to_host_and_port() {
        let with = |cluster: &str| Config::parse(&format!("{MINIMAL}\n[cluster]\n{cluster}"));
        for bad in ["node_id = \"\"", "node_id = \"a b\"", "node_id = \"../x\""] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("cluster.node_id"), "{bad}: {e}");
        }
        let c = with("").unwrap();
        let node = c.node();
        assert!(node.id.as_str().ends_with(":8200"), "{}", node.id);
        assert_eq!(node.api_address, "http://127.0.0.1:8200");
    }

    #[test]
    fn listener_bounds_are_checked_and_defaulted() {
        let with = |extra: &str| {
            Config::parse(&MINIMAL.replace(
                "address = \"127.0.0.1:8200\"",
                &format!("address = \"127.0.0.1:8200\"\n{extra}"),
            ))
        };
        let c = with("header_read_timeout = \"5s\"\nmax_connections = 10").unwrap();
        let limits = c.listener.limits();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(limits.max_connections, 10);
        // A client's share never exceeds the whole.
        assert_eq!(limits.max_connections_per_client, 10);
        for bad in [
            "max_connections = 0",
            "max_connections = 100000000000",
            "max_connections_per_client = 0",
            "idle_timeout = \"0s\"",
            "body_read_timeout = \"2h\"",
        ] {
            let e = with(bad).unwrap_err().to_string();
            let field = bad.split(' ').next().unwrap();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn rate_limits_default_per_client_and_zero_turns_one_off() {
        let with = |section: &str| Config::parse(&format!("{MINIMAL}\n[rate_limit]\n{section}"));
        let c = with("per_client_rate = 0\nunauthenticated_rate = 7").unwrap();
        let limits = c.rate_limit.limits();
        assert_eq!(limits.per_client, None);
        assert_eq!(limits.refusals_per_client, Quota::new(7, 35));
        assert_eq!(limits.global, None);
        let c = with("rate = 50").unwrap();
        assert_eq!(c.rate_limit.limits().global, Quota::new(50, 50));
        assert_eq!(
            c.rate_limit.limits().per_client,
            RateLimits::default().per_client
        );
        assert!(
            with("burst = 5")
                .unwrap_err()
                .to_string()
                .contains("rate_limit.rate")
        );
        assert!(
            with("rate = 5\nburst = 0")
                .unwrap_err()
                .to_string()
                .contains("burst")
        );
        assert!(with("rate = -1").is_err());
    }

    #[test]
    fn plain_http_off_loopback_must_be_explicit() {
        let text = MINIMAL.replace("127.0.0.1:8200", "0.0.0.0:8200");
        let e = Config::parse(&text).unwrap_err().to_string();
        assert!(e.contains("tls_disable"), "{e}");
        let text = text.replace("[storage]", "tls_disable = true\n[storage]");
        Config::parse(&text).unwrap();
    }
}
