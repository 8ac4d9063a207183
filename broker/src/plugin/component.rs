//! A loaded plugin: a compiled, linked component ready to be instantiated,
//! and the calls the broker makes into it.
//!
//! Every call gets a fresh instance in a fresh store, built from the
//! pre-linked `InstancePre` and a pooling-allocator slot, so nothing a call
//! does can be seen by the next. A call is stopped when it passes its
//! deadline (epoch interruption inside wasm; a tokio timeout around the
//! whole call, since an epoch cannot interrupt a guest blocked in a host
//! call), when it grows memory past its cap, or when it traps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};

use super::PluginError;
use super::error::bounded;
use super::log::Outcome;
use super::runtime::{EPOCH_TICK, Shared};
use super::state::{CallState, Egress, HttpBinding, RedisBinding, RevocationRecorder, SqlBinding};
use super::versions::{
    self, Described, Failure, Instance, Pre, WireConnection, WireCredential, WireIssueRequest,
};
use crate::egress::{HttpTarget, RedisTarget};
use crate::sql::SqlTarget;

/// The contract versions this broker can link, oldest first.
pub const SUPPORTED_API_VERSIONS: &[&str] = versions::SUPPORTED;

/// A host capability a plugin is granted: declared by a v0.1.0 plugin,
/// imported by a v0.2.0 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostCapability {
    /// A connection to the mount's PostgreSQL database.
    SqlPostgres,
    /// A connection to the mount's MySQL or MariaDB database.
    SqlMysql,
    /// Signing with the mount's CA key.
    Signer,
    /// Commands to the mount's Redis server (contract v0.2.0 on).
    Redis,
    /// Requests to the mount's HTTP service (contract v0.2.0 on).
    Http,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Its catalog name.
    pub name: String,
    /// Other names that resolve to it (Vault's plugin names).
    pub aliases: Vec<String>,
    /// Its version.
    pub version: String,
    /// The contract version it was built against.
    pub api_version: String,
    /// The host capabilities it asked for.
    pub capabilities: Vec<HostCapability>,
    /// JSON Schema of its connection config.
    pub connection_schema: String,
    /// JSON Schema of its roles.
    pub role_schema: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
}

/// What a call may reach outside the sandbox: at most one database,
/// Redis server and HTTP service, the mount's CA, and the pending lease it
/// records revocation data into.
#[derive(Clone, Default)]
pub struct CallContext {
    sql: Option<(Arc<str>, Arc<SqlTarget>)>,
    redis: Option<(Arc<str>, Arc<RedisTarget>)>,
    http: Option<(Arc<str>, Arc<HttpTarget>)>,
    recorder: Option<Arc<dyn RevocationRecorder>>,
    signer: Option<Arc<dyn super::CaSigner>>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("sql", &self.sql)
            .field("redis", &self.redis)
            .field("http", &self.http)
            .field("recorder", &self.recorder.as_ref().map(|_| "…"))
            .field("signer", &self.signer.as_ref().map(|_| "…"))
            .finish()
    }
}

impl CallContext {
    /// A context that reaches nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the call's `sql.open` connect to `target`, through the pool
    /// named `pool_key` (one per mount and connection config).
    pub fn with_sql(mut self, pool_key: &str, target: Arc<SqlTarget>) -> Self {
        self.sql = Some((pool_key.into(), target));
        self
    }

    /// Lets the call's `redis` capability reach `target`, through the
    /// connection kept under `key` (one per mount and connection config).
    pub fn with_redis(mut self, key: &str, target: Arc<RedisTarget>) -> Self {
        self.redis = Some((key.into(), target));
        self
    }

    /// Lets the call's `http` capability reach `target`, through the
    /// client kept under `key`.
    pub fn with_http(mut self, key: &str, target: Arc<HttpTarget>) -> Self {
        self.http = Some((key.into(), target));
        self
    }

    /// Lets the call's `signer` capability use `ca` (the mount's CA).
    pub fn with_signer(mut self, ca: Arc<dyn super::CaSigner>) -> Self {
        self.signer = Some(ca);
        self
    }

