//! The broker: a dynamic credential broker whose credentials are made by
//! sandboxed WebAssembly plugins.
//!
//! - [`plugin`] loads plugin components and runs their calls in a sandbox.
//! - [`sql`] owns the connection pools behind the plugins' `sql` capability.

#![deny(missing_docs)]

pub mod plugin;
pub mod sql;
