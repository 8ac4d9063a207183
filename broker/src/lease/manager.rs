//! Issuing, renewing and revoking leases, and the expiration worker.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use super::{LeaseData, LeaseId, LeaseKind, LeasePrefix};
use crate::barrier::{BarrierError, SealedStorage};
use crate::clock;
use crate::egress::{HttpTarget, RedisTarget};
use crate::plugin::{
    CaSigner, CallContext, Catalog, ConnectionView, Credential, PluginError, RevocationRecorder,
};
use crate::sql::{SqlTarget, SqlTargetSpec};
use crate::storage::{Durability, LeaseRow, LeaseState, StorageError};

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// No lease has that id.
    #[error("lease not found or lease is not renewable: {0}")]
    NotFound(String),
    /// The lease cannot be renewed (not active, or at its max TTL).
    #[error("lease is not renewable: {0}")]
    NotRenewable(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The sealed lease data would not open or seal.
    #[error("lease data: {0}")]
    Barrier(#[from] BarrierError),
    /// The lease names a plugin the catalog does not hold.
    #[error("plugin {0:?} is not in the catalog")]
    UnknownPlugin(String),
    /// The plugin failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Sealed data did not parse.
    #[error("lease data does not parse: {0}")]
    Corrupt(String),
    /// A revocation's task ended without an outcome.
    #[error("revocation task failed: {0}")]
    Task(String),
    /// The pending lease was removed (revoke-prefix, or its hold ran out)
    /// while the plugin was creating the credential; the lease is put back
    /// so the worker revokes what was made.
    #[error("lease {0} was revoked while its credential was being made; try again")]
    RevokedDuringIssue(String),
    /// A prefix that names no lease: never read as "every lease".
    #[error("a lease prefix is required")]
    EmptyPrefix,
}

/// A connection config as the engine holds it now.
#[derive(Clone)]
pub struct ResolvedConnection {
    /// What the plugin sees.
    pub connection: ConnectionView,
    /// The database the plugin may reach.
    pub target: Option<Arc<SqlTarget>>,
    /// The CA the plugin may sign with.
    pub signer: Option<Arc<dyn CaSigner>>,
    /// The Redis server the plugin may reach.
    pub redis: Option<Arc<RedisTarget>>,
    /// The HTTP service the plugin may reach.
    pub http: Option<Arc<HttpTarget>>,
}

impl ResolvedConnection {
    /// A connection that reaches nothing but what the plugin sees.
    pub fn view_only(connection: ConnectionView) -> Self {
        Self {
            connection,
            target: None,
            signer: None,
            redis: None,
            http: None,
        }
    }

    /// What a call through this connection may reach; `key` names the
    /// pooled connections (one set per mount and connection config).
    pub fn context(&self, key: &str) -> CallContext {
        let mut ctx = CallContext::new();
        if let Some(t) = &self.target {
            ctx = ctx.with_sql(key, t.clone());
        }
        if let Some(t) = &self.redis {
            ctx = ctx.with_redis(key, t.clone());
        }
        if let Some(t) = &self.http {
            ctx = ctx.with_http(key, t.clone());
        }
        if let Some(ca) = &self.signer {
            ctx = ctx.with_signer(ca.clone());
        }
        ctx
    }
}

impl std::fmt::Debug for ResolvedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedConnection")
            .field("connection", &self.connection)
            .field("target", &self.target)
            .field("signer", &self.signer.is_some())
            .field("redis", &self.redis)
            .field("http", &self.http)
            .finish()
    }
}

/// Looks up a mount's current connection config, so revocation uses a
/// rotated admin password; a lease falls back to its own snapshot when the
/// config is gone.
#[async_trait::async_trait]
pub trait ConnectionResolver: Send + Sync {
    /// The config `config_name` on `mount`, if it still exists.
    async fn resolve(&self, mount: &str, config_name: &str) -> Option<ResolvedConnection>;
}

/// Told of what happens to leases, so that every revocation is on record
/// (the audit log implements it). Called after the fact; it cannot veto.
#[async_trait::async_trait]
pub trait LeaseEvents: Send + Sync {
    /// A lease's credential was revoked and the lease removed.
    async fn revoked(&self, lease_id: &str);
    /// The expiration worker revoked a batch: as [`LeaseEvents::revoked`]
    /// for each, in one write where the sink can (one fsync, not one each).
    async fn revoked_all(&self, lease_ids: &[String]) {
        for id in lease_ids {
            self.revoked(id).await;
        }
    }
    /// A revocation failed and was rescheduled (or given up: irrevocable).
    async fn revocation_failed(&self, lease_id: &str, attempts: i64, error: &str);
    /// A lease was removed without revoking its credential (revoke-force).
    async fn forgotten(&self, lease_id: &str);
}