    /// Sends what `issue` records through `lease.record-revocation` to
    /// `recorder` (the pending lease), before the plugin creates anything.
    pub fn with_recorder(mut self, recorder: Arc<dyn RevocationRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }
}

/// The connection config handed to the plugin: its name and its fields as
/// JSON, without the admin password (the host keeps it). A `rotate-root`
/// call's view does carry the new password the plugin is to set, so
/// `Debug` shows the fields' names, never their values.
#[derive(Clone)]
pub struct ConnectionView {
    /// The config's name.
    pub name: String,
    /// The fields the plugin sees.
    pub config: serde_json::Value,
}

impl std::fmt::Debug for ConnectionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<&str> = self
            .config
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("ConnectionView")
            .field("name", &self.name)
            .field("fields", &fields)
            .finish()
    }
}

/// A request for a new credential. `Debug` leaves out the role and the
/// request's fields: the role may carry the password the host made.
#[derive(Clone)]
pub struct IssueRequest {
    /// The role's name.
    pub role_name: String,
    /// The role's fields.
    pub role: serde_json::Value,
    /// The requesting token's display name.
    pub display_name: String,
    /// When the lease expires, in Unix seconds.
    pub expires_at: u64,
    /// The request's own fields (`{}` or `Null` when none).
    pub parameters: serde_json::Value,
}

impl std::fmt::Debug for IssueRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueRequest")
            .field("role_name", &self.role_name)
            .field("display_name", &self.display_name)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A credential a plugin issued. `Debug` shows field names only: the values
/// are secrets.
#[derive(Clone)]
pub struct Credential {
    /// What the client receives (a JSON object).
    pub data: serde_json::Map<String, serde_json::Value>,
    /// What revocation needs; the broker seals it with the lease.
    pub revocation: serde_json::Value,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("revocation", &"<sealed>")
            .finish()
    }
}

struct Inner {
    shared: Arc<Shared>,
    pre: Pre,
    info: PluginInfo,
    name: Arc<str>,
    capabilities: Arc<[HostCapability]>,
}

/// A loaded plugin. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.inner.info)
            .finish()
    }
}

type CallFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// How a call's return reads to its log (see [`super::log`]): which JSON
/// texts hold its secrets, or that it failed. Every return type decides.
trait CallOutput {
    fn log_outcome(&self) -> Outcome<'_>;
}

impl CallOutput for Described {
    fn log_outcome(&self) -> Outcome<'_> {
        Outcome::Returned(Vec::new())
    }
}

impl CallOutput for Result<(), Failure> {
    fn log_outcome(&self) -> Outcome<'_> {
        match self {
            Ok(()) => Outcome::Returned(Vec::new()),
            Err(_) => Outcome::Failed,
        }
    }
}

impl CallOutput for Result<WireCredential, Failure> {
    fn log_outcome(&self) -> Outcome<'_> {
        match self {
            Ok(c) => Outcome::Returned(vec![&c.data, &c.revocation]),
            Err(_) => Outcome::Failed,
        }
    }
}

/// `rotate-root`'s config update and `rotate-static`'s credential.
impl CallOutput for Result<String, Failure> {
    fn log_outcome(&self) -> Outcome<'_> {
        match self {
            Ok(json) => Outcome::Returned(vec![json]),
            Err(_) => Outcome::Failed,
        }
    }
}

fn wit_connection(c: &ConnectionView) -> WireConnection {
    WireConnection {
        name: c.name.clone(),
        config: c.config.to_string(),
    }
}

