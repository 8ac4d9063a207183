//! What a lease keeps, sealed, to revoke its credential on its own.

use serde::{Deserialize, Serialize};

use crate::sql::SqlTargetSpec;

/// The sealed part of a lease: enough to revoke without the role or the
/// connection config.
#[derive(Clone, Serialize, Deserialize)]
pub struct LeaseData {
    /// The mount that issued it.
    pub mount: String,
    /// The connection config's name on that mount.
    pub config_name: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The connection config as the plugin saw it (no secrets).
    pub connection: serde_json::Value,
    /// The database, with admin credentials, when the lease was made.
    pub target: Option<SqlTargetSpec>,
    /// What the plugin recorded for revocation; `None` until it did.
    pub revocation: Option<serde_json::Value>,
}

impl std::fmt::Debug for LeaseData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseData")
            .field("mount", &self.mount)
            .field("config_name", &self.config_name)
            .field("plugin", &self.plugin)
            .field("recorded", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}