/// What [`Leases::issue`] needs. `Debug` leaves out the role and the
/// request's fields: the role may carry the password the host made.
#[derive(Clone)]
pub struct IssueParams {
    /// What the lease covers (so what revokes it).
    pub kind: LeaseKind,
    /// The mount path (`database`).
    pub mount: String,
    /// The mount's endpoint that issues (`creds`, `issue`, `sign`): the
    /// lease id is `<mount>/<endpoint>/<role>/<random>`.
    pub endpoint: &'static str,
    /// The role's name.
    pub role_name: String,
    /// The request's own fields, for the plugin.
    pub parameters: serde_json::Value,
    /// The role's fields, for the plugin.
    pub role: serde_json::Value,
    /// The connection config's name.
    pub config_name: String,
    /// The plugin's catalog name.
    pub plugin: String,
    /// The connection config as the plugin sees it, and its database.
    pub connection: ResolvedConnection,
    /// The requesting token's display name.
    pub display_name: String,
    /// The requesting token's accessor (its leases die with it).
    pub token_accessor: Option<String>,
    /// The latest the lease may last (Unix seconds), whatever its TTLs: a
    /// batch token's leases end with it.
    pub deadline: Option<i64>,
    /// How long the lease lasts.
    pub ttl: Duration,
    /// The longest it may ever last, renewals included.
    pub max_ttl: Duration,
}

impl std::fmt::Debug for IssueParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueParams")
            .field("kind", &self.kind)
            .field("mount", &self.mount)
            .field("endpoint", &self.endpoint)
            .field("role_name", &self.role_name)
            .field("config_name", &self.config_name)
            .field("plugin", &self.plugin)
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

/// Who a lease is issued to, as the engines pass it on.
#[derive(Debug, Clone, Default)]
pub struct LeaseOwner {
    /// The requesting token's display name.
    pub display_name: String,
    /// The accessor whose revocation revokes the lease.
    pub token_accessor: Option<String>,
    /// The latest the lease may last (Unix seconds).
    pub deadline: Option<i64>,
}

/// What one pass of the expiration worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerPass {
    /// Leases revoked (or pending leases with nothing to revoke, removed).
    pub revoked: usize,
    /// Revocations that failed and were rescheduled.
    pub failed: usize,
}

/// A lease's revocation outcome.
type Outcome = (LeaseRow, Result<(), LeaseError>);

/// Claimed leases: those ready to revoke (opened, their connection
/// resolved), and those already settled (they would not open).
struct Batch {
    work: Vec<(LeaseRow, LeaseData, Arc<ResolvedConnection>)>,
    outcomes: Vec<Outcome>,
}

impl Batch {
    /// How many leases it holds.
    fn len(&self) -> usize {
        self.work.len() + self.outcomes.len()
    }

    /// Drops the leases already in `in_flight` and adds the rest; returns
    /// how many are left.
    fn keep_new(&mut self, in_flight: &Mutex<HashSet<String>>) -> usize {
        let mut set = in_flight.lock().unwrap_or_else(|e| e.into_inner());
        self.work.retain(|(row, ..)| set.insert(row.id.clone()));
        self.outcomes.retain(|(row, _)| set.insert(row.id.clone()));
        self.len()
    }
}

/// Leases over sealed storage and the plugin catalog.
pub struct Leases {
    pub(super) store: SealedStorage,
    catalog: Arc<Catalog>,
    resolver: Option<Arc<dyn ConnectionResolver>>,
    events: Option<Arc<dyn LeaseEvents>>,
    /// How long a pending lease is left alone while its issue is in flight.
    pending_hold: Duration,
    /// How many revocations one worker pass runs at once.
    pub(super) concurrency: usize,
    /// Revokes token trees for [`LeaseKind::Token`] leases. Weak: the
    /// token store holds the leases, and would otherwise never be dropped.
    pub(super) tokens: std::sync::OnceLock<std::sync::Weak<dyn super::TokenRevoker>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("pending_hold", &self.pending_hold)
            .finish_non_exhaustive()
    }
}

/// Whole seconds, capped at the longest TTL: requests cannot ask for more,
/// and a stored role or mount from before that bound was checked must not
/// make an expiry that overflows or that a database cannot hold.
fn secs(d: Duration) -> i64 {
    crate::duration::capped_secs(d)
}

/// The last second RFC 3339 and the databases' timestamps can write: the
/// end of year 9999.
const LATEST: i64 = 253_402_300_799;

/// Whether a stored lease's times are ones this broker could have made:
/// issued in range, expiring no later than the longest TTL after that.
/// Others (written before TTLs were bounded) cannot be shown, renewed or
/// reached by the worker, which finds leases by their due time.
fn times_usable(row: &LeaseRow) -> bool {
    let limit = row
        .issued_at
        .saturating_add(secs(crate::duration::MAX_TTL))
        .min(LATEST);
    (0..=LATEST).contains(&row.issued_at)
        && row.expires_at <= limit
        && row.max_expires_at <= limit
        && row.next_attempt_at <= LATEST
}

/// Capped exponential backoff: 2, 4, 8 … seconds, at most an hour.
fn backoff(attempts: i64) -> i64 {
    2i64.saturating_pow(attempts.clamp(1, 12) as u32).min(3600)
}

/// Non-retryable failures become `irrevocable` after this many attempts;
/// retryable ones (the database is down) are retried for as long as it takes.
const MAX_PERMANENT_FAILURES: i64 = 10;

/// Leases one worker pass claims. A pass costs two commits (the claim and
/// the batch's delete) whatever its size, so bigger passes revoke faster;
/// a pass is also what a crash may make the next start revoke again.
const WORKER_BATCH: u32 = 1024;

/// How often the worker refreshes the lease-count gauge.
const COUNT_EVERY: Duration = Duration::from_secs(60);

