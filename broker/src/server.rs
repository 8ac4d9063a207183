//! Starting the broker: storage, KMS and plugins from a [`Config`] (or a
//! dev-mode directory), `operator init`, and serving the API with the
//! expiration worker beside it.
//!
//! This is the only place that turns configuration into live resources; it
//! must never print or log the root token (the CLI shows it once).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::api::RateLimits;
use crate::audit::{AuditPolicy, DeviceConfig, DeviceOptions};
use crate::config::{Config, SealSettings, StorageConfig};
use crate::core::{Core, CoreError, CoreOptions};
use crate::listener::ListenerLimits;
use crate::plugin::{Catalog, PluginError, PluginRuntime, RuntimeConfig};
use crate::seal::{AwsKmsSeal, LocalSeal, Seal, SealError, SealKind};
use crate::storage::{PostgresBackend, SqliteBackend, Storage, StorageError};
use crate::unseal::{Beside, InitRequest, InitResponse, SealSetup, UnsealError, Unsealer};

/// Why the broker could not start or initialize.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage, KMS or keyring.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The plugin runtime or a built-in plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The listener's certificate or key.
    #[error("TLS: {0}")]
    Tls(String),
    /// Initialization was refused.
    #[error("{0}")]
    Init(String),
}

impl From<StorageError> for StartError {
    fn from(e: StorageError) -> Self {
        Self::Core(CoreError::Storage(e))
    }
}

impl From<SealError> for StartError {
    fn from(e: SealError) -> Self {
        Self::Core(CoreError::Seal(e))
    }
}

/// How the server runs beside the core. The default is what a
/// configuration file without `[rate_limit]` or listener bounds gets.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Request budgets, per client and global.
    pub rate_limits: RateLimits,
    /// Connection bounds and timeouts.
    pub listener: ListenerLimits,
}

impl ServeOptions {
    /// The options a configuration file asks for.
    pub fn from_config(config: &Config) -> Self {
        Self {
            rate_limits: config.rate_limit.limits(),
            listener: config.listener.limits(),
        }
    }
}

async fn open_storage(config: &StorageConfig, create: bool) -> Result<Storage, StartError> {
    Ok(match config {
        StorageConfig::Sqlite { path } => {
            // Opening would create an empty file; say what is wrong instead.
            if !create && !path.exists() {
                return Err(CoreError::NotInitialized.into());
            }
            Arc::new(SqliteBackend::open(path).await?)
        }
        StorageConfig::Postgres { url } => Arc::new(PostgresBackend::connect(url).await?),
    })
}

/// Opens the configured seal; `None` for `shamir`, whose key comes from
/// shares. With `create`, a `local` key file is made if missing.
pub fn open_seal(
    settings: &SealSettings,
    create: bool,
) -> Result<Option<Arc<dyn Seal>>, SealError> {
    Ok(match settings {
        SealSettings::Shamir => None,
        SealSettings::Local { key_file } if create => {
            Some(Arc::new(LocalSeal::open_or_create(key_file)?))
        }
        SealSettings::Local { key_file } => Some(Arc::new(LocalSeal::open(key_file)?)),
        // Connects at first use, on a blocking thread (see `hsm`).
        SealSettings::Pkcs11(settings) => Some(Arc::new(crate::seal::Pkcs11Seal::open(settings)?)),
        SealSettings::Awskms(settings) => Some(Arc::new(AwsKmsSeal::new(settings)?)),
    })
}

fn runtime(cache_dir: Option<&Path>) -> Result<PluginRuntime, PluginError> {
    PluginRuntime::new(RuntimeConfig {
        cache_dir: cache_dir
            .map(Path::to_owned)
            .or_else(RuntimeConfig::default_cache_dir),
        ..Default::default()
    })
}

/// `broker operator init`: creates the seal's key (a `local` key file,
/// mode 0600), the root key and keyring, and returns the root token and
/// the key shares (unseal shares for `shamir`, recovery shares for the
/// others), which are shown once.
pub async fn initialize(
    config: &Config,
    request: &InitRequest,
) -> Result<InitResponse, StartError> {
    let storage = open_storage(&config.storage, true).await?;
    let seal = open_seal(&config.seal, true).map_err(CoreError::from)?;
    crate::unseal::initialize(&storage, config.seal.kind(), seal.as_deref(), request)
        .await
        .map_err(|e| match e {
            UnsealError::Core(e) => StartError::Core(e),
            other => StartError::Init(other.to_string()),
        })
}

