//! AppRole (`auth/approle`), as Vault's: a role has a public role id and
//! issues secret ids; an application logs in with both and gets a token
//! with the role's policies.
//!
//! Secret ids are kept only as keyed hashes (the key sealed in the mount's
//! storage) and are filed under their role: an accessor is looked up only
//! within the role named in the path, so one role's accessor can never
//! reach another role's secret id (the class of CVE-2023-24999). A failed
//! login says only that it failed, and counts toward the role's lockout.

mod paths;
mod store;

pub use paths::factory;
