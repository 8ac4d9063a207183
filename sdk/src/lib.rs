//! The SDK for writing credential plugins for the broker.
//!
//! A plugin is a WebAssembly component that creates and destroys one kind of
//! credential (database users, certificates, API keys…). The broker runs it in
//! a sandbox: the plugin sees no filesystem, no environment and no network,
//! only the host capabilities of the WIT contract (`wit/since_v0.2.0`), each
//! bound to the mount that called it. This crate hides the generated bindings
//! behind one trait, [`Plugin`], and the [`register_plugin!`] macro:
//!
//! ```no_run
//! use broker_plugin_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Config {}
//! #[derive(serde::Deserialize)]
//! struct Role { creation_statements: Vec<String> }
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     type Config = Config;
//!     type Role = Role;
//!     type Revocation = String; // the username
//!
//!     fn info() -> Info {
//!         Info::new("hello-plugin", env!("CARGO_PKG_VERSION")).capability(Capability::SqlPostgres)
//!     }
//!
//!     fn prepare(_: &Connection<Config>, request: &IssueRequest<Role>) -> Result<Prepared<String>> {
//!         let username = format!("v-{}", request.role_name);
//!         Prepared::new(serde_json::json!({ "username": username }), username)
//!     }
//!
//!     fn create(_: &Connection<Config>, _: &IssueRequest<Role>, _: &Prepared<String>) -> Result<()> {
//!         Ok(()) // run the role's statements here
//!     }
//!
//!     fn revoke(_: &Connection<Config>, _username: String) -> Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! broker_plugin_sdk::register_plugin!(Hello);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the `.wasm`
//! file is the component the broker's plugin catalog registers.
//!
//! Helpers for the common work of a database plugin live beside the trait:
//! [`template`] renders statements with the right quoting for each SQL
//! dialect, [`username`] builds usernames that fit the database's limit,
//! [`password`] generates passwords from the host's randomness, and [`sql`]
//! talks to the mount's database. Plugins for services managed otherwise
//! use [`redis`] (the mount's Redis server) or [`http`] (the mount's HTTP
//! API, the admin credential added by the host). Certificate plugins use
//! [`signer`].

#![deny(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod export;
pub mod host;
pub mod http;
pub mod password;
mod plugin;
pub mod redis;
pub mod signer;
pub mod sql;
pub mod statements;
pub mod template;
pub mod username;

pub use error::{Error, Result};
pub use plugin::{Capability, Connection, Info, IssueRequest, Plugin, Prepared};

/// Compiles the README's examples as doctests, so the guide cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The version of the WIT contract this SDK builds plugins against.
pub const API_VERSION: &str = "0.2.0";

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::sql::{Database, Dialect, Value};
    pub use crate::statements::Statements;
    pub use crate::template::{Template, Vars};
    pub use crate::username::UsernameTemplate;
    pub use crate::{Capability, Connection, Error, Info, IssueRequest, Plugin, Prepared, Result};
}

/// Not public API: used by [`register_plugin!`].
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{Export, bindings};
}

/// Exports a type implementing [`Plugin`] as the component's entry points.
///
/// Call it once, at the root of the plugin crate.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        type __BrokerPluginExport = $crate::__private::Export<$plugin>;
        $crate::__private::bindings::export!(__BrokerPluginExport with_types_in $crate::__private::bindings);
    };
}
