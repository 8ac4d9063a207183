//! Connections to the databases that plugins manage.
//!
//! The host, not the plugin, owns every database connection: a mount's
//! [`SqlTarget`] (URL, admin user and password) stays in the host, and
//! [`Pools`] keeps one connection pool per target. A plugin's `sql.open`
//! gets a [`SqlConn`] from its own mount's pool and nothing else.
//!
//! This module must never put a password in an error, a log line or a
//! `Debug` output: connection URLs are redacted wholesale. It must never
//! let one target's settings hurt another: a pool that cannot be built
//! (a stored size out of range, a bug in a driver) fails for its own key
//! only, and is reported by [`Pools::failures`] until it is built.
//!
//! A statement is never left running on the database after the call that
//! sent it is over: past the call's deadline, or when the call is dropped,
//! it is cancelled on the server (PostgreSQL's cancel request, MySQL's
//! `KILL QUERY` on the session it ran on), and its connection is closed
//! instead of pooled again.

mod mysql;
mod postgres;
pub mod scram;
mod target;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use target::{Dialect, SqlTarget, SqlTargetSpec};

/// The most bytes of rows one query may return to a plugin.
pub const MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;
/// The longest statement a plugin may send.
pub const MAX_STATEMENT_BYTES: usize = 256 * 1024;
/// How long to wait for a connection before calling the database unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest pool (Vault's `max_open_connections`). A pool's size sets
/// what its driver allocates up front, so it is bounded when written and
/// again when a pool is built from a stored config.
pub const MAX_OPEN_CONNECTIONS: usize = 1000;
/// The longest `max_connection_lifetime`: 30 days.
pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long cancelling a statement, and then its end, may take each.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whose fault a failed statement was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The database cannot be reached or the connection broke: retry later.
    Unavailable,
    /// The database refused the statement.
    Statement,
    /// A host limit (result or statement size) was passed.
    Limit,
    /// The target is misconfigured, or the caller may not use it.
    Denied,
    /// The call's deadline passed: the statement was cancelled, or not sent.
    Deadline,
}

/// A failed database operation. The message never holds a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// Whose fault it was.
    pub kind: SqlErrorKind,
    /// What went wrong.
    pub message: String,
    /// The SQLSTATE, when the database gave one.
    pub code: Option<String>,
}

impl SqlError {
    pub(crate) fn new(kind: SqlErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
        }
    }
}

/// A parameter or a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl SqlValue {
    fn size(&self) -> usize {
        match self {
            Self::Text(s) => s.len(),
            Self::Bytes(b) => b.len(),
            _ => 8,
        }
    }
}

/// The rows of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// Adds rows while keeping the total under [`MAX_RESULT_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct RowBudget {
    used: usize,
}

