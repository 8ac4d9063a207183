//! Several nodes on one database (docs/architecture.md, "Several nodes"):
//! this node's identity and its echo, the once-only jobs it may hold, and
//! keeping what it caches in step with what the other nodes write.
//!
//! There is no leader and no consensus of our own: the database is the one
//! place nodes agree through. A job that must run once (the periodic pass,
//! the rewrap) is claimed there with a hold that the holder renews; a dead
//! node's job is taken over once its hold runs out. Cached state (the mount
//! tables, policies, audit devices, the root token, the keyring) is
//! refreshed when the database announces a change to it, and wholesale when
//! the announcement may have been missed.
//!
//! On storage one process owns (SQLite) this node is the whole cluster: it
//! holds every job and nothing changes behind its back. This module must
//! never let a node run a once-only job it does not hold in the database.

mod follow;
mod status;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::storage::{ClusterStore, NodeEcho, Storage};

pub use follow::FOLLOWED;

/// A node's id: unique among the nodes sharing a database, stable across
/// its restarts (its audit chain and its claims are filed under it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// The longest id, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks `id`: 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
    pub fn parse(id: &str) -> Result<Self, String> {
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(format!(
                "a node id is 1 to {} characters, not {}",
                Self::MAX_LEN,
                id.len()
            ));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(format!(
                "a node id is letters, digits, '-', '_', '.' or ':'; {c:?} is not allowed"
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The default id: the host's name and the listener's port, so two
    /// nodes on one machine differ, and a node keeps its id across
    /// restarts.
    pub fn default_for(port: u16) -> Self {
        let host = hostname().unwrap_or_else(|| "localhost".into());
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(Self::MAX_LEN - 6)
            .collect();
        Self(format!("{host}:{port}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// A job only one node may run at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// Every mount's periodic work: scheduled rotations, root rotations
    /// left pending, CRL rebuilds.
    Periodic,
    /// Resealing stored values under the active key term after a rotation.
    Rewrap,
}

impl Job {
    /// Its name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Periodic => "periodic",
            Self::Rewrap => "rewrap",
        }
    }
}

/// `[cluster]`: how this node shows itself to the others.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's id; default the host name and the listener's port.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The address clients reach this node at, as `sys/ha-status` and
    /// `sys/leader` report it; default from the listener's address.
    #[serde(default)]
    pub api_addr: Option<String>,
}

/// How often a node echoes, and how long a hold lasts unrenewed.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between echoes (and between checks of the change version).
    pub echo: Duration,
    /// How long a job stays held without a renewal; a dead node's jobs
    /// move after this.
    pub hold: Duration,
    /// A node whose last echo is older than this is not counted as alive.
    pub alive: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            echo: Duration::from_secs(1),
            hold: Duration::from_secs(10),
            alive: Duration::from_secs(5),
        }
    }
}

/// Who this node is and how it echoes (from `[cluster]` and the listener).
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Its id.
    pub id: NodeId,
    /// Where clients reach it.
    pub api_address: String,
    /// How often it echoes; how long its holds last.
    pub timing: Timing,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            id: NodeId("local".into()),
            api_address: String::new(),
            timing: Timing::default(),
        }
    }
}

