//! The PostgreSQL side of the `sql` capability: tokio-postgres behind a
//! deadpool pool.

use std::pin::pin;
use std::str::FromStr;

use futures_util::TryStreamExt;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::target::config_error;
use super::{CONNECT_TIMEOUT, RowBudget, Rows, SqlError, SqlErrorKind, SqlTarget, SqlValue};

pub(super) fn pool(target: &SqlTarget) -> Result<Pool, SqlError> {
    let url = target.rendered_url();
    let mut config = tokio_postgres::Config::from_str(&url)
        .map_err(|_| config_error("expected postgresql://user:password@host:port/database"))?;
    if (config.get_user().is_none() || target.login_only())
        && let Some(user) = target.username()
    {
        config.user(user);
    }
    if (config.get_password().is_none() || target.login_only())
        && let Some(password) = target.password()
    {
        config.password(password);
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("broker");
    // The templater quotes for standard strings; make sure the session uses them.
    config.options("-c standard_conforming_strings=on");
    // A plugin may change session settings or leave a transaction open.
    // DISCARD ALL resets the settings, and fails inside an open transaction,
    // which makes the pool drop that connection instead of reusing it.
    // (It must be the only statement: PostgreSQL refuses it in a
    // multi-statement string.)
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Custom("DISCARD ALL".into()),
        },
    );
    let mut builder = Pool::builder(manager);
    if let Some(lifetime) = target.max_connection_lifetime() {
        // Checked before it is taken from the pool: an old connection is closed then.
        builder = builder.pre_recycle(Hook::sync_fn(move |_, metrics| {
            if metrics.age() > lifetime {
                Err(HookError::message("past max_connection_lifetime"))
            } else {
                Ok(())
            }
        }));
    }
    // deadpool allocates room for `max_size` connections up front: the size
    // is in range (`SqlTarget::check`) before it gets here.
    builder
        .max_size(target.max_open_connections())
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT * 2))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| {
            SqlError::new(
                SqlErrorKind::Denied,
                format!("cannot build a connection pool: {e}"),
            )
        })
}

/// A pooled connection, held for one plugin call. One that may still run
/// a statement (its call was dropped or stopped mid-statement) is closed
/// rather than returned to the pool.
pub(crate) struct PgConn {
    /// `Some` until dropped.
    object: Option<Object>,
    pub(super) discard: bool,
}

impl PgConn {
    pub(super) fn object(&mut self) -> Result<&mut Object, SqlError> {
        self.object
            .as_mut()
            .ok_or_else(|| SqlError::new(SqlErrorKind::Unavailable, "the connection was released"))
    }

    /// What cancels this session's running statement, over a connection of its own.
    pub(super) fn cancel_token(&mut self) -> Result<tokio_postgres::CancelToken, SqlError> {
        Ok(self.object()?.cancel_token())
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if self.discard
            && let Some(object) = self.object.take()
        {
            // Taken out of the pool and dropped: the connection closes.
            drop(Object::take(object));
        }
    }
}

pub(super) async fn connect(pool: &Pool) -> Result<PgConn, SqlError> {
    let object = pool.get().await.map_err(|e| {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) => map_error(e),
            PoolError::Timeout(_) => SqlError::new(
                SqlErrorKind::Unavailable,
                "timed out connecting to PostgreSQL",
            ),
            other => SqlError::new(
                SqlErrorKind::Unavailable,
                format!("cannot connect to PostgreSQL: {other}"),
            ),
        }
    })?;
    Ok(PgConn {
        object: Some(object),
        discard: false,
    })
}

/// PostgreSQL's syntax errors name the token they stopped at (`syntax
/// error at or near "UNTILL"`), which helps; but when that token is a
/// string literal (`PASSWORD` left out before `'{{password}}'`) it is the
/// password. A quoted literal is cut; a keyword stays.
fn without_literal(message: &str) -> String {
    match message.find(" at or near \"'") {
        Some(at) => format!(
            "{} (at a string literal, left out: it may hold a password)",
            &message[..at]
        ),
        None => message.to_owned(),
    }
}

/// A database's own refusal is the statement's fault; anything else (a
/// refused or broken connection) means "try again later".
fn map_error(e: tokio_postgres::Error) -> SqlError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code().to_owned();
            // Class 08 is connection trouble; 28 is bad credentials (the operator's config);
            // 57P is the server shutting down.
            let kind = if code.starts_with("08") || code.starts_with("57P") {
                SqlErrorKind::Unavailable
            } else if code.starts_with("28") {
                SqlErrorKind::Denied
            } else {
                SqlErrorKind::Statement
            };
            SqlError {
                kind,
                message: without_literal(db.message()),
                code: Some(code),
            }
        }
        None => SqlError::new(
            SqlErrorKind::Unavailable,
            format!("PostgreSQL connection failed: {e}"),
        ),
    }
}

