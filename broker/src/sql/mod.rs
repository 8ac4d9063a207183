//! Connections to the databases that plugins manage.
//!
//! The host, not the plugin, owns every database connection: a mount's
//! [`SqlTarget`] (URL, admin user and password) stays in the host, and
//! [`Pools`] keeps one connection pool per target. A plugin's `sql.open`
//! gets a [`SqlConn`] from its own mount's pool and nothing else.
//!
//! This module must never put a password in an error, a log line or a
//! `Debug` output: connection URLs are redacted wholesale.

mod mysql;
mod postgres;
mod target;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use target::{Dialect, SqlTarget, SqlTargetSpec};

/// The most bytes of rows one query may return to a plugin.
pub const MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;
/// The longest statement a plugin may send.
pub const MAX_STATEMENT_BYTES: usize = 256 * 1024;
/// How long to wait for a connection before calling the database unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
type PoolEntry = ([u8; 32], std::sync::Arc<Pool>);

enum Pool {
    Postgres(deadpool_postgres::Pool),
    MySql(mysql_async::Pool),
}

/// One connection pool per target, keyed by the owner's name (for example
/// `database/config/main`). A target whose settings change (a rotated root
/// password) gets a fresh pool.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, PoolEntry>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.pools.lock().map(|p| p.len()).unwrap_or(0);
        f.debug_struct("Pools").field("pools", &count).finish()
    }
}

impl Pools {
    /// No pools yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection to `target` from the pool named `key`.
    pub async fn connect(&self, key: &str, target: &SqlTarget) -> Result<SqlConn, SqlError> {
        let pool = self.pool(key, target)?;
        match &*pool {
            Pool::Postgres(p) => postgres::connect(p)
                .await
                .map(|c| SqlConn::Postgres(Box::new(c))),
            Pool::MySql(p) => mysql::connect(p).await.map(SqlConn::MySql),
        }
    }

    /// Drops the pool named `key`, closing its idle connections.
    pub fn remove(&self, key: &str) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.remove(key);
        }
    }

    fn pool(&self, key: &str, target: &SqlTarget) -> Result<std::sync::Arc<Pool>, SqlError> {
        let fingerprint = target.fingerprint();
        let mut pools = self.pools.lock().map_err(|_| {
            SqlError::new(SqlErrorKind::Unavailable, "connection pools are poisoned")
        })?;
        if let Some((fp, pool)) = pools.get(key)
            && *fp == fingerprint
        {
            return Ok(pool.clone());
        }
        let pool = std::sync::Arc::new(match target.dialect() {
            Dialect::Postgres => Pool::Postgres(postgres::pool(target)?),
            Dialect::MySql => Pool::MySql(mysql::pool(target)?),
        });
        pools.insert(key.to_owned(), (fingerprint, pool.clone()));
        Ok(pool)
    }
}

/// One connection, held by a plugin for the rest of its call.
pub enum SqlConn {
    /// A PostgreSQL connection.
    Postgres(Box<deadpool_postgres::Object>),
    /// A MySQL or MariaDB connection.
    MySql(mysql::PooledConn),
}

impl std::fmt::Debug for SqlConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(_) => f.write_str("SqlConn::Postgres"),
            Self::MySql(_) => f.write_str("SqlConn::MySql"),
        }
    }
}

impl SqlConn {
    /// Runs a statement; returns the rows it affected. Without parameters
    /// the statement goes as plain text (DDL needs that).
    pub async fn execute(&mut self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        check_statement(statement)?;
        match self {
            Self::Postgres(c) => postgres::execute(c, statement, params).await,
            Self::MySql(c) => mysql::execute(c, statement, params).await,
        }
    }

    /// Runs a query; returns its rows, at most [`MAX_RESULT_BYTES`] of them.
    pub async fn query(&mut self, statement: &str, params: &[SqlValue]) -> Result<Rows, SqlError> {
        check_statement(statement)?;
        match self {
            Self::Postgres(c) => postgres::query(c, statement, params).await,
            Self::MySql(c) => mysql::query(c, statement, params).await,
        }
    }

    /// Runs statements in order: in one transaction on PostgreSQL, one by
    /// one on MySQL (whose DDL commits implicitly).
    pub async fn batch(&mut self, statements: &[String]) -> Result<(), SqlError> {
        for s in statements {
            check_statement(s)?;
        }
        match self {
            Self::Postgres(c) => postgres::batch(c, statements).await,
            Self::MySql(c) => mysql::batch(c, statements).await,
        }
    }
}
