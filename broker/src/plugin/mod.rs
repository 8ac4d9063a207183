//! The plugin host: runs credential plugins (WASM components) in a sandbox.
//!
//! A plugin can reach nothing but the host capabilities of the WIT contract
//! (`wit/since_v0.1.0`, `wit/since_v0.2.0`), each bound to the mount that
//! called it: no filesystem, no environment, no sockets. It must never be
//! handed a key, a password it did not create, or a connection to another
//! mount's database, Redis server or HTTP service.
//!
//! ```ignore
//! let runtime = PluginRuntime::new(RuntimeConfig::default())?;
//! let catalog = Catalog::builtin(&runtime).await?;
//! let postgres = catalog.get("postgresql-database-plugin").unwrap();
//! let ctx = CallContext::new().with_sql("database/config/main", target);
//! let credential = postgres.issue(&ctx, &connection, &request).await?;
//! postgres.revoke(&ctx, &connection, &credential.revocation).await?;
//! ```

mod builtin;
mod cache;
mod catalog;
mod component;
mod error;
mod host;
mod limits;
mod log;
mod runtime;
mod signer;
mod state;
mod versions;

pub use builtin::{BUILTIN, BuiltinPlugin};
pub use catalog::{Catalog, CatalogError, Registration, sha256_hex};
pub use component::{
    CallContext, ConnectionView, Credential, HostCapability, IssueRequest, Plugin, PluginInfo,
    SUPPORTED_API_VERSIONS,
};
pub use error::{FailureKind, PluginError};
pub use limits::Limits;
pub use runtime::{PluginRuntime, RuntimeConfig};
pub use signer::{CaSigner, CsrInfo, GeneratedKey, IssuerInfo, KeyType, SignerError};
pub use state::RevocationRecorder;
