//! What nodes sharing one database share beyond entries and leases: their
//! echoes (who is alive, at which key term), claims on once-only jobs, and
//! the feed of changes to what nodes cache.
//!
//! PostgreSQL implements it; SQLite storage is owned by one process and
//! has no cluster ([`super::Backend::cluster`] is `None`). Every time here
//! is the database's clock, so nodes whose clocks disagree still agree on
//! who holds a job. Nothing here may hold a secret: these tables are not
//! sealed.

use std::time::Duration;

use super::StorageError;

/// A node as its last echo left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEcho {
    /// The node's id (`[cluster] node_id`).
    pub node_id: String,
    /// Where clients reach it.
    pub api_address: String,
    /// The broker's version.
    pub version: String,
    /// The barrier key term the node seals with.
    pub key_term: u32,
    /// When it started, Unix milliseconds.
    pub started_at_ms: i64,
    /// Its last echo, Unix milliseconds (database clock).
    pub last_echo_ms: i64,
    /// How long ago that was, by the database's clock (so no node's
    /// clock decides who is alive).
    pub echo_age_ms: i64,
}

/// A node's hold on a once-only job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobClaim {
    /// The job (`periodic`, `rewrap`).
    pub job: String,
    /// The node holding it.
    pub holder: String,
    /// When this holder first took it, Unix milliseconds.
    pub claimed_at_ms: i64,
    /// When the hold runs out unless renewed, Unix milliseconds.
    pub held_until_ms: i64,
}

/// One event from the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The watched entry at `key` was written or deleted, moving the change
    /// version to `version`.
    Entry {
        /// The entry's key.
        key: String,
        /// The change version this change made.
        version: i64,
    },
    /// The feed's connection was lost and made again: changes may have been
    /// missed, so compare [`ClusterStore::change_version`].
    Reconnected,
}

/// The cluster tables.
#[async_trait::async_trait]
pub trait ClusterStore: Send + Sync + std::fmt::Debug {
    /// Records `node`'s echo now (its `last_echo_ms` is ignored: the
    /// database stamps it).
    async fn echo(&self, node: &NodeEcho) -> Result<(), StorageError>;
    /// Every node that has echoed, most recent first.
    async fn nodes(&self) -> Result<Vec<NodeEcho>, StorageError>;
    /// Removes a node's echo and releases its jobs (a clean stop).
    async fn leave(&self, node_id: &str) -> Result<(), StorageError>;
    /// Takes `job` for `node` until `hold` from now, or renews its hold;
    /// whether `node` holds it. Another node's hold is taken over only
    /// once it has run out.
    async fn claim(&self, job: &str, node: &str, hold: Duration) -> Result<bool, StorageError>;
    /// Gives `job` up, if `node` holds it.
    async fn release(&self, job: &str, node: &str) -> Result<(), StorageError>;
    /// Every job's current claim.
    async fn claims(&self) -> Result<Vec<JobClaim>, StorageError>;
    /// Adds key prefixes whose changes are announced on the feed.
    async fn watch(&self, prefixes: &[&str]) -> Result<(), StorageError>;
    /// How many watched changes the database has seen.
    async fn change_version(&self) -> Result<i64, StorageError>;
    /// A feed of watched changes, listening from now on.
    async fn listen(&self) -> Result<Box<dyn ChangeFeed>, StorageError>;
}

/// Watched changes as they commit, on a connection of their own.
#[async_trait::async_trait]
pub trait ChangeFeed: Send {
    /// The next change. After a lost connection it reconnects (retrying
    /// until the database answers) and says [`Change::Reconnected`].
    async fn next(&mut self) -> Change;
}
