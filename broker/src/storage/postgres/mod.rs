//! The PostgreSQL backend: several broker nodes share one database; any node
//! serves, and expiration work is claimed with `FOR UPDATE SKIP LOCKED`.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use super::{Backend, Durability, LeaseRow, LeaseState, StorageError, like_prefix};

mod cluster;

/// Storage in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    /// Reads and durable writes.
    pool: PgPool,
    /// [`Durability::Deferred`] writes: its sessions run with
    /// `synchronous_commit = off`, so a commit returns once it is in the
    /// server's WAL buffers and visible, and the WAL writer flushes it
    /// within moments (PostgreSQL's asynchronous commit: a server crash may
    /// lose the last such commits, never a later synchronous one). The
    /// setting is a startup parameter, not a `SET`: a pooler in transaction
    /// mode (PgBouncer) would carry a `SET` over to other clients. PgBouncer
    /// refuses a startup parameter it does not know, so the broker fails at
    /// start, loudly; listed in its `ignore_startup_parameters`, the
    /// parameter is dropped and these writes are simply synchronous.
    deferred: PgPool,
}

impl PostgresBackend {
    /// Connects to `url` and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        // Only activations use it: a few connections, opened on demand.
        let deferred = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.options([("synchronous_commit", "off")]))
            .await?;
        Ok(Self { pool, deferred })
    }

    /// Runs `sql`, an UPDATE of one row's byte column guarded by its old
    /// value (`$1` new, `$2` key, `$3` expected); whether it changed a row.
    async fn swap(
        &self,
        sql: &'static str,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(sql)
            .bind(value)
            .bind(key)
            .bind(expected)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A page of (key, bytes) rows: `first` from the start, `next` past
    /// `after` (`$1` the limit, `$2` the key to start after).
    async fn page(
        &self,
        first: &'static str,
        next: &'static str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let limit = i64::from(limit);
        Ok(match after {
            Some(after) => {
                sqlx::query_as(next)
                    .bind(limit)
                    .bind(after)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as(first)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        })
    }

    fn pool_for(&self, durability: Durability) -> &PgPool {
        match durability {
            Durability::Durable => &self.pool,
            Durability::Deferred => &self.deferred,
        }
    }
}

const LEASE_COLUMNS: &str = "id, state, issued_at, expires_at, max_expires_at, next_attempt_at, attempts, last_error, token_accessor, sealed";

fn lease(row: &PgRow) -> Result<LeaseRow, StorageError> {
    Ok(LeaseRow {
        id: row.try_get("id")?,
        state: LeaseState::parse(row.try_get::<&str, _>("state")?)?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        max_expires_at: row.try_get("max_expires_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        token_accessor: row.try_get("token_accessor")?,
        sealed: row.try_get("sealed")?,
    })
}

#[async_trait::async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM entries WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        sqlx::query("INSERT INTO entries (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO entries (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete(&self, key: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM entries WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(
            sqlx::query_scalar(
                "SELECT key FROM entries WHERE key LIKE $1 ESCAPE '\\' ORDER BY key",
            )
            .bind(like_prefix(prefix))
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn compare_and_put(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, StorageError> {
        self.swap(
            "UPDATE entries SET value = $1 WHERE key = $2 AND value = $3",
            key,
            expected,
            value,
        )
        .await
    }

    async fn entries_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        // Keys are `COLLATE "C"`: `>` and `ORDER BY` are bytewise and walk
        // the primary key's index.
        self.page(
            "SELECT key, value FROM entries ORDER BY key LIMIT $1",
            "SELECT key, value FROM entries WHERE key > $2 ORDER BY key LIMIT $1",
            after,
            limit,
        )
        .await
    }

    async fn insert_lease(&self, l: &LeaseRow) -> Result<(), StorageError> {
        sqlx::query(&format!(
            "INSERT INTO leases ({LEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&l.id)
        .bind(l.state.as_str())
        .bind(l.issued_at)
        .bind(l.expires_at)
        .bind(l.max_expires_at)
        .bind(l.next_attempt_at)
        .bind(l.attempts)
        .bind(&l.last_error)
        .bind(&l.token_accessor)
        .bind(&l.sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_lease(
        &self,
        l: &LeaseRow,
        durability: Durability,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE leases SET state = $1, issued_at = $2, expires_at = $3, max_expires_at = $4, next_attempt_at = $5, \
             attempts = $6, last_error = $7, token_accessor = $8, sealed = $9 WHERE id = $10",
        )
        .bind(l.state.as_str())
        .bind(l.issued_at)
        .bind(l.expires_at)
        .bind(l.max_expires_at)
        .bind(l.next_attempt_at)
        .bind(l.attempts)
        .bind(&l.last_error)
        .bind(&l.token_accessor)
        .bind(&l.sealed)
        .bind(&l.id)
        .execute(self.pool_for(durability))
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(lease).transpose()
    }

    async fn delete_lease(&self, id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM leases WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn replace_lease_sealed(
        &self,
        id: &str,
        expected: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StorageError> {
        self.swap(
            "UPDATE leases SET sealed = $1 WHERE id = $2 AND sealed = $3",
            id,
            expected,
            sealed,
        )
        .await
    }

    async fn lease_seals_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.page(
            "SELECT id, sealed FROM leases ORDER BY id LIMIT $1",
            "SELECT id, sealed FROM leases WHERE id > $2 ORDER BY id LIMIT $1",
            after,
            limit,
        )
        .await
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<u64, StorageError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM leases WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_leases(&self, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM leases WHERE id LIKE $1 ESCAPE '\\' ORDER BY id LIMIT $2",
        )
        .bind(like_prefix(prefix))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn leases_of_token(
        &self,
        accessor: &str,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM leases WHERE token_accessor = $1 ORDER BY id LIMIT $2",
        )
        .bind(accessor)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn leases_due_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LeaseRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE state <> 'irrevocable' AND next_attempt_at > $1 \
             ORDER BY next_attempt_at DESC LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease).collect()
    }

    async fn count_leases(&self) -> Result<Vec<(LeaseState, i64)>, StorageError> {
        // Fold the deltas the triggers appended into one row per state, so
        // the table stays a few rows long. Concurrent writers' new deltas
        // are outside this statement's snapshot and wait for the next fold.
        sqlx::query(
            "WITH folded AS (DELETE FROM lease_count_deltas RETURNING state, delta) \
             INSERT INTO lease_count_deltas (state, delta) \
             SELECT state, SUM(delta) FROM folded GROUP BY state HAVING SUM(delta) <> 0",
        )
        .execute(&self.pool)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, SUM(delta)::BIGINT FROM lease_count_deltas GROUP BY state HAVING SUM(delta) <> 0",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(s, n)| Ok((LeaseState::parse(&s)?, n)))
            .collect()
    }

    async fn claim_due_leases(
        &self,
        now: i64,
        hold: i64,
        limit: u32,
    ) -> Result<Vec<LeaseRow>, StorageError> {
        // SKIP LOCKED: nodes claiming at the same time take disjoint leases.
        let rows = sqlx::query(&format!(
            "UPDATE leases SET next_attempt_at = $1 WHERE id IN \
             (SELECT id FROM leases WHERE state <> 'irrevocable' AND next_attempt_at <= $2 \
              ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {LEASE_COLUMNS}"
        ))
        .bind(now + hold)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease).collect()
    }

    fn cluster(&self) -> Option<&dyn super::ClusterStore> {
        Some(self)
    }
}