/// What the core needs from a configuration file.
pub fn core_options(config: &Config) -> CoreOptions {
    CoreOptions {
        lockout: crate::auth::lockout::LockoutSettings {
            threshold: config.auth.lockout.threshold,
            duration: config.auth.lockout.duration.0,
            counter_reset: config.auth.lockout.counter_reset.0,
        },
        pending_hold: config.leases.pending_hold.0,
        node: config.node(),
        rewrap: crate::core::rewrap::RewrapSettings {
            batch: config.barrier.rewrap_batch,
            pause: Duration::from_millis(config.barrier.rewrap_pause_ms),
        },
        audit_policy: AuditPolicy {
            any_path: false,
            file_dirs: config.audit.file_dirs.clone(),
        },
        audit_devices: config
            .audit
            .devices
            .iter()
            .map(|d| {
                (
                    d.path.clone(),
                    DeviceConfig {
                        kind: "file".into(),
                        description: d.description.clone(),
                        options: DeviceOptions {
                            file_path: d.file_path.clone(),
                            log_raw: d.log_raw,
                            hmac_accessor: d.hmac_accessor,
                            fsync: d.fsync,
                        },
                        from_config: true,
                    },
                )
            })
            .collect(),
        hsm: config
            .managed_key_hsm()
            .map(|settings| Arc::new(crate::hsm::HsmConnection::new(settings))),
    }
}

/// The workers that run beside an unsealed core.
struct Workers {
    interval: Duration,
}

impl Beside for Workers {
    fn start(&self, core: Arc<Core>) -> Vec<tokio::task::JoinHandle<()>> {
        let cluster = core.cluster().clone();
        let mut tasks = vec![
            core.leases().clone().spawn_worker(self.interval),
            core.clone().spawn_periodic(self.interval),
            cluster.clone().spawn_echo(core.clone()),
        ];
        tasks.extend(cluster.spawn_follow(core.clone()));
        tasks.push(tokio::spawn(reopen_audit_on_sighup(core)));
        tasks
    }
}

/// The configured seal (and the previous one, for a migration), opened.
/// A provider that fails to open is not fatal: the broker serves sealed,
/// saying why, and retries.
fn seal_setup(config: &Config) -> SealSetup {
    let (seal, error) = match open_seal(&config.seal, false) {
        Ok(seal) => (seal, None),
        Err(e) => {
            tracing::error!(error = %e, "the seal cannot be opened; the broker stays sealed");
            (None, Some(e.to_string()))
        }
    };
    let previous = match config.previous_seal.as_ref().map(|p| open_seal(p, false)) {
        Some(Ok(previous)) => previous,
        Some(Err(e)) => {
            tracing::error!(error = %e, "the previous seal (for the migration) cannot be opened");
            None
        }
        None => None,
    };
    let settings = config.seal.clone();
    SealSetup {
        kind: config.seal.kind(),
        seal,
        error,
        previous,
        reopen: Some(Box::new(move |create| open_seal(&settings, create))),
    }
}

/// Opens the broker a configuration file describes, sealed; an
/// auto-unseal seal unseals it before this returns (or the error is
/// logged and it stays sealed). `shamir` storage waits for `sys/unseal`.
pub async fn open(config: &Config) -> Result<Arc<Unsealer>, StartError> {
    let storage = open_storage(&config.storage, true).await?;
    let runtime = runtime(config.plugins.cache_dir.as_deref())?;
    // Registered plugins are loaded from the directory at unseal, each
    // checked against its SHA-256 (`sys/plugins/catalog`).
    let catalog = Catalog::builtin(&runtime)
        .await?
        .with_directory(config.plugins.directory.clone());
    let unsealer = Unsealer::new(
        storage,
        seal_setup(config),
        Arc::new(catalog),
        core_options(config),
        Some(Box::new(Workers {
            interval: config.leases.worker_interval.0,
        })),
    );
    if let Err(e) = unsealer.auto_unseal().await {
        tracing::error!(error = %e, "cannot unseal; the broker stays sealed");
    }
    Ok(unsealer)
}

