//! The cluster as clients see it: `sys/ha-status` and `sys/leader` in
//! Vault's shapes. There is no active node here (every node serves); the
//! node holding the periodic job plays that part in the answers, since
//! clients ask `sys/leader` to find where once-only work runs.

use serde_json::{Value, json};

use super::{Cluster, Job};
use crate::storage::{JobClaim, NodeEcho, StorageError};

/// Unix milliseconds as RFC 3339 (UTC).
fn rfc3339_ms(ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// The time Vault reports when there is none.
const NO_TIME: &str = "0001-01-01T00:00:00Z";

impl Cluster {
    /// The nodes and job claims as stored; on storage of its own, this node
    /// alone, holding every job it has claimed.
    async fn view(&self) -> Result<(Vec<NodeEcho>, Vec<JobClaim>), StorageError> {
        match self.store() {
            Some(store) => Ok((store.nodes().await?, store.claims().await?)),
            None => {
                let now = crate::clock::unix_now_millis();
                let me = NodeEcho {
                    node_id: self.node.as_str().to_owned(),
                    api_address: self.api_address.clone(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    key_term: 0,
                    started_at_ms: self.started_at_ms,
                    last_echo_ms: now,
                    echo_age_ms: 0,
                };
                let claims = [Job::Periodic, Job::Rewrap]
                    .into_iter()
                    .filter(|job| self.holds(*job))
                    .map(|job| JobClaim {
                        job: job.as_str().to_owned(),
                        holder: self.node.as_str().to_owned(),
                        claimed_at_ms: self.started_at_ms,
                        held_until_ms: now,
                    })
                    .collect();
                Ok((vec![me], claims))
            }
        }
    }

    /// `sys/ha-status`: every node that echoed within the last minute, the
    /// node holding the periodic job as `active_node`, and (beyond Vault's
    /// fields) the jobs each holds and whether it counts as alive.
    pub async fn ha_status(&self) -> Result<Value, StorageError> {
        let (nodes, claims) = self.view().await?;
        let alive = i64::try_from(self.timing.alive.as_millis()).unwrap_or(i64::MAX);
        let listed: Vec<Value> = nodes
            .iter()
            .filter(|n| n.echo_age_ms <= 60_000)
            .map(|n| {
                let jobs: Vec<&str> = claims
                    .iter()
                    .filter(|c| c.holder == n.node_id)
                    .map(|c| c.job.as_str())
                    .collect();
                json!({
                    "hostname": n.node_id,
                    "api_address": n.api_address,
                    "cluster_address": "",
                    "active_node": jobs.contains(&Job::Periodic.as_str()),
                    "last_echo": rfc3339_ms(n.last_echo_ms),
                    "echo_age_ms": n.echo_age_ms,
                    "alive": n.echo_age_ms <= alive,
                    "version": n.version,
                    "upgrade_version": n.version,
                    "redundancy_zone": "",
                    "key_term": n.key_term,
                    "jobs": jobs,
                })
            })
            .collect();
        Ok(json!({ "Nodes": listed }))
    }

    /// `sys/leader`: whether several nodes may share this storage, and
    /// where the periodic job runs.
    pub async fn leader(&self) -> Result<Value, StorageError> {
        let (nodes, claims) = self.view().await?;
        let periodic = claims.iter().find(|c| c.job == Job::Periodic.as_str());
        let address = periodic
            .and_then(|c| nodes.iter().find(|n| n.node_id == c.holder))
            .map(|n| n.api_address.clone())
            .unwrap_or_default();
        Ok(json!({
            "ha_enabled": self.is_shared(),
            "is_self": periodic.is_some_and(|c| c.holder == self.node.as_str()),
            "active_time": periodic.map_or(Value::from(NO_TIME), |c| rfc3339_ms(c.claimed_at_ms)),
            "leader_address": address,
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "node_id": self.node.as_str(),
        }))
    }
}
