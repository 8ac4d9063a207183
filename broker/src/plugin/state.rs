//! The per-call store data: everything a plugin instance may touch, built
//! fresh for each call and dropped after it, so no state is shared between
//! requests.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::HostCapability;
use super::log::CallLog;
use crate::egress::{HttpClients, HttpTarget, RedisPools, RedisTarget};
use crate::sql::{Pools, SqlTarget};

/// The database a call may reach: a pool key and its target.
#[derive(Debug, Clone)]
pub(crate) struct SqlBinding {
    pub(crate) key: Arc<str>,
    pub(crate) target: Arc<SqlTarget>,
    pub(crate) pools: Arc<Pools>,
}

/// The Redis server a call may reach.
#[derive(Debug, Clone)]
pub(crate) struct RedisBinding {
    pub(crate) key: Arc<str>,
    pub(crate) target: Arc<RedisTarget>,
    pub(crate) pools: Arc<RedisPools>,
}

/// The HTTP service a call may reach.
#[derive(Debug, Clone)]
pub(crate) struct HttpBinding {
    pub(crate) key: Arc<str>,
    pub(crate) target: Arc<HttpTarget>,
    pub(crate) clients: Arc<HttpClients>,
}

/// What a call may reach outside the sandbox, besides its CA.
#[derive(Debug, Clone, Default)]
pub(crate) struct Egress {
    pub(crate) sql: Option<SqlBinding>,
    pub(crate) redis: Option<RedisBinding>,
    pub(crate) http: Option<HttpBinding>,
}

/// Durably stores the revocation data of a pending lease, before the plugin
/// creates anything. The lease layer implements it over storage.
pub trait RevocationRecorder: Send + Sync {
    /// Stores `revocation` with the pending lease; returns once it is durable.
    fn record<'a>(
        &'a self,
        revocation: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Refuses memory and table growth past the call's caps, and remembers
/// that it did so the error can say why the plugin stopped.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    pub(crate) exceeded: bool,
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A call's store data.
pub(crate) struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) deadline: Instant,
    pub(crate) deadline_hit: bool,
    /// The plugin's catalog name, for the host's own log lines.
    pub(crate) plugin: Arc<str>,
    pub(crate) sql: Option<SqlBinding>,
    pub(crate) redis: Option<RedisBinding>,
    pub(crate) http: Option<HttpBinding>,
    /// What the plugin was granted (its imports, or its v0.1.0 declaration).
    pub(crate) capabilities: Arc<[HostCapability]>,
    pub(crate) sql_handles: usize,
    pub(crate) redis_commands: u32,
    pub(crate) http_requests: u32,
    /// The call's log lines, held until it ends.
    pub(crate) log: CallLog,
    pub(crate) recorder: Option<Arc<dyn RevocationRecorder>>,
    /// What the plugin recorded through `lease.record-revocation`, as JSON text.
    pub(crate) recorded: Option<String>,
    /// The mount's CA, for the `signer` capability.
    pub(crate) signer: Option<Arc<dyn super::CaSigner>>,
    /// Signatures made in this call: one certificate per call, at most.
    pub(crate) signatures: u32,
    pub(crate) max_output_bytes: usize,
}

impl CallState {
    pub(crate) fn new(
        plugin: Arc<str>,
        capabilities: Arc<[HostCapability]>,
        egress: Egress,
        recorder: Option<Arc<dyn RevocationRecorder>>,
        signer: Option<Arc<dyn super::CaSigner>>,
        limits: &super::Limits,
        deadline: Instant,
    ) -> Self {
        // No preopened directories, no environment, no arguments, no network:
        // WASI is linked only because Rust's std imports it.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                exceeded: false,
            },
            deadline,
            deadline_hit: false,
            plugin,
            sql: egress.sql,
            redis: egress.redis,
            http: egress.http,
            capabilities,
            sql_handles: 0,
            redis_commands: 0,
            http_requests: 0,
            log: CallLog::default(),
            recorder,
            recorded: None,
            signer,
            signatures: 0,
            max_output_bytes: limits.max_output_bytes,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
