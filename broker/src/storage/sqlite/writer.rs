//! Group commit: the one task that writes to the SQLite file.
//!
//! SQLite lets one writer in at a time, and with `synchronous = FULL` every
//! commit waits for an fsync. Writers that each commit alone therefore queue
//! behind one another's fsyncs, and the disk's fsync rate (about 900/s on
//! the machine in BENCHMARKS.md) becomes the broker's ceiling for issuance,
//! renewal and revocation alike. Here every write is sent to one task that
//! takes whatever has queued up while the last commit was on disk, runs it
//! in one transaction and commits once: many writes, one fsync.
//!
//! Nothing is acknowledged before its commit is durable, unless the write
//! says it may be [`Deferred`](Durability::Deferred): a group of deferred
//! writes only is committed with `synchronous = NORMAL`, so its WAL frames
//! reach the disk with the next group that does wait (an fsync of the WAL
//! covers every frame before it) or at a checkpoint the writer runs at most
//! [`FLUSH_AFTER`] after the first of them. Readers see a deferred write as
//! soon as it is acknowledged, like any other.
//!
//! A write that fails must not fail its neighbours, so a group with any
//! failure (a statement, or the commit itself) is rolled back whole and its
//! writes are run again one transaction each, which gives every caller its
//! own outcome.
//!
//! Writes to entries drop their key from the read cache
//! ([`super::cache`]) here, after the commit and before the answer, so a
//! caller that stopped waiting cannot leave a stale value behind.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::LEASE_COLUMNS;
use super::cache::EntryCache;
use crate::storage::{Durability, LeaseRow, StorageError};

/// The most writes one commit takes. A bound keeps one commit's work (and
/// the wait of the writes that queue behind it) short.
const MAX_GROUP: usize = 256;

/// How long deferred writes may wait for the disk when no durable write
/// comes to carry them there.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// One write, as the writer task runs it.
pub(super) enum Write {
    Put {
        key: String,
        value: Vec<u8>,
    },
    PutNew {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    CompareAndPut {
        key: String,
        expected: Vec<u8>,
        value: Vec<u8>,
    },
    InsertLease(Box<LeaseRow>),
    UpdateLease(Box<LeaseRow>),
    DeleteLease {
        id: String,
    },
    DeleteLeases {
        ids: Vec<String>,
    },
    ReplaceLeaseSealed {
        id: String,
        expected: Vec<u8>,
        sealed: Vec<u8>,
    },
}

impl Write {
    /// The entry a write changes, for the read cache; `None` for leases,
    /// which are never cached.
    fn entry_key(&self) -> Option<&str> {
        match self {
            Self::Put { key, .. }
            | Self::PutNew { key, .. }
            | Self::Delete { key }
            | Self::CompareAndPut { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What a write gave back.
pub(super) enum Done {
    Unit,
    /// Whether a row was written or removed.
    Changed(bool),
    /// How many rows were removed.
    Count(u64),
}

impl Done {
    /// The kind of result, for the error that says a write got the wrong one.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Unit => "nothing",
            Self::Changed(_) => "a flag",
            Self::Count(_) => "a count",
        }
    }
}

struct Job {
    write: Write,
    durability: Durability,
    reply: oneshot::Sender<Result<Done, StorageError>>,
}

/// The sending side: what [`SqliteBackend`](super::SqliteBackend) holds.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on `conn`; it ends when every `Writer` is gone.
    /// It drops the keys it writes from `cache`.
    pub(super) fn spawn(conn: SqliteConnection, cache: Arc<EntryCache>) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, cache, rx));
        Self { jobs }
    }

    /// Runs `write` in the next group; returns once its commit is as
    /// durable as `durability` asks.
    pub(super) async fn write(
        &self,
        write: Write,
        durability: Durability,
    ) -> Result<Done, StorageError> {
        let (reply, done) = oneshot::channel();
        self.jobs
            .send(Job {
                write,
                durability,
                reply,
            })
            .map_err(|_| StorageError::WriterGone)?;
        done.await.map_err(|_| StorageError::WriterGone)?
    }
}

