//! What a lease keeps, sealed, to revoke its credential on its own.

use serde::{Deserialize, Serialize};

use crate::egress::{HttpTarget, RedisTarget};
use crate::sql::SqlTargetSpec;

/// What a lease covers, and so what revokes it. The expiration worker
/// dispatches on this; it knows no engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseKind {
    /// A credential a plugin made outside the broker (a database user): the
    /// plugin revokes it through its mount's connection as it is now.
    Credential,
    /// A certificate: the plugin revokes it through its mount's CA, which
    /// puts the serial on the CRL.
    Certificate,
    /// A token's life: revoking it revokes the token, its children (unless
    /// orphaned) and every lease they made, through the token store.
    Token,
}

/// The connection name certificate leases recorded before leases had a
/// kind (the mount's CA).
const LEGACY_CA_CONNECTION: &str = "@ca";

/// The sealed part of a lease: enough to revoke without the role or the
/// connection config.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct LeaseData {
    /// What the lease covers (`None` in leases written before kinds were
    /// recorded: see [`LeaseData::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LeaseKind>,
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
    /// The Redis server, with admin credentials, when the lease was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisTarget>,
    /// The HTTP service, with admin credentials, when the lease was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTarget>,
    /// The plugin's own version when it issued (Vault's `plugin_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
    /// The contract version the plugin was built against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_version: Option<String>,
    /// What the plugin recorded for revocation; `None` until it did.
    pub revocation: Option<serde_json::Value>,
}

impl LeaseData {
    /// What the lease covers. Leases from before kinds were recorded are
    /// certificates when they name the CA's connection, else credentials.
    pub fn kind(&self) -> LeaseKind {
        match self.kind {
            Some(kind) => kind,
            None if self.config_name == LEGACY_CA_CONNECTION => LeaseKind::Certificate,
            None => LeaseKind::Credential,
        }
    }
}

impl std::fmt::Debug for LeaseData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseData")
            .field("kind", &self.kind())
            .field("mount", &self.mount)
            .field("config_name", &self.config_name)
            .field("plugin", &self.plugin)
            .field("plugin_version", &self.plugin_version)
            .field("contract_version", &self.contract_version)
            .field("recorded", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}