/// A dev-mode broker over `dir`: SQLite storage and a `local` key file
/// there (both created on first start, reused after), the built-in
/// plugins and, unpinned, those in `plugin_dir`, and `root_token`; unsealed. Pending leases are held for
/// `pending_hold` before the expiration worker may revoke them.
pub async fn open_dev(
    dir: &Path,
    plugin_dir: Option<&Path>,
    root_token: &str,
    pending_hold: Duration,
    worker_interval: Duration,
) -> Result<Arc<Unsealer>, StartError> {
    let storage: Storage = Arc::new(SqliteBackend::open(&dir.join("broker.db")).await?);
    let seal: Arc<dyn Seal> =
        Arc::new(LocalSeal::open_or_create(&dir.join("kms.key")).map_err(CoreError::from)?);
    let request = InitRequest {
        recovery_shares: Some(0),
        ..Default::default()
    };
    match crate::unseal::initialize(&storage, SealKind::Local, Some(seal.as_ref()), &request).await
    {
        // The generated token is replaced by the chosen one below.
        Ok(_) | Err(UnsealError::Core(CoreError::AlreadyInitialized)) => {}
        Err(UnsealError::Core(e)) => return Err(e.into()),
        Err(e) => return Err(StartError::Init(e.to_string())),
    }
    let catalog = Catalog::builtin(&runtime(None)?)
        .await?
        .with_directory(plugin_dir.map(Path::to_path_buf));
    if let Some(dir) = plugin_dir {
        catalog.load_directory_unpinned(dir).await?;
    }
    let catalog = Arc::new(catalog);
    let options = CoreOptions {
        pending_hold,
        // Dev mode: `sys/audit` may write anywhere (still 0600, no symlink).
        audit_policy: AuditPolicy {
            any_path: true,
            file_dirs: Vec::new(),
        },
        audit_devices: Vec::new(),
        lockout: Default::default(),
        hsm: None,
        rewrap: Default::default(),
        node: Default::default(),
    };
    let setup = SealSetup {
        kind: SealKind::Local,
        seal: Some(seal.clone()),
        error: None,
        previous: None,
        reopen: None,
    };
    let unsealer = Unsealer::new(
        storage,
        setup,
        catalog,
        options,
        Some(Box::new(Workers {
            interval: worker_interval,
        })),
    );
    let core = unsealer.open_now(seal).await.map_err(|e| match e {
        UnsealError::Core(e) => StartError::Core(e),
        other => StartError::Init(other.to_string()),
    })?;
    core.set_root_token(root_token).await?;
    Ok(unsealer)
}

/// The listener's TLS configuration from PEM files: rustls with the ring
/// provider, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            StartError::Tls(format!(
                "cannot read certificates from {}: {e}",
                cert_file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!(
            "{} holds no PEM certificate",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        StartError::Tls(format!(
            "cannot read a private key from {}: {e}",
            key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A client certificate is asked for, never required: `auth/cert`
    // logs in with one, every other client connects without.
    let clients = Arc::new(crate::tls::OfferClientCert::new(&provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(format!("the certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the API on `listener` until Ctrl-C or SIGTERM, finishing
/// requests in flight; the workers run beside the core while it is
/// unsealed. With `tls`, over TLS.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    unsealer: Arc<Unsealer>,
    options: ServeOptions,
) -> std::io::Result<()> {
    let app = crate::api::router(unsealer.clone(), &options);
    let retry = unsealer.spawn_auto_unseal(Duration::from_secs(5));
    let result =
        crate::listener::serve(listener, tls, app, options.listener, shutdown_signal()).await;
    retry.abort();
    // Workers stop (and their revocations end) before the audit heads are
    // saved, so no entry lands after them.
    unsealer.stop().await;
    result
}

/// Log rotation: on SIGHUP, audit files are reopened (the chain goes on).
async fn reopen_audit_on_sighup(core: Arc<Core>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP: audit files will not be reopened on rotation");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reopening audit files");
        core.audit().reopen().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