/// This node, as the cluster knows it.
pub struct Cluster {
    node: NodeId,
    api_address: String,
    started_at_ms: i64,
    storage: Storage,
    timing: Timing,
    /// Jobs this node holds, as of its last claim of each.
    held: Mutex<BTreeSet<Job>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("api_address", &self.api_address)
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// This node on `storage`.
    pub fn new(storage: Storage, options: NodeOptions) -> Arc<Self> {
        Arc::new(Self {
            node: options.id,
            api_address: options.api_address,
            started_at_ms: crate::clock::unix_now_millis(),
            storage,
            timing: options.timing,
            held: Mutex::default(),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.node
    }

    /// Where clients reach this node.
    pub fn api_address(&self) -> &str {
        &self.api_address
    }

    /// Whether other nodes may share this storage.
    pub fn is_shared(&self) -> bool {
        self.store().is_some()
    }

    fn store(&self) -> Option<&dyn ClusterStore> {
        self.storage.cluster()
    }

    /// The timing in use.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Claims `job`, or renews this node's hold on it; whether this node
    /// may run it now. On storage of its own, always. A database that does
    /// not answer means no: a job is never run on a guess.
    pub async fn hold(&self, job: Job) -> bool {
        let held = match self.store() {
            None => true,
            Some(store) => match store
                .claim(job.as_str(), self.node.as_str(), self.timing.hold)
                .await
            {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(job = job.as_str(), error = %e, "cannot claim a job; not running it");
                    false
                }
            },
        };
        let mut jobs = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let changed = if held {
            jobs.insert(job)
        } else {
            jobs.remove(&job)
        };
        if changed && self.is_shared() {
            tracing::info!(job = job.as_str(), held, node = %self.node, "job hold changed");
        }
        held
    }

    /// Gives `job` up (its work is done, or this node stops).
    pub async fn release(&self, job: Job) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job);
        if let Some(store) = self.store()
            && let Err(e) = store.release(job.as_str(), self.node.as_str()).await
        {
            tracing::warn!(job = job.as_str(), error = %e, "cannot release a job; its hold runs out");
        }
    }

    /// Whether this node held `job` at its last claim.
    pub fn holds(&self, job: Job) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&job)
    }

    /// Records this node's echo (with the key term it seals with).
    pub async fn echo(&self, key_term: u32) -> Result<(), crate::storage::StorageError> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        store
            .echo(&NodeEcho {
                node_id: self.node.as_str().to_owned(),
                api_address: self.api_address.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                key_term,
                started_at_ms: self.started_at_ms,
                last_echo_ms: 0,
                echo_age_ms: 0,
            })
            .await
    }

    /// Leaves the cluster at a clean stop: the echo goes, the jobs are
    /// released at once rather than when their holds run out.
    pub async fn leave(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(store) = self.store()
            && let Err(e) = store.leave(self.node.as_str()).await
        {
            tracing::warn!(error = %e, "cannot leave the cluster; the holds run out");
        }
    }

    /// Waits until every live node echoes `term` or later, or `within`
    /// passes; whether they all do. A node that stops echoing is not
    /// waited for: it is dead, or sealed, and reloads the keyring when it
    /// comes back.
    pub async fn until_all_on_term(&self, term: u32, within: Duration) -> bool {
        let Some(store) = self.store() else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let behind = match store.nodes().await {
                Ok(nodes) => {
                    let alive = i64::try_from(self.timing.alive.as_millis()).unwrap_or(i64::MAX);
                    nodes
                        .iter()
                        .filter(|n| n.echo_age_ms <= alive)
                        .filter(|n| n.key_term < term)
                        .map(|n| n.node_id.clone())
                        .collect::<Vec<_>>()
                }
                Err(e) => vec![format!("(cannot read the nodes: {e})")],
            };
            if behind.is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(term, behind = ?behind, "nodes still echo an older key term");
                return false;
            }
            tokio::time::sleep(self.timing.echo / 2).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_node_id_is_accepted_exactly_when_it_is_safe_everywhere(id in ".{0,80}") {
            let safe = !id.is_empty()
                && id.len() <= NodeId::MAX_LEN
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
            prop_assert_eq!(NodeId::parse(&id).is_ok(), safe);
        }

        #[test]
        fn ids_from_the_safe_alphabet_parse(id in "[A-Za-z0-9._:-]{1,64}") {
            prop_assert_eq!(NodeId::parse(&id).map(|n| n.as_str().to_owned()), Ok(id));
        }
    }

    #[test]
    fn the_default_id_is_a_valid_one() {
        let id = NodeId::default_for(8200);
        assert!(NodeId::parse(id.as_str()).is_ok(), "{id}");
        assert!(id.as_str().ends_with(":8200"));
    }
}
