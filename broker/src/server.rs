//! Serving the API on a listener, and the expiration worker beside it.

use std::sync::Arc;
use std::time::Duration;

use crate::core::Core;

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