/// The associated data lease `id`'s sealed column is bound to.
pub fn seal_key(id: &str) -> String {
    format!("lease/{id}")
}

fn pool_key(mount: &str, config: &str) -> String {
    format!("{}/config/{config}", mount.trim_end_matches('/'))
}

/// Where the plugin's revocation data goes during an issue. Its first
/// record writes the pending lease; nothing is stored before that, because
/// until then the plugin has made nothing that would need revoking (the SDK
/// records before it creates). One commit fewer per issuance than writing a
/// bare pending lease first and the data into it after.
struct PendingRecorder {
    store: SealedStorage,
    row: Mutex<LeaseRow>,
    data: Mutex<LeaseData>,
    /// Whether the pending lease is in storage yet.
    stored: AtomicBool,
}

impl RevocationRecorder for PendingRecorder {
    fn record<'a>(
        &'a self,
        revocation: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let row = {
                let mut data = self
                    .data
                    .lock()
                    .map_err(|_| "lease state poisoned".to_string())?;
                data.revocation = Some(revocation.clone());
                let mut row = self
                    .row
                    .lock()
                    .map_err(|_| "lease state poisoned".to_string())?;
                let plain =
                    zeroize::Zeroizing::new(serde_json::to_vec(&*data).map_err(|e| e.to_string())?);
                row.sealed = self
                    .store
                    .barrier()
                    .seal(&seal_key(&row.id), &plain)
                    .map_err(|e| e.to_string())?;
                row.clone()
            };
            // The guest makes one host call at a time: no record races this.
            if self.stored.load(Ordering::Acquire) {
                match self
                    .store
                    .storage()
                    .update_lease(&row, Durability::Durable)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("the pending lease vanished".into()),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                self.store
                    .storage()
                    .insert_lease(&row)
                    .await
                    .map_err(|e| e.to_string())?;
                self.stored.store(true, Ordering::Release);
                Ok(())
            }
        })
    }
}

impl Leases {
    /// Leases over `store`, revoking with plugins from `catalog`.
    pub fn new(store: SealedStorage, catalog: Arc<Catalog>) -> Self {
        Self {
            store,
            catalog,
            resolver: None,
            events: None,
            pending_hold: Duration::from_secs(60),
            concurrency: 16,
            tokens: std::sync::OnceLock::new(),
        }
    }

    /// Looks configs up through `resolver` at revocation time.
    pub fn with_resolver(mut self, resolver: Arc<dyn ConnectionResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Tells `events` of every revocation.
    pub fn with_events(mut self, events: Arc<dyn LeaseEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Has `tokens` revoke the token trees that [`LeaseKind::Token`]
    /// leases stand for. Set once; later calls are ignored.
    pub fn set_token_revoker(&self, tokens: std::sync::Weak<dyn super::TokenRevoker>) {
        let _ = self.tokens.set(tokens);
    }

    /// How long a pending lease is left to its in-flight issue, and a
    /// revocation in progress to the request running it.
    pub fn pending_hold(&self) -> Duration {
        self.pending_hold
    }

    /// How long a pending lease is left to its in-flight issue (default 60 s;
    /// keep it above the plugin deadline).
    pub fn with_pending_hold(mut self, hold: Duration) -> Self {
        self.pending_hold = hold;
        self
    }

    /// The `sealed` column of lease `id` holding `data`, bound to the id so
    /// it cannot be moved to another lease. Issuance uses it; so do tools
    /// that write lease rows in bulk (the lease-scale bench).
    pub fn seal(&self, id: &str, data: &LeaseData) -> Result<Vec<u8>, LeaseError> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(data).map_err(|e| LeaseError::Corrupt(e.to_string()))?,
        );
        Ok(self.store.barrier().seal(&seal_key(id), &plain)?)
    }

    /// Writes back a lease read earlier. Its sealed column goes back under
    /// the active key term: the rewrap may have moved the stored row since
    /// it was read, and the bytes read then would undo that. A column that
    /// does not open goes back as it was: the write must not fail for it.
    pub(super) async fn put_back(
        &self,
        row: &mut LeaseRow,
        durability: Durability,
    ) -> Result<bool, LeaseError> {
        if let Ok(Some(fresh)) = self
            .store
            .barrier()
            .refresh(&seal_key(&row.id), &row.sealed)
        {
            row.sealed = fresh;
        }
        Ok(self.store.storage().update_lease(row, durability).await?)
    }

    /// What a lease keeps, unsealed: which plugin made it, at which
    /// version, and what revoking it takes. Never returned over the API
    /// whole: it holds the admin credentials of the connection.
    pub fn data(&self, row: &LeaseRow) -> Result<LeaseData, LeaseError> {
        self.open(row)
    }

    fn open(&self, row: &LeaseRow) -> Result<LeaseData, LeaseError> {
        let plain = self.store.barrier().open(&seal_key(&row.id), &row.sealed)?;
        serde_json::from_slice(&plain).map_err(|e| LeaseError::Corrupt(e.to_string()))
    }

