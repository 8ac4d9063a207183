//! What the store keeps of a token: everything but the token itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Service or batch, as Vault names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Stored (as a keyed hash), renewable, may have children and leases.
    #[default]
    Service,
    /// Not stored: the token is its own sealed entry. Not renewable, no
    /// children; its leases belong to its parent.
    Batch,
}

impl TokenType {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Batch => "batch",
        }
    }
}

/// A token's record. `Debug` shows no metadata values: an operator may
/// have put something sensitive there.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct TokenEntry {
    /// The public handle: shown, logged, and enough to look up, renew or
    /// revoke the token without holding it.
    pub accessor: String,
    /// The parent's accessor; `None` for orphans and the root token's
    /// children (the root token is not in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Policy names, normalized and sorted.
    pub policies: Vec<String>,
    /// The path it was created at (`auth/token/create`).
    pub path: String,
    /// A name for people, kept in leases and the audit log.
    pub display_name: String,
    /// Free metadata, shown in lookups and the audit log.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Uses left; 0 is unlimited.
    #[serde(default)]
    pub num_uses: u32,
    /// When it was made (Unix seconds).
    pub creation_time: i64,
    /// Its TTL when made or last renewed, seconds; 0 is no expiry.
    pub creation_ttl: u64,
    /// When it expires (Unix seconds); 0 is never.
    pub expire_time: i64,
    /// The hard limit it was given, seconds; 0 is none.
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// The latest it may ever expire (Unix seconds); 0 is never.
    #[serde(default)]
    pub max_expire_time: i64,
    /// A periodic token's renewal period, seconds; 0 is not periodic.
    #[serde(default)]
    pub period: u64,
    /// Whether it may be renewed.
    pub renewable: bool,
    /// Made without a parent (or at a path that makes orphans).
    #[serde(default)]
    pub orphan: bool,
    /// The token role it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Service or batch.
    #[serde(default)]
    pub token_type: TokenType,
    /// Its revocation has begun: it no longer authenticates.
    #[serde(default)]
    pub revoking: bool,
    /// The accessor of the auth mount that issued it at a login; disabling
    /// that mount revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_accessor: Option<String>,
    /// The networks it may be used from (empty: anywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_cidrs: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("token_type", &self.token_type)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

fn rfc3339(unix: i64) -> Value {
    match u64::try_from(unix) {
        Ok(secs) if unix > 0 => json!(
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
            )
            .to_string()
        ),
        _ => Value::Null,
    }
}

/// `issue_time`: always a time, as Vault answers it (clients such as
/// vaultrs read it as a string). A token whose making was not recorded
/// (the root token, `creation_time` 0) shows the Unix epoch, matching its
/// `creation_time`.
fn issue_time(unix: i64) -> Value {
    match rfc3339(unix) {
        Value::Null => json!("1970-01-01T00:00:00Z"),
        time => time,
    }
}

impl TokenEntry {
    /// Whether it holds the `root` policy.
    pub fn is_root(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p == crate::policy::Policy::ROOT)
    }

    /// Whether it may be used from `remote`.
    pub fn usable_from(&self, remote: std::net::IpAddr) -> bool {
        self.bound_cidrs.is_empty() || self.bound_cidrs.iter().any(|n| n.contains(&remote))
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expire_time > 0 && self.expire_time <= now
    }

    /// Seconds left at `now` (0 for a token that never expires).
    pub fn ttl_left(&self, now: i64) -> u64 {
        if self.expire_time <= 0 {
            return 0;
        }
        u64::try_from(self.expire_time.saturating_sub(now)).unwrap_or(0)
    }

    /// Vault's lookup answer. `id` is the token when the caller holds it
    /// (`lookup-self`, `lookup`), empty for a lookup by accessor.
    pub fn lookup_data(&self, id: &str, now: i64) -> Value {
        json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": "",
            "expire_time": rfc3339(self.expire_time),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id,
            "issue_time": issue_time(self.creation_time),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path,
            "period": if self.period > 0 { json!(self.period) } else { Value::Null },
            "policies": self.policies,
            "renewable": self.renewable,
            "role": self.role.clone().unwrap_or_default(),
            "ttl": self.ttl_left(now),
            "type": self.token_type.as_str(),
            "bound_cidrs": self.bound_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }

    /// Vault's `auth` block for a response that hands out `token`.
    pub fn auth_block(&self, token: &str, now: i64) -> Value {
        json!({
            "client_token": token,
            "accessor": self.accessor,
            "policies": self.policies,
            "token_policies": self.policies,
            "identity_policies": null,
            "metadata": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "lease_duration": self.ttl_left(now),
            "renewable": self.renewable,
            "entity_id": "",
            "token_type": self.token_type.as_str(),
            "orphan": self.orphan,
            "mfa_requirement": null,
            "num_uses": self.num_uses,
        })
    }
}
