//! The SQLite backend: the embedded default. WAL journal, `synchronous =
//! FULL`: a durable write survives `kill -9` and power loss (a deferred one
//! survives `kill -9`, and power loss from the next durable commit, or the
//! writer's flush at most a second after it). Reads go through a pool; writes through one task that
//! commits them in groups. One process owns the file ([`lock`]), which lets
//! the expiration worker's claims ([`claims`]) and a read cache of sealed
//! entries ([`cache`]) live in memory.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};

use super::{Backend, Durability, LeaseRow, LeaseState, StorageError, like_prefix};
use cache::EntryCache;
use claims::Claims;
use lock::FileLock;
use writer::{Done, Write, Writer};

mod cache;
mod claims;
mod lock;
mod writer;

/// Storage in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    /// Readers: WAL lets them read while a commit is under way.
    pool: SqlitePool,
    /// Every write goes through the one writer task, which commits
    /// whatever has queued up together (see [`writer`]).
    writer: Writer,
    /// The expiration worker's claims (see [`claims`]).
    claims: std::sync::Arc<Claims>,
    /// Sealed entries as last read or written (see [`cache`]).
    cache: std::sync::Arc<EntryCache>,
    /// Held while any clone of the backend lives.
    _lock: std::sync::Arc<FileLock>,
}

/// Makes the database file (created empty if missing) readable by its
/// owner only, and its WAL and shared-memory files if present: SQLite
/// creates those with the database file's mode, so they follow. Sealed
/// values are ciphertext, but lease ids, mount names and timing are not.
fn private_files(path: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let refused = |file: &Path, e: std::io::Error| {
        StorageError::File(format!(
            "cannot make {} private (mode 0600): {e}",
            file.display()
        ))
    };
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| refused(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        match std::fs::symlink_metadata(file) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| refused(file, e))?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StorageError> {
        // First: a second broker must not so much as migrate the file.
        let lock = FileLock::acquire(path)?;
        private_files(path)?;
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
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let cache = std::sync::Arc::new(EntryCache::default());
        let writer = Writer::spawn(options.connect().await?, cache.clone());
        Ok(Self {
            pool,
            writer,
            claims: Default::default(),
            cache,
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// Writes an entry. The writer task drops its key from the read cache
    /// (see [`cache`]).
    async fn write_entry(&self, write: Write) -> Result<Done, StorageError> {
        self.writer.write(write, Durability::Durable).await
    }
}

/// A write came back with the wrong kind of result: a bug in this module.
fn mismatch(done: Done) -> StorageError {
    StorageError::Corrupt(format!("storage writer answered {}", done.kind()))
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
        let ticket = match self.cache.get(key) {
            Ok(cached) => return Ok(cached),
            Err(ticket) => ticket,
        };
        let value: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM entries WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        self.cache.fill(key, value.clone(), ticket);
        Ok(value)
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let write = Write::Put {
            key: key.to_owned(),
            value: value.to_vec(),
        };
        match self.write_entry(write).await? {
            Done::Unit => Ok(()),
            other => Err(mismatch(other)),
        }
    }

    async fn put_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        let write = Write::PutNew {
            key: key.to_owned(),
            value: value.to_vec(),
        };
        match self.write_entry(write).await? {
            Done::Changed(written) => Ok(written),
            other => Err(mismatch(other)),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, StorageError> {
        match self
            .write_entry(Write::Delete {
                key: key.to_owned(),
            })
            .await?
        {
            Done::Changed(existed) => Ok(existed),
            other => Err(mismatch(other)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT key FROM entries WHERE key LIKE ? ESCAPE '\\' ORDER BY key")
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
        let write = Write::CompareAndPut {
            key: key.to_owned(),
            expected: expected.to_vec(),
            value: value.to_vec(),
        };
        match self.write_entry(write).await? {
            Done::Changed(written) => Ok(written),
            other => Err(mismatch(other)),
        }
    }

    async fn entries_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        // Keys compare with SQLite's BINARY collation: bytewise, through
        // the primary key. Not through the cache: a walk would flush it.
        let rows = match after {
            Some(after) => {
                sqlx::query_as("SELECT key, value FROM entries WHERE key > ? ORDER BY key LIMIT ?")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT key, value FROM entries ORDER BY key LIMIT ?")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    async fn insert_lease(&self, l: &LeaseRow) -> Result<(), StorageError> {
        match self
            .writer
            .write(Write::InsertLease(Box::new(l.clone())), Durability::Durable)
            .await?
        {
            Done::Unit => Ok(()),
            other => Err(mismatch(other)),
        }
    }

    async fn update_lease(
        &self,
        l: &LeaseRow,
        durability: Durability,
    ) -> Result<bool, StorageError> {
        let done = self
            .writer
            .write(Write::UpdateLease(Box::new(l.clone())), durability)
            .await?;
        self.claims.release([l.id.as_str()]).await;
        match done {
            Done::Changed(existed) => Ok(existed),
            other => Err(mismatch(other)),
        }
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(lease).transpose()
    }

    async fn delete_lease(&self, id: &str) -> Result<bool, StorageError> {
        let done = self
            .writer
            .write(
                Write::DeleteLease { id: id.to_owned() },
                Durability::Durable,
            )
            .await?;
        self.claims.release([id]).await;
        match done {
            Done::Changed(existed) => Ok(existed),
            other => Err(mismatch(other)),
        }
    }

    async fn replace_lease_sealed(
        &self,
        id: &str,
        expected: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StorageError> {
        // A claim stays: the lease's times and state are untouched.
        let write = Write::ReplaceLeaseSealed {
            id: id.to_owned(),
            expected: expected.to_vec(),
            sealed: sealed.to_vec(),
        };
        match self.writer.write(write, Durability::Durable).await? {
            Done::Changed(written) => Ok(written),
            other => Err(mismatch(other)),
        }
    }

    async fn lease_seals_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let rows = match after {
            Some(after) => {
                sqlx::query_as("SELECT id, sealed FROM leases WHERE id > ? ORDER BY id LIMIT ?")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT id, sealed FROM leases ORDER BY id LIMIT ?")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    async fn delete_leases(&self, ids: &[String]) -> Result<u64, StorageError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = self
            .writer
            .write(
                Write::DeleteLeases { ids: ids.to_vec() },
                Durability::Durable,
            )
            .await?;
        self.claims.release(ids.iter().map(String::as_str)).await;
        match done {
            Done::Count(n) => Ok(n),
            other => Err(mismatch(other)),
        }
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

    async fn leases_of_token(
        &self,
        accessor: &str,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        Ok(
            sqlx::query_scalar(
                "SELECT id FROM leases WHERE token_accessor = ? ORDER BY id LIMIT ?",
            )
            .bind(accessor)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn leases_due_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LeaseRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE state <> 'irrevocable' AND next_attempt_at > ? \
             ORDER BY next_attempt_at DESC LIMIT ?"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease).collect()
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
        // In memory: this process owns the file (see `claims`).
        self.claims.claim(&self.pool, now, hold, limit).await
    }
}