impl Plugin {
    pub(crate) async fn new(
        shared: Arc<Shared>,
        component: Component,
        wasm: &[u8],
    ) -> Result<Self, PluginError> {
        let api_version = versions::version_of(&shared.engine, &component)?;
        let imports = versions::imported(&shared.engine, &component);
        let instance_pre = shared.linker.instantiate_pre(&component).map_err(|e| {
            PluginError::Load(format!(
                "plugin needs imports the broker does not offer: {e:#}"
            ))
        })?;
        let (api_version, pre) = match api_version {
            "" => Pre::matching(instance_pre)?,
            v => (v, Pre::new(v, instance_pre)?),
        };
        let mut plugin = Self {
            inner: Arc::new(Inner {
                shared,
                pre,
                info: PluginInfo {
                    name: String::new(),
                    aliases: Vec::new(),
                    version: String::new(),
                    api_version: api_version.to_owned(),
                    capabilities: Vec::new(),
                    connection_schema: String::new(),
                    role_schema: String::new(),
                    sha256: hex::encode(Sha256::digest(wasm)),
                },
                name: "(loading)".into(),
                capabilities: Arc::new([]),
            }),
        };
        let described = plugin
            .call(&CallContext::new(), |p, s| Box::pin(p.describe(s)))
            .await
            .map_err(|e| PluginError::Load(format!("describe failed: {e}")))?;
        let inner = Arc::get_mut(&mut plugin.inner)
            .ok_or_else(|| PluginError::Runtime("plugin was shared while loading".into()))?;
        if described.name.is_empty() {
            return Err(PluginError::Load(
                "plugin describes itself with an empty name".into(),
            ));
        }
        // v0.1.0 declares what it needs; from v0.2.0 on, what a component
        // imports is what it is granted.
        let capabilities = match api_version {
            "0.1.0" => described.declared.clone(),
            _ => versions::v0_2_0::granted(&imports, &described).map_err(PluginError::Load)?,
        };
        inner.name = described.name.as_str().into();
        inner.capabilities = capabilities.clone().into();
        inner.info.capabilities = capabilities;
        inner.info.name = described.name;
        inner.info.aliases = described.aliases;
        inner.info.version = described.version;
        inner.info.connection_schema = described.connection_schema;
        inner.info.role_schema = described.role_schema;
        Ok(plugin)
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// Which runtime the plugin was loaded by (plugins of one share its
    /// connections).
    pub(crate) fn shared_id(&self) -> *const () {
        Arc::as_ptr(&self.inner.shared).cast()
    }

    /// Drops the connections its runtime keeps under `key`.
    pub(crate) fn forget_connections(&self, key: &str) {
        let shared = &self.inner.shared;
        shared.pools.remove(key);
        shared.redis.remove(key);
        shared.http.remove(key);
    }

    /// The connection pools its calls draw from (its runtime's).
    pub(crate) fn pools(&self) -> &Arc<crate::sql::Pools> {
        &self.inner.shared.pools
    }

    /// Runs one export in a fresh instance, within the sandbox's limits.
    async fn call<R: CallOutput + Send>(
        &self,
        ctx: &CallContext,
        f: impl for<'a> FnOnce(&'a Instance, &'a mut Store<CallState>) -> CallFuture<'a, R> + Send,
    ) -> Result<R, PluginError> {
        self.call_recording(ctx, f).await.map(|(r, _)| r)
    }

    /// [`Self::call`], also returning what the plugin recorded through
    /// `lease.record-revocation`.
    async fn call_recording<R: CallOutput + Send>(
        &self,
        ctx: &CallContext,
        f: impl for<'a> FnOnce(&'a Instance, &'a mut Store<CallState>) -> CallFuture<'a, R> + Send,
    ) -> Result<(R, Option<String>), PluginError> {
        let shared = &self.inner.shared;
        let limits = shared.limits;
        let _slot = shared
            .slots
            .acquire()
            .await
            .map_err(|_| PluginError::Runtime("the plugin runtime is shutting down".into()))?;
        let deadline = Instant::now() + limits.deadline;
        let egress = Egress {
            sql: ctx.sql.as_ref().map(|(key, target)| SqlBinding {
                key: key.clone(),
                target: target.clone(),
                pools: shared.pools.clone(),
            }),
            redis: ctx.redis.as_ref().map(|(key, target)| RedisBinding {
                key: key.clone(),
                target: target.clone(),
                pools: shared.redis.clone(),
            }),
            http: ctx.http.as_ref().map(|(key, target)| HttpBinding {
                key: key.clone(),
                target: target.clone(),
                clients: shared.http.clone(),
            }),
        };
        let state = CallState::new(
            self.inner.name.clone(),
            self.inner.capabilities.clone(),
            egress,
            ctx.recorder.clone(),
            ctx.signer.clone(),
            &limits,
            deadline,
        );
        // Writes the call's lines even if this future is dropped mid-call.
        let log = state.log.flush_on_drop(self.inner.name.clone());
        let mut store = Store::new(&shared.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Each tick: stop the guest past its deadline, otherwise yield so a
        // busy guest does not hold a runtime thread from other calls.
        store.epoch_deadline_callback(|mut cx| {
            if Instant::now() >= cx.data().deadline {
                cx.data_mut().deadline_hit = true;
                return Err(wasmtime::Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });

        let pre = &self.inner.pre;
        let run = async move {
            let result = async {
                let bindings = pre.instantiate(&mut store).await?;
                f(&bindings, &mut store).await
            }
            .await;
            (result, store)
        };
        // The epoch stops a guest computing; this stops a guest stuck in a host call.
        // A statement past the deadline is cancelled by the host call itself,
        // so that the call's end means it no longer runs: that gets time of
        // its own (the cancellation, then on PostgreSQL the statement's end).
        let grace = if ctx.sql.is_some() {
            EPOCH_TICK * 4 + crate::sql::CANCEL_TIMEOUT * 2
        } else {
            EPOCH_TICK * 4
        };
        let outcome = tokio::time::timeout(limits.deadline + grace, run).await;
        // Only now are the call's secrets known, so only now are its lines written.
        log.flush(&match &outcome {
            Ok((Ok(returned), _)) => returned.log_outcome(),
            _ => Outcome::Failed,
        });
        let (result, store) = outcome.map_err(|_| {
            crate::metrics::metrics().deadline_hit(&self.inner.name);
            PluginError::Deadline(limits.deadline)
        })?;
        let mut store = store;
        if store.data().deadline_hit {
            // A host call was cut at the deadline: whatever the guest
            // answered after that, its work may be half done.
            crate::metrics::metrics().deadline_hit(&self.inner.name);
            return Err(PluginError::Deadline(limits.deadline));
        }
        let recorded = store.data_mut().recorded.take();
        result.map(|r| (r, recorded)).map_err(|e| {
            let state = store.data();
            if state.deadline_hit {
                crate::metrics::metrics().deadline_hit(&self.inner.name);
                PluginError::Deadline(limits.deadline)
            } else if state.limiter.exceeded {
                PluginError::MemoryLimit(limits.memory_bytes)
            } else {
                let trap = match e.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::UnreachableCodeReached) => {
                        "wasm `unreachable` executed (a panic in the plugin?)".to_owned()
                    }
                    Some(t) => t.to_string(),
                    None => format!("{:#}", e),
                };
                PluginError::Trap(bounded(trap))
            }
        })
    }

    /// Calls `describe` in a fresh instance and discards the answer: the
    /// cheapest full round trip (instantiate, call, tear down), for health
    /// checks and for measuring the sandbox's fixed cost.
    pub async fn ping(&self) -> Result<(), PluginError> {
        self.call(&CallContext::new(), |p, s| Box::pin(p.describe(s)))
            .await
            .map(|_| ())
    }

    fn check_output(&self, size: usize) -> Result<(), PluginError> {
        let limit = self.inner.shared.limits.max_output_bytes;
        if size > limit {
            return Err(PluginError::OutputTooLarge { size, limit });
        }
        Ok(())
    }

    /// Checks a connection config (usually by connecting).
    pub async fn verify_connection(
        &self,
        ctx: &CallContext,
        connection: &ConnectionView,
    ) -> Result<(), PluginError> {
        let c = wit_connection(connection);
        self.call(ctx, move |p, s| {
            Box::pin(async move { p.verify_connection(s, &c).await })
        })
        .await?
        .map_err(PluginError::from)
    }

    /// Issues a credential.
    pub async fn issue(
        &self,
        ctx: &CallContext,
        connection: &ConnectionView,
        request: &IssueRequest,
    ) -> Result<Credential, PluginError> {
        let c = wit_connection(connection);
        let r = WireIssueRequest {
            role_name: request.role_name.clone(),
            role: request.role.to_string(),
            display_name: request.display_name.clone(),
            expires_at: request.expires_at,
            parameters: if request.parameters.is_null() {
                "{}".to_owned()
            } else {
                request.parameters.to_string()
            },
        };
        let (out, recorded) = self
            .call_recording(ctx, move |p, s| {
                Box::pin(async move { p.issue(s, &c, &r).await })
            })
            .await?;
        let out = out.map_err(PluginError::from)?;
        self.check_output(out.data.len() + out.revocation.len())?;
        let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
        if recorded
            .as_deref()
            .and_then(parse)
            .is_none_or(|r| Some(r) != parse(&out.revocation))
        {
            // The plugin may have created something we hold no record of: undo it now.
            if let Some(revocation) = parse(&out.revocation)
                && let Err(e) = self.revoke(ctx, connection, &revocation).await
            {
                tracing::error!(plugin = %self.inner.name, error = %e, "cannot revoke an unrecorded credential");
            }
            return Err(PluginError::Malformed(
                "plugin issued a credential without first recording that exact revocation data"
                    .into(),
            ));
        }
        let data = match serde_json::from_str(&out.data) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => {
                return Err(PluginError::Malformed(
                    "credential data is not a JSON object".into(),
                ));
            }
            Err(e) => {
                return Err(PluginError::Malformed(format!(
                    "credential data is not JSON: {e}"
                )));
            }
        };
        let revocation = serde_json::from_str(&out.revocation)
            .map_err(|e| PluginError::Malformed(format!("revocation data is not JSON: {e}")))?;
        Ok(Credential { data, revocation })
    }

    /// Moves a credential's expiry.
    pub async fn renew(
        &self,
        ctx: &CallContext,
        connection: &ConnectionView,
        revocation: &serde_json::Value,
        expires_at: u64,
    ) -> Result<(), PluginError> {
        let c = wit_connection(connection);
        let r = revocation.to_string();
        self.call(ctx, move |p, s| {
            Box::pin(async move { p.renew(s, &c, &r, expires_at).await })
        })
        .await?
        .map_err(PluginError::from)
    }

    /// Destroys a credential. Succeeds when it is already gone.
    pub async fn revoke(
        &self,
        ctx: &CallContext,
        connection: &ConnectionView,
        revocation: &serde_json::Value,
    ) -> Result<(), PluginError> {
        let c = wit_connection(connection);
        let r = revocation.to_string();
        self.call(ctx, move |p, s| {
            Box::pin(async move { p.revoke(s, &c, &r).await })
        })
        .await?
        .map_err(PluginError::from)
    }

    /// Changes the admin credential; returns the config fields to overwrite.
    pub async fn rotate_root(
        &self,
        ctx: &CallContext,
        connection: &ConnectionView,
    ) -> Result<serde_json::Map<String, serde_json::Value>, PluginError> {
        let c = wit_connection(connection);
        let out = self
            .call(ctx, move |p, s| {
                Box::pin(async move { p.rotate_root(s, &c).await })
            })
            .await?
            .map_err(PluginError::from)?;
        self.check_output(out.len())?;
        match serde_json::from_str(&out) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(PluginError::Malformed(
                "rotate-root did not return a JSON object".into(),
            )),
        }
    }

    /// Sets a new secret for a static account; returns the credential data.
    pub async fn rotate_static(
        &self,
        ctx: &CallContext,
        connection: &ConnectionView,
        role: &serde_json::Value,
    ) -> Result<serde_json::Map<String, serde_json::Value>, PluginError> {
        let c = wit_connection(connection);
        let r = role.to_string();
        let out = self
            .call(ctx, move |p, s| {
                Box::pin(async move { p.rotate_static(s, &c, &r).await })
            })
            .await?
            .map_err(PluginError::from)?;
        self.check_output(out.len())?;
        match serde_json::from_str(&out) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(PluginError::Malformed(
                "rotate-static did not return a JSON object".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_view_shows_field_names_not_values() {
        let view = ConnectionView {
            name: "main".into(),
            config: serde_json::json!({ "username": "admin", "new_password": "Zq9-new-root" }),
        };
        let shown = format!("{view:?}");
        assert!(
            shown.contains("new_password") && shown.contains("main"),
            "{shown}"
        );
        assert!(
            !shown.contains("Zq9-new-root") && !shown.contains("admin"),
            "{shown}"
        );
    }
}
