//! The `sql` capability: a connection to the calling mount's database only.
//!
//! The guest names no host, user or password; `open` connects to the
//! [`SqlTarget`](crate::sql::SqlTarget) the broker bound to this call, and
//! only when the plugin declared the matching capability. Every statement
//! ends by the call's deadline: one still running then is cancelled on the
//! database (see [`crate::sql`]), never left to run after the call.

use wasmtime::component::Resource;

use crate::plugin::bindings::v0_1_0::broker::plugin::sql as wit;
use crate::plugin::bindings::v0_1_0::broker::plugin::types::Capability;
use crate::plugin::state::CallState;
use crate::sql::{Dialect, SqlConn, SqlError, SqlErrorKind, SqlValue};

/// A guest's handle to one pooled connection; returned to the pool when the
/// guest drops it or the call ends.
#[derive(Debug)]
pub struct SqlHandle {
    conn: SqlConn,
}

/// The most connections one call may hold at once.
const MAX_HANDLES_PER_CALL: usize = 4;

fn to_wit_error(e: SqlError) -> wit::SqlError {
    wit::SqlError {
        kind: match e.kind {
            SqlErrorKind::Unavailable | SqlErrorKind::Deadline => wit::SqlErrorKind::Unavailable,
            SqlErrorKind::Statement => wit::SqlErrorKind::Statement,
            SqlErrorKind::Limit => wit::SqlErrorKind::Limit,
            SqlErrorKind::Denied => wit::SqlErrorKind::Denied,
        },
        message: e.message,
        code: e.code,
    }
}

fn denied(message: &str) -> wit::SqlError {
    wit::SqlError {
        kind: wit::SqlErrorKind::Denied,
        message: message.to_owned(),
        code: None,
    }
}

fn from_wit(v: wit::Value) -> SqlValue {
    match v {
        wit::Value::Null => SqlValue::Null,
        wit::Value::Boolean(b) => SqlValue::Bool(b),
        wit::Value::Int(i) => SqlValue::Int(i),
        wit::Value::Float(f) => SqlValue::Float(f),
        wit::Value::Text(s) => SqlValue::Text(s),
        wit::Value::Bytes(b) => SqlValue::Bytes(b),
    }
}

fn to_wit(v: SqlValue) -> wit::Value {
    match v {
        SqlValue::Null => wit::Value::Null,
        SqlValue::Bool(b) => wit::Value::Boolean(b),
        SqlValue::Int(i) => wit::Value::Int(i),
        SqlValue::Float(f) => wit::Value::Float(f),
        SqlValue::Text(s) => wit::Value::Text(s),
        SqlValue::Bytes(b) => wit::Value::Bytes(b),
    }
}

impl CallState {
    /// The guest's view of `e`. A statement cut by the deadline marks the
    /// call as stopped by it, whatever the guest makes of the error: its
    /// work may be half done, so the lease layer must not take a typed
    /// failure from it as "undone".
    fn failed(&mut self, e: SqlError) -> wit::SqlError {
        if e.kind == SqlErrorKind::Deadline {
            self.deadline_hit = true;
        }
        to_wit_error(e)
    }
}

impl wit::Host for CallState {
    async fn open(&mut self) -> wasmtime::Result<Result<Resource<SqlHandle>, wit::SqlError>> {
        let Some(binding) = self.sql.clone() else {
            return Ok(Err(denied(
                "this mount has no database connection configured",
            )));
        };
        let needed = match binding.target.dialect() {
            Dialect::Postgres => Capability::SqlPostgres,
            Dialect::MySql => Capability::SqlMysql,
        };
        if !self.capabilities.contains(&needed) {
            return Ok(Err(denied(
                "the plugin did not declare the sql capability for this mount's database",
            )));
        }
        if self.sql_handles >= MAX_HANDLES_PER_CALL {
            return Ok(Err(wit::SqlError {
                kind: wit::SqlErrorKind::Limit,
                message: format!("at most {MAX_HANDLES_PER_CALL} connections per call"),
                code: None,
            }));
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
                Ok(Err(wit::SqlError {
                    kind: wit::SqlErrorKind::Unavailable,
                    message: "the call's deadline passed while waiting for a connection".into(),
                    code: None,
                }))
            }
        }
    }
}

impl wit::HostConnection for CallState {
    async fn execute(
        &mut self,
        handle: Resource<SqlHandle>,
        statement: String,
        params: Vec<wit::Value>,
    ) -> wasmtime::Result<Result<u64, wit::SqlError>> {
        let params: Vec<SqlValue> = params.into_iter().map(from_wit).collect();
        let h = self.table.get_mut(&handle)?;
        let result = h.conn.execute(&statement, &params).await;
        Ok(result.map_err(|e| self.failed(e)))
    }

    async fn query(
        &mut self,
        handle: Resource<SqlHandle>,
        statement: String,
        params: Vec<wit::Value>,
    ) -> wasmtime::Result<Result<wit::Rows, wit::SqlError>> {
        let params: Vec<SqlValue> = params.into_iter().map(from_wit).collect();
        let h = self.table.get_mut(&handle)?;
        let result = h.conn.query(&statement, &params).await;
        Ok(result.map_err(|e| self.failed(e)).map(|rows| wit::Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(to_wit).collect())
                .collect(),
        }))
    }

    async fn batch(
        &mut self,
        handle: Resource<SqlHandle>,
        statements: Vec<String>,
    ) -> wasmtime::Result<Result<(), wit::SqlError>> {
        let h = self.table.get_mut(&handle)?;
        let result = h.conn.batch(&statements).await;
        Ok(result.map_err(|e| self.failed(e)))
    }

    async fn drop(&mut self, handle: Resource<SqlHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.sql_handles = self.sql_handles.saturating_sub(1);
        Ok(())
    }
}
