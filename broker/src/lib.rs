//! The broker: a dynamic credential broker whose credentials are made by
//! sandboxed WebAssembly plugins.
//!
//! - [`api`] speaks Vault's HTTP API; [`core`] ties storage, mounts and
//!   leases together; [`engine`] holds the secrets engines, each declaring
//!   its paths as a table on the [`framework`].
//! - [`plugin`] loads plugin components and runs their calls in a sandbox.
//! - [`sql`] owns the connection pools behind the plugins' `sql` capability.
//! - [`storage`] keeps sealed entries and lease records (SQLite or PostgreSQL).
//! - [`cluster`] lets several nodes share one PostgreSQL: echoes, once-only
//!   jobs, caches refreshed on change.
//! - [`lease`] covers every credential with a durable lease and revokes it.
//! - [`pki`] holds CA keys and signs what the `pki` plugin builds.
//! - [`policy`] holds Vault-style path policies and the ACL they make.
//! - [`audit`] records every request, response and revocation, fail closed.
//! - [`barrier`] seals every stored value; [`seal`] wraps the root key, which encrypts the keyring.
//! - [`metrics`] counts what `sys/metrics` reports.
//! - [`config`] reads the server's configuration file; [`server`] starts
//!   and serves; [`client`] talks to a broker over its HTTP API; [`agent`]
//!   keeps an application's secrets fresh in files; [`cli`] is the `broker`
//!   command, the only place `anyhow` is used.

#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod audit;
pub mod auth;
pub mod barrier;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod core;
pub mod duration;
pub mod egress;
pub mod engine;
pub mod framework;
pub mod hsm;
pub mod lease;
pub mod listener;
pub mod metrics;
pub mod pki;
pub mod plugin;
pub mod policy;
pub mod seal;
pub mod server;
pub mod sql;
pub mod storage;
pub mod tls;
pub mod token;
pub mod unseal;
