//! The broker: a dynamic credential broker whose credentials are made by
//! sandboxed WebAssembly plugins.
//!
//! - [`plugin`] loads plugin components and runs their calls in a sandbox.
//! - [`sql`] owns the connection pools behind the plugins' `sql` capability.
//! - [`storage`] keeps sealed entries and lease records (SQLite or PostgreSQL).
//! - [`lease`] covers every credential with a durable lease and revokes it.
//! - [`barrier`] seals every stored value; [`kms`] wraps the barrier's keyring.

#![deny(missing_docs)]

pub mod barrier;
pub mod kms;
pub mod lease;
pub mod plugin;
pub mod sql;
pub mod storage;