async fn run(conn: SqliteConnection, cache: Arc<EntryCache>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut conn = WriterConn {
        conn,
        // What `open` set on every connection.
        synchronous: Some(Durability::Durable),
        flush_due: None,
    };
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        // Due while writes kept coming: the wait below would never time out.
        if conn
            .flush_due
            .is_some_and(|due| due <= tokio::time::Instant::now())
        {
            conn.flush().await;
        }
        let received = match conn.flush_due {
            Some(due) => {
                let wait = tokio::time::timeout_at(due, rx.recv_many(&mut group, MAX_GROUP));
                match wait.await {
                    Ok(received) => received,
                    Err(_due) => {
                        conn.flush().await;
                        continue;
                    }
                }
            }
            None => rx.recv_many(&mut group, MAX_GROUP).await,
        };
        if received == 0 {
            break;
        }
        let writes: Vec<&Write> = group.iter().map(|job| &job.write).collect();
        let durability = strictest(group.iter().map(|job| job.durability));
        let outcome = conn.commit(&writes, durability).await;
        // Committed or not (a failed COMMIT may still have reached the
        // file), the keys are dropped from the cache before anyone hears.
        for job in &group {
            if let Some(key) = job.write.entry_key() {
                cache.invalidate(key);
            }
        }
        match outcome {
            Ok(results) => {
                for (job, result) in group.drain(..).zip(results) {
                    // The caller may have gone; its write stands regardless.
                    let _ = job.reply.send(Ok(result));
                }
            }
            // A write alone: its own error is the answer.
            Err(e) if group.len() == 1 => {
                if let Some(job) = group.pop() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = group.len(), "group commit failed; committing its writes one by one");
                for job in group.drain(..) {
                    let result = conn
                        .commit(&[&job.write], job.durability)
                        .await
                        .map(|mut done| done.remove(0));
                    if let Some(key) = job.write.entry_key() {
                        cache.invalidate(key);
                    }
                    let _ = job.reply.send(result);
                }
            }
        }
    }
    if conn.flush_due.is_some() {
        conn.flush().await;
    }
    let _ = conn.conn.close().await;
}

/// A group waits for the disk if any of its writes must.
fn strictest(durabilities: impl IntoIterator<Item = Durability>) -> Durability {
    if durabilities.into_iter().any(|d| d == Durability::Durable) {
        Durability::Durable
    } else {
        Durability::Deferred
    }
}

/// The writer's connection, the `synchronous` setting it has now, and when
/// deferred commits not yet on disk must be flushed.
struct WriterConn {
    conn: SqliteConnection,
    /// `None` when a failed statement leaves it unknown.
    synchronous: Option<Durability>,
    /// [`FLUSH_AFTER`] past the first deferred commit since the WAL was last
    /// fsynced; `None` when nothing waits for the disk.
    flush_due: Option<tokio::time::Instant>,
}

impl WriterConn {
    async fn commit(
        &mut self,
        writes: &[&Write],
        durability: Durability,
    ) -> Result<Vec<Done>, StorageError> {
        // `synchronous` is set before the `BEGIN`, in the same round trip to
        // SQLite's thread, and only when it changes.
        let begin = if self.synchronous == Some(durability) {
            "BEGIN IMMEDIATE; "
        } else {
            match durability {
                Durability::Durable => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE; ",
                Durability::Deferred => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; ",
            }
        };
        // After a failure the setting is unknown: the next commit sets it.
        self.synchronous = None;
        let results = commit(&mut self.conn, begin, writes).await?;
        self.synchronous = Some(durability);
        match durability {
            // The WAL's fsync covers every frame before this commit's.
            Durability::Durable => self.flush_due = None,
            Durability::Deferred => {
                self.flush_due
                    .get_or_insert_with(|| tokio::time::Instant::now() + FLUSH_AFTER);
            }
        }
        Ok(results)
    }

    /// Puts deferred commits on disk: a checkpoint fsyncs the WAL before it
    /// copies frames into the database file, and is known to have done so
    /// only when it copied every frame (a reader's snapshot can hold some
    /// back). Otherwise, or on failure, it is tried again [`FLUSH_AFTER`]
    /// later; the next durable commit, which fsyncs the WAL anyway, makes
    /// it moot.
    async fn flush(&mut self) {
        let checkpoint: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut self.conn)
                .await;
        match checkpoint {
            // (busy, frames in the WAL, frames checkpointed)
            Ok((0, log, done)) if done == log => self.flush_due = None,
            Ok(_) => {
                self.flush_due = Some(tokio::time::Instant::now() + FLUSH_AFTER);
            }
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint after deferred writes failed");
                self.flush_due = Some(tokio::time::Instant::now() + FLUSH_AFTER);
            }
        }
    }
}

