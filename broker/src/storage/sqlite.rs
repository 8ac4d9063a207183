//! The SQLite backend: the embedded default. WAL journal, `synchronous =
//! FULL`: a committed lease survives `kill -9` and power loss.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{Backend, LeaseRow, LeaseState, StorageError, like_prefix};

/// Storage in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    /// Writers take turns here rather than at SQLite's file lock. SQLite
    /// lets one writer in at a time and makes the others wait in its busy
    /// handler, which sleeps in steps of milliseconds: under concurrent
    /// issuance most of a write's time went to those sleeps. Readers never
    /// wait (WAL).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // Prefix listings use LIKE, which SQLite otherwise matches
            // without case: mount `pki` would see mount `PKI`'s keys.
            .pragma("case_sensitive_like", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            writer: Default::default(),
        })
    }
}

const LEASE_COLUMNS: &str = "id, state, issued_at, expires_at, max_expires_at, next_attempt_at, attempts, last_error, token_accessor, sealed";

fn lease(row: &SqliteRow) -> Result<LeaseRow, StorageError> {
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
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM entries WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let _turn = self.writer.lock().await;
        sqlx::query("INSERT INTO entries (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        let _turn = self.writer.lock().await;
        let done = sqlx::query(
            "INSERT INTO entries (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete(&self, key: &str) -> Result<bool, StorageError> {
        let _turn = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM entries WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT key FROM entries WHERE key LIKE ? ESCAPE '\\' ORDER BY key")
                .bind(like_prefix(prefix))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn insert_lease(&self, l: &LeaseRow) -> Result<(), StorageError> {
        let _turn = self.writer.lock().await;
        sqlx::query(&format!(
            "INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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

    async fn update_lease(&self, l: &LeaseRow) -> Result<bool, StorageError> {
        let _turn = self.writer.lock().await;
        let done = sqlx::query(
            "UPDATE leases SET state = ?, issued_at = ?, expires_at = ?, max_expires_at = ?, next_attempt_at = ?, \
             attempts = ?, last_error = ?, token_accessor = ?, sealed = ? WHERE id = ?",
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
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(lease).transpose()
    }

    async fn delete_lease(&self, id: &str) -> Result<bool, StorageError> {
        let _turn = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM leases WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<u64, StorageError> {
        let _turn = self.writer.lock().await;
        if ids.is_empty() {
            return Ok(0);
        }
        // One JSON array parameter: no limit on bound variables to hit.
        let ids = serde_json::to_string(ids).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let done = sqlx::query("DELETE FROM leases WHERE id IN (SELECT value FROM json_each(?))")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_leases(&self, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM leases WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
        )
        .bind(like_prefix(prefix))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn count_leases(&self) -> Result<Vec<(LeaseState, i64)>, StorageError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, n FROM lease_counts WHERE n <> 0")
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
        let _turn = self.writer.lock().await;
        // One statement: SQLite runs it atomically under its write lock.
        let rows = sqlx::query(&format!(
            "UPDATE leases SET next_attempt_at = ? WHERE id IN \
             (SELECT id FROM leases WHERE state <> 'irrevocable' AND next_attempt_at <= ? \
              ORDER BY next_attempt_at LIMIT ?) RETURNING {LEASE_COLUMNS}"
        ))
        .bind(now + hold)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease).collect()
    }
}