impl RowBudget {
    pub(crate) fn charge(&mut self, row: &[SqlValue]) -> Result<(), SqlError> {
        self.used += row.iter().map(SqlValue::size).sum::<usize>();
        if self.used > MAX_RESULT_BYTES {
            return Err(SqlError::new(
                SqlErrorKind::Limit,
                format!("query result is larger than {MAX_RESULT_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

fn check_statement(statement: &str) -> Result<(), SqlError> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(SqlError::new(
            SqlErrorKind::Limit,
            format!("statement is longer than {MAX_STATEMENT_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A pool and the fingerprint of the target it was built for.
type PoolEntry = ([u8; 32], Arc<Pool>);

enum Pool {
    Postgres(deadpool_postgres::Pool),
    MySql(mysql::MySqlPool),
}

#[derive(Default)]
struct State {
    pools: HashMap<String, PoolEntry>,
    /// Keys whose pool could not be built, with why.
    failed: HashMap<String, String>,
}

/// One connection pool per target, keyed by the owner's name (for example
/// `database/config/main`). A target whose settings change (a rotated root
/// password) gets a fresh pool.
#[derive(Default)]
pub struct Pools {
    state: Mutex<State>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Pools")
            .field("pools", &state.pools.len())
            .field("failed", &state.failed.len())
            .finish()
    }
}

impl Pools {
    /// No pools yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock is held for map operations only, which do not panic; should
    /// one ever, the maps are still whole, so a poisoned lock is taken over
    /// rather than failing every later call on every mount.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to `target` from the pool named `key`.
    pub async fn connect(&self, key: &str, target: &SqlTarget) -> Result<SqlConn, SqlError> {
        let pool = self.pool(key, target)?;
        let conn = match &*pool {
            Pool::Postgres(p) => Conn::Postgres(Box::new(postgres::connect(p).await?)),
            Pool::MySql(p) => Conn::MySql(mysql::connect(p).await?),
        };
        Ok(SqlConn {
            conn,
            deadline: None,
        })
    }

    /// Drops the pool named `key`, closing its idle connections, and
    /// forgets that it failed.
    pub fn remove(&self, key: &str) {
        let mut state = self.state();
        state.pools.remove(key);
        state.failed.remove(key);
    }

    /// The pools that could not be built, by key, with why; each stays
    /// here until its key's pool is built or removed.
    pub fn failures(&self) -> Vec<(String, String)> {
        let mut failed: Vec<_> = self
            .state()
            .failed
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        failed.sort();
        failed
    }

    /// Whether some pool could not be built (see [`Pools::failures`]).
    pub fn any_failed(&self) -> bool {
        !self.state().failed.is_empty()
    }

    fn pool(&self, key: &str, target: &SqlTarget) -> Result<Arc<Pool>, SqlError> {
        let fingerprint = target.fingerprint();
        if let Some((fp, pool)) = self.state().pools.get(key)
            && *fp == fingerprint
        {
            return Ok(pool.clone());
        }
        // Built outside the lock: nothing a target does can hold up, or
        // poison, the other targets' pools.
        let built = build(target);
        let mut state = self.state();
        match built {
            Ok(pool) => {
                state.failed.remove(key);
                // Another call may have built this one meanwhile: keep one.
                if let Some((fp, existing)) = state.pools.get(key)
                    && *fp == fingerprint
                {
                    return Ok(existing.clone());
                }
                let pool = Arc::new(pool);
                state
                    .pools
                    .insert(key.to_owned(), (fingerprint, pool.clone()));
                Ok(pool)
            }
            Err(e) => {
                state.pools.remove(key);
                if state.failed.get(key) != Some(&e.message) {
                    tracing::error!(pool = %key, error = %e.message, "cannot build a connection pool; calls through this connection config fail until it is written again");
                    state.failed.insert(key.to_owned(), e.message.clone());
                }
                Err(e)
            }
        }
    }
}

/// Logs in to `target` once, on a connection of its own that is closed
/// afterwards, and runs `SELECT 1`: whether its user and password work
/// (see [`SqlTarget::as_login`]). The error says why not, without the
/// password.
pub async fn check_login(target: &SqlTarget) -> Result<(), SqlError> {
    let pools = Pools::new();
    let mut conn = pools.connect("login-check", target).await?;
    conn.set_deadline(std::time::Instant::now() + LOGIN_CHECK_DEADLINE);
    conn.query("SELECT 1", &[]).await?;
    Ok(())
}

/// How long a login check may take.
const LOGIN_CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds a pool, after checking the target's settings; a panic in a
/// driver is contained to this target.
fn build(target: &SqlTarget) -> Result<Pool, SqlError> {
    target.check()?;
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match target.dialect() {
        Dialect::Postgres => postgres::pool(target).map(Pool::Postgres),
        Dialect::MySql => mysql::pool(target).map(Pool::MySql),
    }));
    built.unwrap_or_else(|_| {
        Err(SqlError::new(
            SqlErrorKind::Denied,
            "building the connection pool failed unexpectedly; write the connection config again",
        ))
    })
}

enum Conn {
    Postgres(Box<postgres::PgConn>),
    MySql(mysql::PooledConn),
}

/// One connection, held by a plugin for the rest of its call.
pub struct SqlConn {
    conn: Conn,
    deadline: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for SqlConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.conn {
            Conn::Postgres(_) => f.write_str("SqlConn::Postgres"),
            Conn::MySql(_) => f.write_str("SqlConn::MySql"),
        }
    }
}

/// What cancels the statement running on one connection, from outside it.
enum Canceller {
    Postgres(tokio_postgres::CancelToken),
    MySql(mysql::Killer),
}

impl Canceller {
    /// Whether the statement may still run once the cancellation is sent:
    /// PostgreSQL answers a cancel request before acting on it, so the
    /// statement's own end is awaited (its transaction is aborted, so a
    /// batch runs nothing more). MySQL's `KILL QUERY` has taken effect
    /// when it returns, and a batch there would go on to its next
    /// statement, so the call stops waiting at once.
    fn answers_later(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Asks the server to stop the statement; gives up after
    /// [`CANCEL_TIMEOUT`] (the connection is closed either way).
    async fn cancel(self) {
        let sent = tokio::time::timeout(CANCEL_TIMEOUT, async move {
            match self {
                Self::Postgres(token) => token
                    .cancel_query(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string()),
                Self::MySql(killer) => killer.kill_query().await,
            }
        })
        .await;
        match sent {
            Ok(Ok(())) => tracing::info!("a statement past its call's end was cancelled"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot cancel a statement past its call's end")
            }
            Err(_) => tracing::warn!("timed out cancelling a statement past its call's end"),
        }
    }
}

/// Cancels the statement in flight when dropped armed: the call that sent
/// it was dropped (a deadline of the whole call, a stopped worker).
struct CancelOnDrop(Option<Canceller>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(canceller) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(canceller.cancel());
        }
    }
}

fn deadline_error() -> SqlError {
    SqlError::new(
        SqlErrorKind::Deadline,
        "the call's deadline passed; the statement was cancelled",
    )
}

/// Runs `op` on a connection until `deadline`; `None` when the deadline
/// came first. Then the statement is cancelled on the server, so that once
/// this returns it no longer runs, and `op` is dropped: nothing more is
/// sent on that connection, which is closed.
async fn guarded<T>(
    deadline: Option<tokio::time::Instant>,
    canceller: Canceller,
    op: impl Future<Output = Result<T, SqlError>>,
) -> Option<Result<T, SqlError>> {
    let mut guard = CancelOnDrop(Some(canceller));
    let mut op = std::pin::pin!(op);
    let result = match deadline {
        None => op.await,
        Some(deadline) => {
            let raced = tokio::select! {
                biased;
                result = &mut op => Some(result),
                () = tokio::time::sleep_until(deadline) => None,
            };
            match raced {
                Some(result) => result,
                None => {
                    let mut wait = false;
                    if let Some(canceller) = guard.0.take() {
                        wait = canceller.answers_later();
                        // A task of its own: it completes even if this call is dropped now.
                        let _ = tokio::spawn(canceller.cancel()).await;
                    }
                    if wait {
                        let _ = tokio::time::timeout(CANCEL_TIMEOUT, op).await;
                    }
                    return None;
                }
            }
        }
    };
    guard.0 = None;
    Some(result)
}

impl Conn {
    fn set_discard(&mut self, discard: bool) {
        match self {
            Self::Postgres(c) => c.discard = discard,
            Self::MySql(c) => c.discard = discard,
        }
    }
}

impl SqlConn {
    /// Statements on this connection stop at `deadline` (the plugin call's).
    pub fn set_deadline(&mut self, deadline: std::time::Instant) {
        self.deadline = Some(tokio::time::Instant::from_std(deadline));
    }

    /// Until a statement completes, its connection counts as abandoned:
    /// dropped then, it is closed rather than pooled with a statement
    /// possibly still running on it.
    async fn run<T>(
        &mut self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        if self
            .deadline
            .is_some_and(|d| d <= tokio::time::Instant::now())
        {
            return Err(deadline_error());
        }
        let canceller = match &mut self.conn {
            Conn::Postgres(c) => Canceller::Postgres(c.cancel_token()?),
            Conn::MySql(c) => Canceller::MySql(c.killer()?),
        };
        self.conn.set_discard(true);
        match guarded(self.deadline, canceller, op(&mut self.conn)).await {
            Some(result) => {
                self.conn.set_discard(false);
                result
            }
            None => Err(deadline_error()),
        }
    }

    /// Runs a statement; returns the rows it affected. Without parameters
    /// the statement goes as plain text (DDL needs that).
    pub async fn execute(&mut self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        check_statement(statement)?;
        self.run(async |conn: &mut Conn| match conn {
            Conn::Postgres(c) => postgres::execute(c.object()?, statement, params).await,
            Conn::MySql(c) => mysql::execute(c, statement, params).await,
        })
        .await
    }

    /// Runs a query; returns its rows, at most [`MAX_RESULT_BYTES`] of them.
    pub async fn query(&mut self, statement: &str, params: &[SqlValue]) -> Result<Rows, SqlError> {
        check_statement(statement)?;
        self.run(async |conn: &mut Conn| match conn {
            Conn::Postgres(c) => postgres::query(c.object()?, statement, params).await,
            Conn::MySql(c) => mysql::query(c, statement, params).await,
        })
        .await
    }

    /// Runs statements in order: in one transaction on PostgreSQL, one by
    /// one on MySQL (whose DDL commits implicitly).
    pub async fn batch(&mut self, statements: &[String]) -> Result<(), SqlError> {
        for s in statements {
            check_statement(s)?;
        }
        self.run(async |conn: &mut Conn| match conn {
            Conn::Postgres(c) => postgres::batch(c.object()?, statements).await,
            Conn::MySql(c) => mysql::batch(c, statements).await,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgresql://{{username}}:{{password}}@127.0.0.1:1/db";

    fn target(dialect: Dialect) -> SqlTarget {
        let url = match dialect {
            Dialect::Postgres => URL,
            Dialect::MySql => "{{username}}:{{password}}@tcp(127.0.0.1:1)/",
        };
        SqlTarget::new(dialect, url, Some("u"), Some("p"))
    }

    /// A pool size the driver would allocate for (22 TB, or an overflow) is
    /// refused before any driver sees it, naming the field; the other keys'
    /// pools are built as usual, and the failure is reported until fixed.
    #[tokio::test]
    async fn a_pool_out_of_range_fails_alone_and_names_the_field() {
        let pools = Pools::new();
        for dialect in [Dialect::Postgres, Dialect::MySql] {
            for n in [100_000_000_000usize, usize::MAX, MAX_OPEN_CONNECTIONS + 1] {
                let bad = target(dialect).with_max_open_connections(n);
                let e = pools.pool("m/config/bad", &bad).err().unwrap();
                assert_eq!(e.kind, SqlErrorKind::Denied);
                assert!(e.message.contains("max_open_connections"), "{e}");
            }
            let long = target(dialect).with_max_connection_lifetime(Some(Duration::MAX));
            let e = pools.pool("m/config/long", &long).err().unwrap();
            assert!(e.message.contains("max_connection_lifetime"), "{e}");
            let good = target(dialect).with_max_open_connections(MAX_OPEN_CONNECTIONS);
            assert!(pools.pool("m/config/good", &good).is_ok());
        }
        let failed: Vec<String> = pools.failures().into_iter().map(|(k, _)| k).collect();
        assert_eq!(failed, ["m/config/bad", "m/config/long"]);
        assert!(pools.any_failed());
        // Written again in range: built, and no longer reported.
        assert!(
            pools
                .pool("m/config/bad", &target(Dialect::Postgres))
                .is_ok()
        );
        pools.remove("m/config/long");
        assert!(!pools.any_failed(), "{:?}", pools.failures());
    }
}
