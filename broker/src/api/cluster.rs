//! `sys/ha-status` and `sys/leader`: the nodes sharing this broker's
//! storage, as Vault's clients ask for them. Answers come from the
//! database's cluster tables ([`crate::cluster`]); they never name more
//! than a node's id, address, version and the jobs it holds.

use axum::http::StatusCode;

use crate::core::Core;
use crate::framework::{Error, Reply, Request};

/// `GET sys/ha-status` (token needed).
pub(crate) async fn ha_status(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let body = core
        .cluster()
        .ha_status()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot read the cluster's nodes: {e}")))?;
    Ok(Reply::Bare(StatusCode::OK, body))
}

/// `GET sys/leader` (no token needed, as in Vault).
pub(crate) async fn leader(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let body = core
        .cluster()
        .leader()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot read the cluster's jobs: {e}")))?;
    Ok(Reply::Bare(StatusCode::OK, body))
}
