//! Starting the broker: storage, KMS and plugins from a [`Config`] (or a
//! dev-mode directory), `operator init`, and serving the API with the
//! expiration worker beside it.
//!
//! This is the only place that turns configuration into live resources; it
//! must never print or log the root token (the CLI shows it once).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::api::RateLimits;
use crate::audit::{AuditPolicy, DeviceConfig, DeviceOptions};
use crate::config::{Config, KmsConfig, StorageConfig};
use crate::core::{Core, CoreError, CoreOptions};
use crate::kms::{Kms, KmsError, LocalKms};
use crate::listener::ListenerLimits;
use crate::plugin::{Catalog, PluginError, PluginRuntime, RuntimeConfig};
use crate::storage::{PostgresBackend, SqliteBackend, Storage, StorageError};

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
}

impl From<StorageError> for StartError {
    fn from(e: StorageError) -> Self {
        Self::Core(CoreError::Storage(e))
    }
}

impl From<KmsError> for StartError {
    fn from(e: KmsError) -> Self {
        Self::Core(CoreError::Kms(e))
    }
}

/// How the server runs beside the core. The default is what a
/// configuration file without `[rate_limit]` or listener bounds gets.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// How often the expiration worker runs (default 1 s).
    pub worker_interval: Option<Duration>,
    /// Request budgets, per client and global.
    pub rate_limits: RateLimits,
    /// Connection bounds and timeouts.
    pub listener: ListenerLimits,
}

impl ServeOptions {
    /// The options a configuration file asks for.
    pub fn from_config(config: &Config) -> Self {
        Self {
            worker_interval: Some(config.leases.worker_interval.0),
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

fn open_kms(config: &KmsConfig, create: bool) -> Result<Box<dyn Kms>, StartError> {
    Ok(match config {
        KmsConfig::Local { key_file } if create => Box::new(LocalKms::open_or_create(key_file)?),
        KmsConfig::Local { key_file } => Box::new(LocalKms::open(key_file)?),
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

/// `broker operator init`: creates the KMS key (local provider) and the
/// storage's keyring, and returns the root token, which is shown once.
pub async fn initialize(config: &Config) -> Result<Zeroizing<String>, StartError> {
    let storage = open_storage(&config.storage, true).await?;
    let kms = open_kms(&config.kms, true)?;
    Ok(Core::initialize(&storage, kms.as_ref()).await?)
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
    }
}

/// Opens the core a configuration file describes; it must be initialized.
pub async fn open(config: &Config) -> Result<Arc<Core>, StartError> {
    let storage = open_storage(&config.storage, false).await?;
    let kms = open_kms(&config.kms, false)?;
    let runtime = runtime(config.plugins.cache_dir.as_deref())?;
    let mut catalog = Catalog::builtin(&runtime).await?;
    if let Some(dir) = &config.plugins.directory {
        catalog.load_directory(&runtime, dir).await?;
    }
    let catalog = Arc::new(catalog);
    Ok(Core::open(storage, Arc::from(kms), catalog, core_options(config)).await?)
}

/// A dev-mode core over `dir`: SQLite storage and a local KMS key file there
/// (both created on first start, reused after), the built-in plugins, and
/// `root_token`. Pending leases are held for `pending_hold` before the
/// expiration worker may revoke them.
pub async fn open_dev_core(
    dir: &Path,
    root_token: &str,
    pending_hold: Duration,
) -> Result<Arc<Core>, StartError> {
    let storage: Storage = Arc::new(SqliteBackend::open(&dir.join("broker.db")).await?);
    let kms = LocalKms::open_or_create(&dir.join("kms.key"))?;
    match Core::initialize(&storage, &kms).await {
        // The generated token is replaced by the chosen one below.
        Ok(_) | Err(CoreError::AlreadyInitialized) => {}
        Err(e) => return Err(e.into()),
    }
    let catalog = Arc::new(Catalog::builtin(&runtime(None)?).await?);
    let options = CoreOptions {
        pending_hold,
        // Dev mode: `sys/audit` may write anywhere (still 0600, no symlink).
        audit_policy: AuditPolicy {
            any_path: true,
            file_dirs: Vec::new(),
        },
        audit_devices: Vec::new(),
        lockout: Default::default(),
    };
    let core = Core::open(storage, Arc::new(kms), catalog, options).await?;
    core.set_root_token(root_token).await?;
    Ok(core)
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
/// requests in flight; runs the expiration worker meanwhile. With `tls`,
/// over TLS.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    core: Arc<Core>,
    options: ServeOptions,
) -> std::io::Result<()> {
    let app = crate::api::router(core.clone(), &options);
    let server = crate::listener::serve(listener, tls, app, options.listener, shutdown_signal());
    beside(core, &options, server).await
}

/// Runs `server` with the expiration worker and the SIGHUP handler beside it.
async fn beside(
    core: Arc<Core>,
    options: &ServeOptions,
    server: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let interval = options.worker_interval.unwrap_or(Duration::from_secs(1));
    let worker = core.leases().clone().spawn_worker(interval);
    let periodic = core.clone().spawn_periodic(interval);
    let reopen = tokio::spawn(reopen_audit_on_sighup(core.clone()));
    let result = server.await;
    worker.abort();
    periodic.abort();
    reopen.abort();
    // Wait for the worker to be gone (and its revocations stopped) before
    // the audit heads are saved, so no entry lands after them.
    let _ = worker.await;
    let _ = periodic.await;
    core.audit().save_heads().await;
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
