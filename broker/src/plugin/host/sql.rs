//! The `sql` capability: a connection to the calling mount's database only.
//!
//! The guest names no host, user or password; `open` connects to the
//! [`SqlTarget`](crate::sql::SqlTarget) the broker bound to this call, and
//! only when the plugin speaks that database's dialect. Every statement
//! ends by the call's deadline: one still running then is cancelled on the
//! database (see [`crate::sql`]), never left to run after the call.
//!
//! Version-free: each contract version's adapter
//! ([`crate::plugin::versions`]) converts its types and calls these.

use wasmtime::component::Resource;

use crate::plugin::HostCapability;
use crate::plugin::state::CallState;
use crate::sql::{Dialect, Rows, SqlConn, SqlError, SqlErrorKind, SqlValue};

/// A guest's handle to one pooled connection; returned to the pool when the
/// guest drops it or the call ends.
#[derive(Debug)]
pub struct SqlHandle {
    conn: SqlConn,
}

/// The most connections one call may hold at once.
const MAX_HANDLES_PER_CALL: usize = 4;

impl CallState {
    /// The guest's view of `e`. A statement cut by the deadline marks the
    /// call as stopped by it, whatever the guest makes of the error: its
    /// work may be half done, so the lease layer must not take a typed
    /// failure from it as "undone".
    fn failed(&mut self, e: SqlError) -> SqlError {
        if e.kind == SqlErrorKind::Deadline {
            self.deadline_hit = true;
        }
        e
    }

    pub(crate) async fn sql_open(
        &mut self,
    ) -> wasmtime::Result<Result<Resource<SqlHandle>, SqlError>> {
        let Some(binding) = self.sql.clone() else {
            return Ok(Err(SqlError::new(
                SqlErrorKind::Denied,
                "this mount has no database connection configured",
            )));
        };
        let needed = match binding.target.dialect() {
            Dialect::Postgres => HostCapability::SqlPostgres,
            Dialect::MySql => HostCapability::SqlMysql,
        };
        if !self.capabilities.contains(&needed) {
            self.refused("sql", "a database of another dialect");
            return Ok(Err(SqlError::new(
                SqlErrorKind::Denied,
                "the plugin does not speak this mount's database dialect",
            )));
        }
        if self.sql_handles >= MAX_HANDLES_PER_CALL {
            return Ok(Err(SqlError::new(
                SqlErrorKind::Limit,
                format!("at most {MAX_HANDLES_PER_CALL} connections per call"),
            )));
        }
        // Waiting for a connection counts against the call's deadline too.
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let connect = binding.pools.connect(&binding.key, &binding.target);
        match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(mut conn)) => {
                // Its statements are cancelled on the database at the deadline.
                conn.set_deadline(self.deadline);
                self.sql_handles += 1;
                Ok(Ok(self.table.push(SqlHandle { conn })?))
            }
            Ok(Err(e)) => Ok(Err(self.failed(e))),
            Err(_) => {
                self.deadline_hit = true;
                Ok(Err(SqlError::new(
                    SqlErrorKind::Unavailable,
                    "the call's deadline passed while waiting for a connection",
                )))
            }
        }
    }

    pub(crate) async fn sql_execute(
        &mut self,
        handle: &Resource<SqlHandle>,
        statement: &str,
        params: &[SqlValue],
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        let h = self.table.get_mut(handle)?;
        let result = h.conn.execute(statement, params).await;
        Ok(result.map_err(|e| self.failed(e)))
    }

    pub(crate) async fn sql_query(
        &mut self,
        handle: &Resource<SqlHandle>,
        statement: &str,
        params: &[SqlValue],
    ) -> wasmtime::Result<Result<Rows, SqlError>> {
        let h = self.table.get_mut(handle)?;
        let result = h.conn.query(statement, params).await;
        Ok(result.map_err(|e| self.failed(e)))
    }

    pub(crate) async fn sql_batch(
        &mut self,
        handle: &Resource<SqlHandle>,
        statements: &[String],
    ) -> wasmtime::Result<Result<(), SqlError>> {
        let h = self.table.get_mut(handle)?;
        let result = h.conn.batch(statements).await;
        Ok(result.map_err(|e| self.failed(e)))
    }

    pub(crate) fn sql_drop(&mut self, handle: Resource<SqlHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.sql_handles = self.sql_handles.saturating_sub(1);
        Ok(())
    }
}
