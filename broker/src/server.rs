//! Serving the API on a listener, and the expiration worker beside it;
//! and the dev-mode set-up shared by `broker server --dev` and the tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::core::{Core, CoreError};
use crate::kms::LocalKms;
use crate::plugin::{Catalog, PluginError, PluginRuntime, RuntimeConfig};
use crate::storage::SqliteBackend;

/// Why a dev-mode core could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// Storage, KMS or keyring.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The plugin runtime or a built-in plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// A dev-mode core over `dir`: SQLite storage and a local KMS key file there
/// (both created on first start, reused after), the built-in plugins, and
/// `root_token`. Pending leases are held for `pending_hold` before the
/// expiration worker may revoke them.
pub async fn open_dev_core(
    dir: &Path,
    root_token: &str,
    pending_hold: Duration,
) -> Result<Arc<Core>, DevError> {
    let storage = Arc::new(
        SqliteBackend::open(&dir.join("broker.db"))
            .await
            .map_err(|e| DevError::Core(CoreError::Storage(e)))?,
    );
    let kms = LocalKms::open_or_create(&dir.join("kms.key"))
        .map_err(|e| DevError::Core(CoreError::Kms(e)))?;
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: RuntimeConfig::default_cache_dir(),
        ..Default::default()
    })?;
    let catalog = Arc::new(Catalog::builtin(&runtime).await?);
    Ok(Core::open_with(storage, &kms, catalog, root_token, pending_hold).await?)
}

/// Serves the API on `listener` until Ctrl-C; runs the expiration worker
/// every second meanwhile.
pub async fn serve(listener: tokio::net::TcpListener, core: Arc<Core>) -> std::io::Result<()> {
    let worker = core.leases().clone().spawn_worker(Duration::from_secs(1));
    let result = axum::serve(listener, crate::api::router(core))
        .with_graceful_shutdown(async {
            // Ctrl-C or SIGTERM: stop accepting, finish in-flight requests.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    worker.abort();
    result
}