    /// Issues a credential under a new lease (see the module docs for the steps).
    pub async fn issue(&self, p: IssueParams) -> Result<(LeaseRow, Credential), LeaseError> {
        let plugin = self
            .catalog
            .get(&p.plugin)
            .ok_or_else(|| LeaseError::UnknownPlugin(p.plugin.clone()))?;
        let id =
            LeaseId::generate(&p.mount, p.endpoint, &p.role_name).map_err(LeaseError::Corrupt)?;
        let now = clock::unix_now_signed();
        let max_expires_at = now.saturating_add(secs(p.max_ttl));
        let max_expires_at = match p.deadline {
            Some(deadline) => max_expires_at.min(deadline.max(now)),
            None => max_expires_at,
        };
        let expires_at = now.saturating_add(secs(p.ttl)).min(max_expires_at);
        let data = LeaseData {
            kind: Some(p.kind),
            mount: p.mount.clone(),
            config_name: p.config_name.clone(),
            plugin: p.plugin.clone(),
            connection: p.connection.connection.config.clone(),
            target: p.connection.target.as_deref().map(SqlTargetSpec::from),
            redis: p.connection.redis.as_deref().cloned(),
            http: p.connection.http.as_deref().cloned(),
            plugin_version: Some(plugin.info().version.clone()),
            contract_version: Some(plugin.info().api_version.clone()),
            revocation: None,
        };
        let mut row = LeaseRow {
            id: id.to_string(),
            state: LeaseState::Pending,
            issued_at: now,
            expires_at,
            max_expires_at,
            next_attempt_at: now.saturating_add(secs(self.pending_hold)),
            attempts: 0,
            last_error: None,
            token_accessor: p.token_accessor.clone(),
            // Sealed when first written, with the revocation data in it.
            sealed: Vec::new(),
        };
        let recorder = Arc::new(PendingRecorder {
            store: self.store.clone(),
            row: Mutex::new(row.clone()),
            data: Mutex::new(data.clone()),
            stored: AtomicBool::new(false),
        });
        let ctx = p
            .connection
            .context(&pool_key(&p.mount, &p.config_name))
            .with_recorder(recorder.clone());
        let request = crate::plugin::IssueRequest {
            role_name: p.role_name.clone(),
            role: p.role.clone(),
            display_name: p.display_name.clone(),
            expires_at: u64::try_from(expires_at).unwrap_or(0),
            parameters: p.parameters.clone(),
        };
        // Steps 1 and 2: the plugin records its revocation data (which
        // commits the pending lease), then creates.
        let outcome = plugin.issue(&ctx, &p.connection.connection, &request).await;
        let stored = recorder.stored.load(Ordering::Acquire);
        match outcome {
            Ok(credential) => {
                // Step 3: active, due at expiry.
                let mut data = data;
                data.revocation = Some(credential.revocation.clone());
                row.sealed = self.seal(id.as_str(), &data)?;
                row.state = LeaseState::Active;
                row.next_attempt_at = expires_at;
                // Deferred: lost in a crash, the lease stays pending and is
                // revoked when its hold runs out. Nothing is orphaned; only
                // the recorded pending lease had to wait for the disk.
                if stored {
                    if !self
                        .store
                        .storage()
                        .update_lease(&row, Durability::Deferred)
                        .await?
                    {
                        self.requeue(row, "revoked while its credential was being made")
                            .await?;
                        return Err(LeaseError::RevokedDuringIssue(id.to_string()));
                    }
                } else {
                    // A plugin that never recorded (its credential lives
                    // in the broker, like a certificate): one write.
                    self.store.storage().insert_lease(&row).await?;
                }
                Ok((row, credential))
            }
            // A typed failure: the plugin ran to the end and undid its own
            // work (a transaction, or its rollback statements).
            Err(e @ PluginError::Failed { .. }) => {
                if stored {
                    self.store.storage().delete_lease(id.as_str()).await?;
                }
                Err(e.into())
            }
            // Stopped half-way (trap, deadline…): whatever was made is
            // revoked by the worker from the recorded data, right away.
            Err(e) => {
                let pending = recorder.row.lock().ok().map(|r| r.clone());
                if let (true, Some(pending)) = (stored, pending) {
                    self.requeue(pending, &e.to_string()).await?;
                }
                Err(e.into())
            }
        }
    }

    /// Makes a pending lease (sealed with its revocation data) due now, so
    /// the worker revokes whatever its plugin may have made. Should the
    /// lease have been removed meanwhile, it is written again: without it,
    /// what the plugin made would have no lease.
    async fn requeue(&self, mut row: LeaseRow, error: &str) -> Result<(), LeaseError> {
        row.state = LeaseState::Pending;
        row.next_attempt_at = clock::unix_now_signed();
        row.last_error = Some(error.to_owned());
        if !self.put_back(&mut row, Durability::Durable).await? {
            self.store.storage().insert_lease(&row).await?;
        }
        Ok(())
    }

    /// The lease with this id. One whose stored times are out of range is
    /// marked failed first (see [`Self::expire_unusable`]).
    pub async fn lookup(&self, id: &str) -> Result<LeaseRow, LeaseError> {
        let row = self
            .store
            .storage()
            .get_lease(id)
            .await?
            .ok_or_else(|| LeaseError::NotFound(id.to_owned()))?;
        if times_usable(&row) {
            return Ok(row);
        }
        self.expire_unusable(row).await
    }

