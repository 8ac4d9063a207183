//! Talking to the mount's database through the host's `sql` capability.
//!
//! The plugin names no host, port or user: [`Database::open`] returns a
//! connection from the pool the host keeps for the calling mount, opened
//! with the admin credentials the host holds.
//!
//! ```no_run
//! use broker_plugin_sdk::sql::{Database, Value};
//! # fn f() -> broker_plugin_sdk::Result<()> {
//! let db = Database::open()?;
//! let rows = db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[Value::Text("app".into())])?;
//! db.batch(&["CREATE ROLE \"app-reader\"".to_owned()])?;
//! # Ok(()) }
//! ```

use crate::Result;
use crate::export::bindings::broker::plugin::sql as wit;

pub use wit::{Rows, SqlError, SqlErrorKind, Value};

/// An SQL dialect: decides quoting rules and name length limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL (standard_conforming_strings on, the default since 9.1).
    Postgres,
    /// MySQL and MariaDB (with the default sql_mode: backslash escapes on,
    /// ANSI_QUOTES off).
    MySql,
}

impl Dialect {
    /// The longest username the database accepts: PostgreSQL truncates
    /// identifiers past 63 bytes; MySQL 5.7+ refuses user names past 32
    /// characters.
    pub fn username_limit(self) -> crate::username::Limit {
        match self {
            Self::Postgres => crate::username::Limit {
                max_chars: 63,
                max_bytes: 63,
            },
            Self::MySql => crate::username::Limit {
                max_chars: 32,
                max_bytes: 128,
            },
        }
    }
}

/// A connection to the mount's database, held for the rest of the call.
#[derive(Debug)]
pub struct Database {
    inner: wit::Connection,
}

impl Database {
    /// Opens a connection to the mount's database. Fails with
    /// [`crate::Error::Unavailable`] when the database cannot be reached.
    pub fn open() -> Result<Self> {
        Ok(Self {
            inner: wit::open()?,
        })
    }

    /// Runs one statement and returns the number of rows it affected.
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<u64> {
        Ok(self.inner.execute(statement, params)?)
    }

    /// Runs a query and returns its rows.
    pub fn query(&self, statement: &str, params: &[Value]) -> Result<Rows> {
        Ok(self.inner.query(statement, params)?)
    }

    /// Runs statements in order: in one transaction on PostgreSQL; one by
    /// one on MySQL, where DDL commits implicitly, so a failed batch may have
    /// run its first statements and the plugin must clean up.
    pub fn batch(&self, statements: &[String]) -> Result<()> {
        Ok(self.inner.batch(statements)?)
    }
}

impl Dialect {
    /// `unix` seconds as a UTC timestamp the dialect parses, for
    /// `{{expiration}}`: `2026-01-31 12:00:00+00` on PostgreSQL,
    /// `2026-01-31 12:00:00` on MySQL.
    pub fn timestamp(self, unix: u64) -> String {
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        let at = i64::try_from(unix)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let text = at.format(&format).unwrap_or_default();
        match self {
            Self::Postgres => format!("{text}+00"),
            Self::MySql => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn timestamps() {
        assert_eq!(
            Dialect::Postgres.timestamp(1_700_000_000),
            "2023-11-14 22:13:20+00"
        );
        assert_eq!(Dialect::MySql.timestamp(0), "1970-01-01 00:00:00");
    }
}