fn param(v: &SqlValue) -> (Box<dyn ToSql + Sync + Send>, Type) {
    match v {
        SqlValue::Null => (Box::new(Option::<String>::None), Type::TEXT),
        SqlValue::Bool(b) => (Box::new(*b), Type::BOOL),
        SqlValue::Int(i) => (Box::new(*i), Type::INT8),
        SqlValue::Float(f) => (Box::new(*f), Type::FLOAT8),
        SqlValue::Text(s) => (Box::new(s.clone()), Type::TEXT),
        SqlValue::Bytes(b) => (Box::new(b.clone()), Type::BYTEA),
    }
}

fn cell(row: &tokio_postgres::Row, i: usize) -> Result<SqlValue, SqlError> {
    let ty = row.columns()[i].type_().clone();
    let unsupported = || {
        SqlError::new(
            SqlErrorKind::Statement,
            format!("column {i} has type {ty} the sql capability cannot carry; cast it to text"),
        )
    };
    let get_err = |e: tokio_postgres::Error| SqlError::new(SqlErrorKind::Statement, e.to_string());
    Ok(match ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, SqlValue::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, SqlValue::Int),
        Type::OID => row
            .try_get::<_, Option<u32>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, |v| SqlValue::Float(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, SqlValue::Float),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, SqlValue::Bytes),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row
            .try_get::<_, Option<String>>(i)
            .map_err(get_err)?
            .map_or(SqlValue::Null, SqlValue::Text),
        _ => return Err(unsupported()),
    })
}

fn typed(owned: &[(Box<dyn ToSql + Sync + Send>, Type)]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    owned
        .iter()
        .map(|(v, t)| (v.as_ref() as &(dyn ToSql + Sync), t.clone()))
        .collect()
}

/// Rows are read as they stream in and never buffered beyond the budget, so
/// a guest cannot make the host hold a huge result.
pub(super) async fn execute(
    c: &mut Object,
    statement: &str,
    params: &[SqlValue],
) -> Result<u64, SqlError> {
    if params.is_empty() {
        let stream = c.simple_query_raw(statement).await.map_err(map_error)?;
        let mut stream = pin!(stream);
        let mut affected = 0;
        while let Some(message) = stream.try_next().await.map_err(map_error)? {
            if let SimpleQueryMessage::CommandComplete(n) = message {
                affected += n;
            }
        }
        return Ok(affected);
    }
    let owned: Vec<_> = params.iter().map(param).collect();
    let stream = c
        .query_typed_raw(statement, typed(&owned))
        .await
        .map_err(map_error)?;
    let mut stream = pin!(stream);
    while stream.try_next().await.map_err(map_error)?.is_some() {}
    Ok(stream.rows_affected().unwrap_or(0))
}

pub(super) async fn query(
    c: &mut Object,
    statement: &str,
    params: &[SqlValue],
) -> Result<Rows, SqlError> {
    let mut budget = RowBudget::default();
    let mut out = Rows::default();
    if params.is_empty() {
        // The simple protocol returns every value as text.
        let stream = c.simple_query_raw(statement).await.map_err(map_error)?;
        let mut stream = pin!(stream);
        while let Some(message) = stream.try_next().await.map_err(map_error)? {
            match message {
                SimpleQueryMessage::RowDescription(cols) if out.columns.is_empty() => {
                    out.columns = cols.iter().map(|c| c.name().to_owned()).collect();
                }
                SimpleQueryMessage::Row(row) => {
                    if out.columns.is_empty() {
                        out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                    }
                    let values: Vec<SqlValue> = (0..row.len())
                        .map(|i| {
                            row.get(i)
                                .map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned()))
                        })
                        .collect();
                    budget.charge(&values)?;
                    out.rows.push(values);
                }
                _ => {}
            }
        }
        return Ok(out);
    }
    let owned: Vec<_> = params.iter().map(param).collect();
    let stream = c
        .query_typed_raw(statement, typed(&owned))
        .await
        .map_err(map_error)?;
    let mut stream = pin!(stream);
    while let Some(row) = stream.try_next().await.map_err(map_error)? {
        if out.columns.is_empty() {
            out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
        }
        let values = (0..row.len())
            .map(|i| cell(&row, i))
            .collect::<Result<Vec<_>, _>>()?;
        budget.charge(&values)?;
        out.rows.push(values);
    }
    Ok(out)
}

pub(super) async fn batch(c: &mut Object, statements: &[String]) -> Result<(), SqlError> {
    // Dropping an uncommitted transaction rolls it back.
    let tx = c.transaction().await.map_err(map_error)?;
    for s in statements {
        tx.batch_execute(s).await.map_err(map_error)?;
    }
    tx.commit().await.map_err(map_error)
}

#[cfg(test)]
mod tests {
    use super::without_literal;

    #[test]
    fn a_syntax_error_at_a_literal_does_not_quote_it() {
        let shown = without_literal("syntax error at or near \"'Xk2-secret'\"");
        assert!(!shown.contains("Xk2-secret"), "{shown}");
        assert!(shown.starts_with("syntax error"), "{shown}");
        let keyword = "syntax error at or near \"UNTILL\"";
        assert_eq!(without_literal(keyword), keyword);
    }
}