/// Runs `writes` in one transaction and commits it; any failure rolls the
/// whole transaction back.
///
/// sqlx runs each SQLite statement on the connection's own thread and
/// answers through a channel: every statement is a hand-off there and back,
/// which costs more CPU than SQLite's work on a lease row. So `begin` rides
/// in the first write's round trip and `COMMIT` in the last one's (SQLite
/// runs a string of statements in order, stopping at the first error, and
/// sqlx binds the parameters across them in order): a group of one write is
/// one hand-off, not three.
///
/// The transaction is driven with plain `BEGIN`/`COMMIT`/`ROLLBACK`, not
/// sqlx's `Transaction`: sqlx counts open transactions itself, and when
/// SQLite ends one on its own (a failed COMMIT on a full disk rolls back
/// everything) that count goes wrong, after which its "commit" is a
/// savepoint release inside a transaction that never ends — writes
/// acknowledged and never durable. Here every failure ends in a ROLLBACK
/// (harmless when SQLite has already rolled back, or never began), and a
/// BEGIN that finds a transaction still open fails the write instead of
/// nesting it.
async fn commit(
    conn: &mut SqliteConnection,
    begin: &str,
    writes: &[&Write],
) -> Result<Vec<Done>, StorageError> {
    let mut results = Vec::with_capacity(writes.len());
    let mut outcome = Ok(());
    let last = writes.len().saturating_sub(1);
    for (i, write) in writes.iter().enumerate() {
        let before = if i == 0 { begin } else { "" };
        let after = if i == last { "; COMMIT" } else { "" };
        match apply(conn, write, before, after).await {
            Ok(done) => results.push(done),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    match outcome {
        Ok(()) => Ok(results),
        Err(e) => {
            if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                // "no transaction is active" once SQLite has rolled back.
                tracing::debug!(error = %rollback, "rollback after a failed write");
            }
            Err(e)
        }
    }
}

/// A write's statement. Those whose caller needs to know what changed
/// return a row per changed row: with statements strung together, SQLite's
/// change count would be the last statement's, not this one's.
fn statement(write: &Write) -> Cow<'static, str> {
    Cow::Borrowed(match write {
        Write::Put { .. } => {
            "INSERT INTO entries (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        }
        Write::PutNew { .. } => {
            "INSERT INTO entries (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING RETURNING 1"
        }
        Write::Delete { .. } => "DELETE FROM entries WHERE key = ? RETURNING 1",
        Write::CompareAndPut { .. } => {
            "UPDATE entries SET value = ? WHERE key = ? AND value = ? RETURNING 1"
        }
        Write::ReplaceLeaseSealed { .. } => {
            "UPDATE leases SET sealed = ? WHERE id = ? AND sealed = ? RETURNING 1"
        }
        Write::InsertLease(_) => {
            return Cow::Owned(format!(
                "INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ));
        }
        Write::UpdateLease(_) => {
            "UPDATE leases SET state = ?, issued_at = ?, expires_at = ?, max_expires_at = ?, \
             next_attempt_at = ?, attempts = ?, last_error = ?, token_accessor = ?, sealed = ? \
             WHERE id = ? RETURNING 1"
        }
        Write::DeleteLease { .. } => "DELETE FROM leases WHERE id = ? RETURNING 1",
        // One JSON array parameter: no limit on bound variables to hit.
        Write::DeleteLeases { .. } => {
            "DELETE FROM leases WHERE id IN (SELECT value FROM json_each(?)) RETURNING 1"
        }
    })
}

/// Runs `write` with `before` and `after` around it, in one hand-off.
async fn apply(
    conn: &mut SqliteConnection,
    write: &Write,
    before: &str,
    after: &str,
) -> Result<Done, StorageError> {
    let sql = format!("{before}{}{after}", statement(write));
    let query = sqlx::query(&sql);
    let query = match write {
        Write::Put { key, value } | Write::PutNew { key, value } => query.bind(key).bind(value),
        Write::Delete { key } => query.bind(key),
        Write::CompareAndPut {
            key,
            expected,
            value,
        } => query.bind(value).bind(key).bind(expected),
        Write::ReplaceLeaseSealed {
            id,
            expected,
            sealed,
        } => query.bind(sealed).bind(id).bind(expected),
        Write::InsertLease(l) => query
            .bind(&l.id)
            .bind(l.state.as_str())
            .bind(l.issued_at)
            .bind(l.expires_at)
            .bind(l.max_expires_at)
            .bind(l.next_attempt_at)
            .bind(l.attempts)
            .bind(&l.last_error)
            .bind(&l.token_accessor)
            .bind(&l.sealed),
        Write::UpdateLease(l) => query
            .bind(l.state.as_str())
            .bind(l.issued_at)
            .bind(l.expires_at)
            .bind(l.max_expires_at)
            .bind(l.next_attempt_at)
            .bind(l.attempts)
            .bind(&l.last_error)
            .bind(&l.token_accessor)
            .bind(&l.sealed)
            .bind(&l.id),
        Write::DeleteLease { id } => query.bind(id),
        Write::DeleteLeases { ids } => query
            .bind(serde_json::to_string(ids).map_err(|e| StorageError::Corrupt(e.to_string()))?),
    };
    let changed = query.fetch_all(&mut *conn).await?.len();
    Ok(match write {
        Write::Put { .. } | Write::InsertLease(_) => Done::Unit,
        Write::PutNew { .. }
        | Write::Delete { .. }
        | Write::CompareAndPut { .. }
        | Write::ReplaceLeaseSealed { .. }
        | Write::UpdateLease(_)
        | Write::DeleteLease { .. } => Done::Changed(changed > 0),
        Write::DeleteLeases { .. } => Done::Count(changed as u64),
    })
}