    /// A lease whose times are out of range (from before TTLs were bounded:
    /// an expiry of 2.3e18 s) is ended as expired: its true end cannot be
    /// known, it is past any TTL the broker allows, and without a usable due
    /// time the worker would never revoke it. Its times are clamped to now
    /// and the reason is kept as its error, so lookups show why it went.
    async fn expire_unusable(&self, mut row: LeaseRow) -> Result<LeaseRow, LeaseError> {
        let now = clock::unix_now_signed();
        let error = format!(
            "the lease's stored times are out of range (issued {}, expires {}); it is revoked as expired",
            row.issued_at, row.expires_at
        );
        tracing::warn!(lease = %row.id, issued_at = row.issued_at, expires_at = row.expires_at, "lease times out of range; revoking it");
        row.issued_at = row.issued_at.clamp(0, now);
        row.expires_at = now;
        row.max_expires_at = now;
        row.next_attempt_at = now;
        if row.state == LeaseState::Active {
            row.state = LeaseState::Revoking;
        }
        row.last_error = Some(error.clone());
        self.put_back(&mut row, Durability::Durable).await?;
        if let Some(events) = &self.events {
            events
                .revocation_failed(&row.id, row.attempts, &error)
                .await;
        }
        Ok(row)
    }

    /// Ends (as [`Self::expire_unusable`] does) every lease due later than
    /// any due time the broker could have set: the worker finds leases by
    /// due time, so it would never reach them. Returns how many.
    pub async fn sweep_unusable(&self) -> Result<usize, LeaseError> {
        // A day of slack for clocks that differ between nodes or stepped back.
        let horizon = clock::unix_now_signed()
            .saturating_add(secs(crate::duration::MAX_TTL))
            .saturating_add(86_400);
        const PAGE: u32 = 256;
        let mut ended = 0;
        loop {
            let rows = self.store.storage().leases_due_after(horizon, PAGE).await?;
            let full = rows.len() == PAGE as usize;
            let mut skipped = false;
            for row in rows {
                if times_usable(&row) {
                    skipped = true;
                    continue;
                }
                self.expire_unusable(row).await?;
                ended += 1;
            }
            // Rows left as they were come back on the next page: stop.
            if !full || skipped {
                return Ok(ended);
            }
        }
    }

    /// Lease ids starting with `prefix`, as text: give a folder (ending
    /// with `/`, or empty for all). Acting on a prefix goes through
    /// [`LeasePrefix`] instead.
    pub async fn list(&self, prefix: &str, limit: u32) -> Result<Vec<String>, LeaseError> {
        Ok(self.store.storage().list_leases(prefix, limit).await?)
    }

    /// Up to `limit` ids of leases under `prefix`'s folder.
    async fn list_under(
        &self,
        prefix: &LeasePrefix,
        limit: u32,
    ) -> Result<Vec<String>, LeaseError> {
        let mut ids = self.list(prefix.folder(), limit).await?;
        // Storage escapes LIKE's wildcards; this keeps a backend that
        // matched more than the folder from reaching a sibling's leases.
        ids.retain(|id| prefix.matches(id));
        Ok(ids)
    }

    /// The lease `prefix` names exactly, if it does (as in Vault, a prefix
    /// without a trailing slash that is a lease's id names that lease only).
    async fn exact(&self, prefix: &LeasePrefix) -> Result<Option<LeaseRow>, LeaseError> {
        match prefix.exact() {
            Some(id) => Ok(self.store.storage().get_lease(id).await?),
            None => Ok(None),
        }
    }

    /// The plugin that made a lease's credential.
    fn plugin(&self, data: &LeaseData) -> Result<crate::plugin::Plugin, LeaseError> {
        self.catalog
            .get(&data.plugin)
            .ok_or_else(|| LeaseError::UnknownPlugin(data.plugin.clone()))
    }

    async fn resolve(&self, data: &LeaseData) -> ResolvedConnection {
        match self.current(data).await {
            Some(current) => current,
            None => Self::snapshot(data),
        }
    }

    /// The lease's connection config as its mount holds it now, if it does.
    async fn current(&self, data: &LeaseData) -> Option<ResolvedConnection> {
        match &self.resolver {
            Some(resolver) => resolver.resolve(&data.mount, &data.config_name).await,
            None => None,
        }
    }

    /// The connection as the lease saw it when it was made.
    fn snapshot(data: &LeaseData) -> ResolvedConnection {
        ResolvedConnection {
            connection: ConnectionView {
                name: data.config_name.clone(),
                config: data.connection.clone(),
            },
            target: data.target.as_ref().map(|t| Arc::new(SqlTarget::from(t))),
            signer: None,
            redis: data.redis.clone().map(Arc::new),
            http: data.http.clone().map(Arc::new),
        }
    }

    fn context(data: &LeaseData, resolved: &ResolvedConnection) -> CallContext {
        resolved.context(&pool_key(&data.mount, &data.config_name))
    }

