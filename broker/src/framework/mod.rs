//! Declarative path tables, the one place a backend's paths are written
//! down.
//!
//! A backend (a secrets engine, or the system backend at `sys/`) declares
//! each path once, as data: its pattern, its fields (type, default,
//! description, how the audit log treats them), the operations it serves
//! with their handlers, who may call it ([`Access`]), and an existence
//! check that tells a create from an update. From those tables come, with
//! nothing restated by hand: routing and 405s ([`Table`]), `?help=1`
//! ([`help`]), the OpenAPI document ([`openapi`]), the audit log's per-field
//! treatment ([`PathInfo::clear_fields`]) and the paths a request without a
//! token may reach. See docs/architecture.md, "A request".
//!
//! Backends are registered by mount type ([`Registry`]); the core knows no
//! engine by name. A handler sees a [`Request`]: the operation, the path's
//! parameters, the body, the mount (its UUID, TTLs and a [`StorageView`]
//! rooted at the UUID) and the [`Caller`].
//!
//! This module must never know an engine by name, nor speak HTTP: a
//! handler's [`Reply`] and typed [`Error`] become Vault's envelope and
//! status codes in [`crate::api`].

mod backend;
mod error;
mod field;
pub mod help;
pub mod openapi;
mod path;
mod request;
mod response;
mod storage;
mod table;

pub use backend::{Backend, BackendFactory, Registry, Services, TableBackend};
pub use error::Error;
pub use field::{Field, FieldType};
pub use path::{Access, Operation, Params, Pattern, PatternError};
pub use request::{Caller, Mount, MountOptions, Request};
pub use response::{Reply, credential, data, list, no_content, secret};
pub use storage::StorageView;
pub use table::{Handler, Path, PathInfo, Route, Table, find};
