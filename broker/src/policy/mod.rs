//! Path-based access policies, as Vault writes them: named documents of
//! `path "…" { capabilities = […] }` rules, stored sealed, and merged into
//! an [`Acl`] that answers what a token may do at a path. Deny by default.
//! Beside them, Vault's password policies ([`password`]): how generated
//! passwords look.
//!
//! This module decides; it never serves, and it never widens a rule it
//! does not understand: an unknown or unenforced key refuses the policy.
//!
//! ```
//! use broker::policy::{Acl, Capability, Policy};
//!
//! let app = Policy::parse("app", r#"
//!     path "database/creds/app" { capabilities = ["read"] }
//!     path "secret/data/+/config" { capabilities = ["read", "list"] }
//! "#).unwrap();
//! let acl = Acl::new([&app]);
//! assert!(acl.allows("database/creds/app", Capability::Read));
//! assert!(acl.allows("secret/data/web/config", Capability::Read));
//! assert!(!acl.allows("database/creds/admin", Capability::Read));
//! ```

mod acl;
mod capability;
mod json;
mod parse;
pub mod password;
mod store;

pub use acl::Acl;
pub use capability::{Capabilities, Capability};
pub use parse::{PathRule, Policy, normalize_name};
pub use password::{PasswordPolicies, PasswordPolicy, PasswordPolicyError};
pub use store::{ACL_PREFIX, DEFAULT_POLICY, PolicyStore, RESPONSE_WRAPPING_POLICY};

/// Why a policy could not be parsed, stored or found.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is neither valid HCL nor valid JSON (400).
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    /// It parses, but a rule or name is wrong (400).
    #[error("invalid policy: {0}")]
    Invalid(String),
    /// `root` (or deleting `default`) (400).
    #[error("{0}")]
    BuiltIn(&'static str),
    /// Storage failed (500).
    #[error(transparent)]
    Storage(#[from] crate::barrier::SealedError),
}

#[cfg(test)]
mod tests;
