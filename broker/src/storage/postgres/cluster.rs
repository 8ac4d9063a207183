//! The cluster tables on PostgreSQL (`migrations/postgres/0005_cluster.sql`)
//! and the change feed over `LISTEN broker_changes`.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};

use super::PostgresBackend;
use crate::storage::StorageError;
use crate::storage::cluster::{Change, ChangeFeed, ClusterStore, JobClaim, NodeEcho};

/// The channel the `entries_changed` trigger notifies.
const CHANNEL: &str = "broker_changes";

/// Unix milliseconds of a `timestamptz` column, in SQL.
macro_rules! ms {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000)::bigint")
    };
}

#[async_trait::async_trait]
impl ClusterStore for PostgresBackend {
    async fn echo(&self, node: &NodeEcho) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO cluster_nodes (node_id, api_address, version, key_term, started_at, last_echo) \
             VALUES ($1, $2, $3, $4, to_timestamp($5::double precision / 1000), clock_timestamp()) \
             ON CONFLICT (node_id) DO UPDATE SET api_address = excluded.api_address, \
             version = excluded.version, key_term = excluded.key_term, \
             started_at = excluded.started_at, last_echo = excluded.last_echo",
        )
        .bind(&node.node_id)
        .bind(&node.api_address)
        .bind(&node.version)
        .bind(i64::from(node.key_term))
        .bind(node.started_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeEcho>, StorageError> {
        let rows = sqlx::query(concat!(
            "SELECT node_id, api_address, version, key_term, ",
            ms!("started_at"),
            " AS started_at_ms, ",
            ms!("last_echo"),
            " AS last_echo_ms, (extract(epoch from clock_timestamp() - last_echo) * 1000)::bigint \
             AS echo_age_ms FROM cluster_nodes ORDER BY last_echo DESC, node_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeEcho {
                    node_id: row.try_get("node_id")?,
                    api_address: row.try_get("api_address")?,
                    version: row.try_get("version")?,
                    key_term: u32::try_from(row.try_get::<i64, _>("key_term")?)
                        .map_err(|_| StorageError::Corrupt("a node's key term".into()))?,
                    started_at_ms: row.try_get("started_at_ms")?,
                    last_echo_ms: row.try_get("last_echo_ms")?,
                    echo_age_ms: row.try_get("echo_age_ms")?,
                })
            })
            .collect()
    }

    async fn leave(&self, node_id: &str) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM cluster_jobs WHERE holder = $1")
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, job: &str, node: &str, hold: Duration) -> Result<bool, StorageError> {
        // One statement: the row lock orders two nodes claiming at once,
        // and the second sees the first's hold.
        let held = sqlx::query(
            "INSERT INTO cluster_jobs (job, holder, claimed_at, held_until) \
             VALUES ($1, $2, clock_timestamp(), clock_timestamp() + make_interval(secs => $3)) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
             claimed_at = CASE WHEN cluster_jobs.holder = excluded.holder \
                          THEN cluster_jobs.claimed_at ELSE excluded.claimed_at END, \
             held_until = excluded.held_until \
             WHERE cluster_jobs.holder = excluded.holder OR cluster_jobs.held_until < clock_timestamp()",
        )
        .bind(job)
        .bind(node)
        .bind(hold.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(held.rows_affected() == 1)
    }

    async fn release(&self, job: &str, node: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM cluster_jobs WHERE job = $1 AND holder = $2")
            .bind(job)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claims(&self) -> Result<Vec<JobClaim>, StorageError> {
        let rows = sqlx::query(concat!(
            "SELECT job, holder, ",
            ms!("claimed_at"),
            " AS claimed_at_ms, ",
            ms!("held_until"),
            " AS held_until_ms FROM cluster_jobs ORDER BY job"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JobClaim {
                    job: row.try_get("job")?,
                    holder: row.try_get("holder")?,
                    claimed_at_ms: row.try_get("claimed_at_ms")?,
                    held_until_ms: row.try_get("held_until_ms")?,
                })
            })
            .collect()
    }

    async fn watch(&self, prefixes: &[&str]) -> Result<(), StorageError> {
        for prefix in prefixes {
            sqlx::query("INSERT INTO cluster_watched (prefix) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(prefix)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn change_version(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT version FROM cluster_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn listen(&self) -> Result<Box<dyn ChangeFeed>, StorageError> {
        let listener = connect(&self.pool).await?;
        Ok(Box::new(PgFeed {
            pool: self.pool.clone(),
            listener: Some(listener),
        }))
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, StorageError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The feed: one `PgListener`, made again after any failure.
struct PgFeed {
    pool: PgPool,
    /// `None` after a failure, until a new connection listens.
    listener: Option<PgListener>,
}

#[async_trait::async_trait]
impl ChangeFeed for PgFeed {
    async fn next(&mut self) -> Change {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                let mut wait = Duration::from_millis(100);
                loop {
                    match connect(&self.pool).await {
                        Ok(listener) => {
                            self.listener = Some(listener);
                            return Change::Reconnected;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the change feed cannot listen; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some((version, key)) = notification.payload().split_once(':')
                        && let Ok(version) = version.parse()
                    {
                        return Change::Entry {
                            key: key.to_owned(),
                            version,
                        };
                    }
                    // Not ours to read: compare versions instead.
                    tracing::warn!("an unreadable change notification; checking versions");
                    return Change::Reconnected;
                }
                // Lost and not yet listening again: a fresh listener, so the
                // LISTEN is in place before the caller compares versions.
                Ok(None) => self.listener = None,
                Err(e) => {
                    tracing::warn!(error = %e, "the change feed lost its connection");
                    self.listener = None;
                }
            }
        }
    }
}