    /// Extends an active lease by `increment` from now (zero: by its original
    /// TTL, as Vault does), never past its max TTL; the lease and the
    /// seconds granted (Vault's `lease_duration`).
    pub async fn renew(
        &self,
        id: &str,
        increment: Duration,
    ) -> Result<(LeaseRow, i64), LeaseError> {
        let mut row = self.lookup(id).await?;
        if row.state != LeaseState::Active {
            return Err(LeaseError::NotRenewable(format!(
                "lease is {}",
                row.state.as_str()
            )));
        }
        let now = clock::unix_now_signed();
        let increment = if increment.is_zero() {
            row.expires_at.saturating_sub(row.issued_at).max(1)
        } else {
            secs(increment)
        };
        let expires_at = now.saturating_add(increment).min(row.max_expires_at);
        if expires_at <= now {
            return Err(LeaseError::NotRenewable("lease is at its max TTL".into()));
        }
        let data = self.open(&row)?;
        if let Some(revocation) = &data.revocation {
            let plugin = self.plugin(&data)?;
            let resolved = self.resolve(&data).await;
            plugin
                .renew(
                    &Self::context(&data, &resolved),
                    &resolved.connection,
                    revocation,
                    u64::try_from(expires_at).unwrap_or(0),
                )
                .await?;
        }
        row.expires_at = expires_at;
        row.next_attempt_at = expires_at;
        self.put_back(&mut row, Durability::Durable).await?;
        // Counted from the renewal's own clock: a client comparing it with
        // what it asked for must not see the plugin's time as a cap.
        Ok((row, expires_at - now))
    }

    /// Revokes one lease now. On failure the lease stays, in `revoking`,
    /// and the worker retries it with backoff.
    pub async fn revoke(&self, id: &str) -> Result<(), LeaseError> {
        let row = self.lookup(id).await?;
        self.revoke_row(row).await
    }

