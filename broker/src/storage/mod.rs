//! Durable storage: sealed entries and lease records, behind one trait with
//! an SQLite backend (embedded, the default) and a PostgreSQL backend (for
//! several broker nodes sharing one database).
//!
//! Storage sees only ciphertext: values arrive sealed by the
//! [`barrier`](crate::barrier). It must never hold a lease list in memory:
//! the expiration worker claims due leases through an index.

pub mod cluster;
mod postgres;
mod sqlite;

use std::sync::Arc;

pub use cluster::{Change, ChangeFeed, ClusterStore, JobClaim, NodeEcho};
pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

/// A storage failure. Messages never hold stored values.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database refused or failed.
    #[error("storage error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("storage migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not parse.
    #[error("corrupt storage row: {0}")]
    Corrupt(String),
    /// The task that commits SQLite writes has stopped (its runtime is
    /// shutting down).
    #[error("storage writer has stopped")]
    WriterGone,
    /// The SQLite file is another process's, or its lock cannot be taken.
    #[error("storage is locked: {0}")]
    Locked(String),
    /// The SQLite file cannot be created or made private to its owner.
    #[error("storage file: {0}")]
    File(String),
}

/// When a write is acknowledged: on disk, or committed and visible.
///
/// Most writes are [`Durable`](Self::Durable). A write may be
/// [`Deferred`](Self::Deferred) only when losing it in a crash of the
/// machine is safe: it is committed and every later read sees it, but its
/// flush to disk rides on the next durable commit (or the database's own
/// background flush) instead of waiting for one of its own. A crash loses
/// only a tail of deferred writes, never a durable write that came after
/// them: both backends write one log in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledged once the commit is on disk.
    Durable,
    /// Acknowledged once committed; may be lost if the machine crashes
    /// before the next flush. For writes that a crash may undo without
    /// harm, such as a lease's activation (lost, the lease stays pending
    /// and is revoked: nothing is orphaned).
    Deferred,
}

/// A lease's state (docs/architecture.md, "An issuance").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Recorded before the plugin creates anything; revoked if never activated.
    Pending,
    /// The credential exists and was handed out.
    Active,
    /// Revocation was asked for and is being retried.
    Revoking,
    /// Revocation gave up (too many failures); kept visible for operators.
    Irrevocable,
}

impl LeaseState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoking => "revoking",
            Self::Irrevocable => "irrevocable",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self, StorageError> {
        Ok(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "revoking" => Self::Revoking,
            "irrevocable" => Self::Irrevocable,
            other => {
                return Err(StorageError::Corrupt(format!(
                    "unknown lease state {other:?}"
                )));
            }
        })
    }
}

/// A lease as stored. Times are Unix seconds. `sealed` is the barrier's
/// ciphertext of what revocation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// `<mount>/creds/<role>/<random>`.
    pub id: String,
    /// Where it stands.
    pub state: LeaseState,
    /// When it was issued.
    pub issued_at: i64,
    /// When it expires (renewal moves it).
    pub expires_at: i64,
    /// The latest it may ever expire.
    pub max_expires_at: i64,
    /// When the expiration worker should next look at it.
    pub next_attempt_at: i64,
    /// Failed revocation attempts so far.
    pub attempts: i64,
    /// The last revocation failure, for operators.
    pub last_error: Option<String>,
    /// The accessor of the token that asked for it.
    pub token_accessor: Option<String>,
    /// Sealed revocation context.
    pub sealed: Vec<u8>,
}

/// What a storage backend does. Implemented for SQLite and PostgreSQL; the
/// same test suite runs against both.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The entry at `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Writes the entry at `key`.
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Deletes the entry at `key`; whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, StorageError>;
    /// Writes `value` at `key` unless the key exists, in one atomic step;
    /// whether it was written.
    async fn put_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError>;
    /// Keys that start with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Writes `value` at `key` only if the stored value is still exactly
    /// `expected`, in one atomic step; whether it was written. A write that
    /// came in between wins: nothing is overwritten that was not read.
    async fn compare_and_put(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, StorageError>;
    /// Up to `limit` entries (key and stored value) whose keys sort after
    /// `after` (from the first when `None`), in byte order of their keys:
    /// a walk over every entry, a page at a time, through the primary key.
    async fn entries_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// Stores a new lease.
    async fn insert_lease(&self, lease: &LeaseRow) -> Result<(), StorageError>;
    /// Overwrites a lease; whether it existed.
    async fn update_lease(
        &self,
        lease: &LeaseRow,
        durability: Durability,
    ) -> Result<bool, StorageError>;
    /// The lease with this id.
    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRow>, StorageError>;
    /// Deletes a lease; whether it existed.
    async fn delete_lease(&self, id: &str) -> Result<bool, StorageError>;
    /// Replaces lease `id`'s `sealed` column with `sealed` only if it still
    /// holds exactly `expected`, leaving every other column (and any claim
    /// on the lease) as it is; whether it was written.
    async fn replace_lease_sealed(
        &self,
        id: &str,
        expected: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StorageError>;
    /// Up to `limit` leases (id and `sealed` column) whose ids sort after
    /// `after` (from the first when `None`), in byte order of their ids.
    async fn lease_seals_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError>;
    /// Deletes the leases with these ids in one statement; returns how many
    /// existed. The expiration worker ends a batch of revocations with it.
    async fn delete_leases(&self, ids: &[String]) -> Result<u64, StorageError>;
    /// Ids of leases that start with `prefix`, sorted, at most `limit`.
    async fn list_leases(&self, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError>;
    /// Ids of up to `limit` leases made under the token with this
    /// accessor, through the index on it (sorted).
    async fn leases_of_token(
        &self,
        accessor: &str,
        limit: u32,
    ) -> Result<Vec<String>, StorageError>;
    /// Up to `limit` leases (not irrevocable) due only after `after`,
    /// latest first, through the due-time index: the worker looks for
    /// leases whose due time is out of any range it could have set.
    async fn leases_due_after(&self, after: i64, limit: u32)
    -> Result<Vec<LeaseRow>, StorageError>;
    /// Counts leases by state, from counters the schema keeps (not a scan).
    async fn count_leases(&self) -> Result<Vec<(LeaseState, i64)>, StorageError>;
    /// Claims up to `limit` leases due at `now` (not irrevocable, with
    /// `next_attempt_at <= now`) until `now + hold`, or until the lease is
    /// next written: no other claim takes it meanwhile. The returned rows
    /// show the hold in `next_attempt_at`. PostgreSQL stores the hold in the
    /// row, since other nodes claim from the same table; SQLite, owned by one
    /// process, keeps it in memory.
    async fn claim_due_leases(
        &self,
        now: i64,
        hold: i64,
        limit: u32,
    ) -> Result<Vec<LeaseRow>, StorageError>;

    /// The tables several nodes coordinate through, when this storage can
    /// be shared by several nodes (PostgreSQL); `None` when it is one
    /// process's own (SQLite).
    fn cluster(&self) -> Option<&dyn ClusterStore> {
        None
    }
}

/// A shared handle on a backend.
pub type Storage = Arc<dyn Backend>;

/// Escapes `%`, `_` and `\` for a `LIKE 'prefix%' ESCAPE '\'` pattern.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