    /// Revokes every lease under `prefix` (a role, a mount), matching
    /// whole path segments; returns how many. Failures stay scheduled for
    /// retry; the first is returned.
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<usize, LeaseError> {
        let prefix = LeasePrefix::new(prefix).ok_or(LeaseError::EmptyPrefix)?;
        if let Some(row) = self.exact(&prefix).await? {
            self.revoke(&row.id).await?;
            return Ok(1);
        }
        let mut revoked = 0;
        let mut first_error = None;
        loop {
            let ids = self.list_under(&prefix, 500).await?;
            let before = revoked;
            for id in &ids {
                match self.revoke(id).await {
                    Ok(()) => revoked += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if ids.len() < 500 || revoked == before {
                break;
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    /// Deletes every lease under `prefix` (whole path segments) without
    /// revoking anything: for credentials an operator has removed by hand.
    /// Returns how many.
    pub async fn revoke_force(&self, prefix: &str) -> Result<usize, LeaseError> {
        let prefix = LeasePrefix::new(prefix).ok_or(LeaseError::EmptyPrefix)?;
        let exact = self.exact(&prefix).await?.map(|row| row.id);
        let mut n = 0;
        loop {
            let ids = match &exact {
                Some(id) => vec![id.clone()],
                None => self.list_under(&prefix, 500).await?,
            };
            for id in &ids {
                if self.store.storage().delete_lease(id).await? {
                    n += 1;
                    if let Some(events) = &self.events {
                        events.forgotten(id).await;
                    }
                }
            }
            if ids.len() < 500 {
                return Ok(n);
            }
        }
    }

    pub(super) async fn revoke_row(&self, row: LeaseRow) -> Result<(), LeaseError> {
        match self.try_revoke(&row).await {
            Ok(()) => {
                // Durable: once revoke has answered, the lease must not
                // come back after a crash (as active, for a credential that
                // is gone), nor run operator-written revocation statements
                // a second time.
                self.store.storage().delete_lease(&row.id).await?;
                tracing::info!(lease = %row.id, "lease revoked");
                crate::metrics::metrics().revoked();
                if let Some(events) = &self.events {
                    events.revoked(&row.id).await;
                }
                Ok(())
            }
            Err(e) => {
                self.reschedule(row, &e).await?;
                Err(e)
            }
        }
    }

    async fn try_revoke(&self, row: &LeaseRow) -> Result<(), LeaseError> {
        let data = self.open(row)?;
        let resolved = self.resolve(&data).await;
        match self.revocation(&data, &resolved)? {
            Some(call) => call.await,
            None => Ok(()),
        }
    }

    /// The plugin call that revokes `data`'s credential through `resolved`,
    /// owning all it needs (the worker runs each as a task of its own);
    /// `None` when the plugin never recorded anything, so made nothing.
    fn revocation(
        &self,
        data: &LeaseData,
        resolved: &ResolvedConnection,
    ) -> Result<
        Option<impl std::future::Future<Output = Result<(), LeaseError>> + Send + use<>>,
        LeaseError,
    > {
        let Some(revocation) = data.revocation.clone() else {
            return Ok(None);
        };
        // Each kind names what revokes it. Credentials and certificates are
        // both undone by the plugin that made them, through the connection
        // (a database, the CA) their mount's backend resolved.
        match data.kind() {
            LeaseKind::Token => {
                let tokens = self.tokens.get().and_then(std::sync::Weak::upgrade);
                Ok(Some(futures_util::future::Either::Left(async move {
                    let Some(tokens) = tokens else {
                        return Err(LeaseError::Task("the token store is not running".into()));
                    };
                    tokens.revoke_tree(&revocation).await
                })))
            }
            LeaseKind::Credential | LeaseKind::Certificate => {
                let plugin = self.plugin(data)?.clone();
                let ctx = Self::context(data, resolved);
                let connection = resolved.connection.clone();
                Ok(Some(futures_util::future::Either::Right(async move {
                    plugin
                        .revoke(&ctx, &connection, &revocation)
                        .await
                        .map_err(LeaseError::from)
                })))
            }
        }
    }

    async fn reschedule(&self, mut row: LeaseRow, error: &LeaseError) -> Result<(), LeaseError> {
        // Sealed mid-pass: not the lease's fault. Its claim runs out and the
        // next start, unsealed, revokes it without a failure on its record.
        if matches!(error, LeaseError::Barrier(BarrierError::Sealed)) {
            return Ok(());
        }
        // A revocation task that ended without an outcome was most likely
        // cancelled by a shutdown: not the lease's fault either.
        let retryable = matches!(error, LeaseError::Plugin(e) if e.is_retryable())
            || matches!(error, LeaseError::Storage(_) | LeaseError::Task(_));
        row.attempts += 1;
        row.last_error = Some(error.to_string());
        row.next_attempt_at = clock::unix_now_signed().saturating_add(backoff(row.attempts));
        row.state = if !retryable && row.attempts >= MAX_PERMANENT_FAILURES {
            LeaseState::Irrevocable
        } else {
            LeaseState::Revoking
        };
        tracing::warn!(lease = %row.id, attempts = row.attempts, error = %error, state = row.state.as_str(), "revocation failed");
        self.put_back(&mut row, Durability::Durable).await?;
        crate::metrics::metrics().revocation_failed();
        if let Some(events) = &self.events {
            events
                .revocation_failed(&row.id, row.attempts, &error.to_string())
                .await;
        }
        Ok(())
    }

    /// One pass of the expiration worker at time `now`: claims up to
    /// `limit` due leases (expired, pending past their hold, or waiting for a
    /// retry) and revokes them, several at once. The worker runs the same
    /// three steps overlapped ([`Leases::drain`]).
    pub async fn expire_due(&self, now: i64, limit: u32) -> Result<WorkerPass, LeaseError> {
        let batch = self.claim_batch(now, limit).await?;
        let outcomes = self.revoke_batch(batch).await;
        self.finish_batch(outcomes).await
    }

    /// Claims up to `limit` due leases and opens them, looking each
    /// connection config up once per batch rather than once per lease.
    async fn claim_batch(&self, now: i64, limit: u32) -> Result<Batch, LeaseError> {
        let due = self
            .store
            .storage()
            .claim_due_leases(now, secs(self.pending_hold), limit)
            .await?;
        let mut batch = Batch {
            work: Vec::with_capacity(due.len()),
            outcomes: Vec::new(),
        };
        let mut connections: HashMap<(String, String), Option<Arc<ResolvedConnection>>> =
            HashMap::new();
        for row in due {
            let data = match self.open(&row) {
                Ok(data) => data,
                Err(e) => {
                    batch.outcomes.push((row, Err(e)));
                    continue;
                }
            };
            let key = (data.mount.clone(), data.config_name.clone());
            let current = match connections.get(&key) {
                Some(current) => current.clone(),
                None => {
                    let current = self.current(&data).await.map(Arc::new);
                    connections.insert(key, current.clone());
                    current
                }
            };
            // Only the mount's current config is shared: without one, each
            // lease uses its own snapshot (two leases of one config name may
            // have been made against different databases).
            let resolved = current.unwrap_or_else(|| Arc::new(Self::snapshot(&data)));
            batch.work.push((row, data, resolved));
        }
        Ok(batch)
    }

    /// Revokes a claimed batch, `concurrency` at a time. Each revocation is
    /// a task of its own, so a batch's sandbox instances use every core.
    async fn revoke_batch(&self, batch: Batch) -> Vec<Outcome> {
        let Batch {
            work, mut outcomes, ..
        } = batch;
        let mut calls = Vec::with_capacity(work.len());
        for (row, data, resolved) in work {
            match self.revocation(&data, &resolved) {
                Ok(Some(call)) => calls.push((row, call)),
                Ok(None) => outcomes.push((row, Ok(()))),
                Err(e) => outcomes.push((row, Err(e))),
            }
        }
        let revoked: Vec<Outcome> = futures_util::stream::iter(calls)
            .map(|(row, call)| async move {
                let outcome = match AbortOnDrop(tokio::spawn(call)).await {
                    Ok(outcome) => outcome,
                    // Not the JoinError's text: a panic's message may
                    // hold values, and this one is stored and audited.
                    Err(e) if e.is_panic() => Err(LeaseError::Task("it panicked".into())),
                    Err(_) => Err(LeaseError::Task("it was cancelled".into())),
                };
                (row, outcome)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        outcomes.extend(revoked);
        outcomes
    }

    /// Writes a revoked batch off: one storage write removes every revoked
    /// lease (not one commit, and one fsync, per lease); each is audited;
    /// the failures are rescheduled.
    async fn finish_batch(&self, outcomes: Vec<Outcome>) -> Result<WorkerPass, LeaseError> {
        let mut revoked = Vec::with_capacity(outcomes.len());
        let mut failures = Vec::new();
        for (row, outcome) in outcomes {
            match outcome {
                Ok(()) => revoked.push(row.id),
                Err(e) => failures.push((row, e)),
            }
        }
        // Should this write fail, the claim's hold runs out and the leases
        // are revoked again: plugins' revocations are idempotent.
        // Durable, like a single revocation's delete: one commit for the
        // whole batch.
        self.store.storage().delete_leases(&revoked).await?;
        for id in &revoked {
            tracing::info!(lease = %id, "lease revoked");
            crate::metrics::metrics().revoked();
        }
        if let (Some(events), false) = (&self.events, revoked.is_empty()) {
            events.revoked_all(&revoked).await;
        }
        // One failure to record a failure must not hide the others: each is
        // logged, and an unrecorded one is simply claimed again later.
        let failed = failures.len();
        for (row, e) in failures {
            let id = row.id.clone();
            if let Err(record) = self.reschedule(row, &e).await {
                tracing::error!(lease = %id, error = %record, "cannot record a failed revocation");
            }
        }
        Ok(WorkerPass {
            revoked: revoked.len(),
            failed,
        })
    }

    /// Revokes everything due now, in batches whose steps overlap: the next
    /// batch is claimed while this one is revoked, and the one before is
    /// written off meanwhile, so the CPUs and storage do not wait on each
    /// other. Returns whether it stopped because the broker is sealed.
    pub async fn drain(&self) -> bool {
        let (to_revoke, mut claimed) = tokio::sync::mpsc::channel::<Batch>(1);
        let (to_finish, mut revoked) = tokio::sync::mpsc::channel::<Vec<Outcome>>(1);
        // Leases in this drain's batches, not yet written off. A claim's
        // hold can run out while its batch waits behind others (a slow
        // database), and storage then hands the lease out again: it stays
        // with the batch that has it, and is revoked once.
        let in_flight = Mutex::new(HashSet::<String>::new());
        let in_flight = &in_flight;
        let claimer = async move {
            loop {
                // Sealed mid-backlog: stop claiming what cannot be opened.
                if self.store.barrier().is_sealed() {
                    return true;
                }
                let mut batch = match self
                    .claim_batch(clock::unix_now_signed(), WORKER_BATCH)
                    .await
                {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::error!(error = %e, "expiration pass failed");
                        return false;
                    }
                };
                let full = batch.len() == WORKER_BATCH as usize;
                let fresh = batch.keep_new(in_flight);
                if fresh > 0 && to_revoke.send(batch).await.is_err() {
                    return false;
                }
                // A full batch: more may be due right now, unless it held
                // only leases already on their way.
                if !full || fresh == 0 {
                    return false;
                }
            }
        };
        let revoker = async move {
            while let Some(batch) = claimed.recv().await {
                // Sealed: claimed leases wait for the next start (their
                // claims run out); none is revoked with the broker sealed.
                if self.store.barrier().is_sealed() {
                    continue;
                }
                let outcomes = self.revoke_batch(batch).await;
                if to_finish.send(outcomes).await.is_err() {
                    return;
                }
            }
        };
        let finisher = async move {
            while let Some(outcomes) = revoked.recv().await {
                let ids: Vec<String> = outcomes.iter().map(|(row, _)| row.id.clone()).collect();
                if let Err(e) = self.finish_batch(outcomes).await {
                    tracing::error!(error = %e, "expiration pass failed");
                }
                let mut set = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                for id in &ids {
                    set.remove(id);
                }
            }
        };
        let (sealed, (), ()) = tokio::join!(claimer, revoker, finisher);
        sealed
    }

    /// How many leases are in each state (counters kept by storage, not a scan).
    pub async fn counts(&self) -> Result<Vec<(LeaseState, i64)>, LeaseError> {
        Ok(self.store.storage().count_leases().await?)
    }

    /// Runs the expiration worker every `every` until the handle is
    /// aborted (dropping a tokio handle leaves its task running). Aborting
    /// it also stops the revocations it has in flight.
    pub fn spawn_worker(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut last_count = std::time::Instant::now();
            let mut last_sweep: Option<std::time::Instant> = None;
            loop {
                tick.tick().await;
                if last_sweep.is_none_or(|at| at.elapsed() >= COUNT_EVERY)
                    && !self.store.barrier().is_sealed()
                {
                    last_sweep = Some(std::time::Instant::now());
                    match self.sweep_unusable().await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            leases = n,
                            "leases with out-of-range times are revoked as expired"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot look for leases with out-of-range times")
                        }
                    }
                }
                // Reading the counts also folds PostgreSQL's count deltas,
                // which would otherwise grow between metrics scrapes.
                if last_count.elapsed() >= COUNT_EVERY {
                    last_count = std::time::Instant::now();
                    match self.counts().await {
                        Ok(counts) => crate::metrics::metrics().set_leases(&counts),
                        Err(e) => tracing::warn!(error = %e, "cannot count leases"),
                    }
                }
                if self.drain().await {
                    tracing::info!("sealed: the expiration worker stops until the next start");
                    return;
                }
            }
        })
    }
}

/// A spawned revocation that stops with the worker that awaits it. A
/// dropped `JoinHandle` leaves its task running, so a worker aborted at
/// shutdown would leave revocations writing (and auditing) after the
/// audit heads were saved. One stopped midway is claimed again later:
/// revocations are idempotent.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.get_mut().0).poll(cx)
    }
}
