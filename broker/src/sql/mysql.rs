//! The MySQL and MariaDB side of the `sql` capability: mysql_async and its
//! pool. Accepts Vault's Go-style DSN (`user:pass@tcp(host:3306)/db`) as
//! well as `mysql://` URLs.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Value};
use zeroize::Zeroizing;

use super::target::config_error;
use super::{CONNECT_TIMEOUT, RowBudget, Rows, SqlError, SqlErrorKind, SqlTarget, SqlValue};

struct Address {
    host: String,
    port: u16,
    user: Option<String>,
    pass: Option<Zeroizing<String>>,
    db: Option<String>,
}

fn split_host_port(addr: &str) -> Result<(String, u16), SqlError> {
    if addr.is_empty() {
        return Ok(("127.0.0.1".into(), 3306));
    }
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse()
                .map_err(|_| config_error("the port is not a number"))?,
        ),
        _ => (addr, 3306),
    };
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

/// Parses Vault's Go DSN form: `[user[:pass]@][tcp(host:port)]/[db][?params]`.
/// The template is parsed before placeholders are filled, so a password
/// holding `@` or `/` cannot confuse the parser.
fn parse_dsn(target: &SqlTarget) -> Result<Address, SqlError> {
    let template = target.url_template();
    let (before, after) = template
        .rsplit_once('/')
        .ok_or_else(|| config_error("expected user:pass@tcp(host:port)/"))?;
    let db = after
        .split('?')
        .next()
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let (userinfo, net) = match before.rsplit_once('@') {
        Some((u, n)) => (Some(u), n),
        None => (None, before),
    };
    let addr = if net.is_empty() {
        ""
    } else if let Some(inner) = net.strip_prefix("tcp(").and_then(|r| r.strip_suffix(')')) {
        inner
    } else {
        return Err(config_error("only tcp(host:port) addresses are supported"));
    };
    let (host, port) = split_host_port(addr)?;
    let fill = |s: &str| {
        Zeroizing::new(
            s.replace("{{username}}", target.username().unwrap_or(""))
                .replace("{{password}}", target.password().unwrap_or("")),
        )
    };
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(fill(user).to_string()), Some(fill(pass))),
            None => (Some(fill(u).to_string()), None),
        },
        None => (None, None),
    };
    Ok(Address {
        host,
        port,
        user,
        pass,
        db,
    })
}

fn parse_url(target: &SqlTarget) -> Result<Address, SqlError> {
    let rendered = target.rendered_url();
    let url = url::Url::parse(&rendered)
        .map_err(|_| config_error("expected mysql://user:password@host:port/db"))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Address {
        host: url
            .host_str()
            .unwrap_or("127.0.0.1")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: url.port().unwrap_or(3306),
        user: Some(decode(url.username())).filter(|u| !u.is_empty()),
        pass: url.password().map(|p| Zeroizing::new(decode(p))),
        db: Some(url.path().trim_start_matches('/').to_owned()).filter(|d| !d.is_empty()),
    })
}

/// How long an idle pooled connection is kept.
const IDLE_CONNECTION_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// A pool, and the options it connects with: cancelling a statement takes
/// a connection of its own.
pub(crate) struct MySqlPool {
    pool: Pool,
    opts: Opts,
}

pub(super) fn pool(target: &SqlTarget) -> Result<MySqlPool, SqlError> {
    let template = target.url_template();
    let mut addr = if template.starts_with("mysql://") || template.starts_with("mariadb://") {
        parse_url(target)?
    } else {
        parse_dsn(target)?
    };
    if addr.user.as_deref().is_none_or(str::is_empty) || target.login_only() {
        addr.user = target.username().map(str::to_owned);
    }
    if addr.pass.is_none() || target.login_only() {
        addr.pass = target.password().map(|p| Zeroizing::new(p.to_owned()));
    }
    let constraints = PoolConstraints::new(0, target.max_open_connections())
        .ok_or_else(|| config_error("max_open_connections must be at least 1"))?;
    let mut pool_opts = PoolOpts::default()
        .with_constraints(constraints)
        .with_inactive_connection_ttl(IDLE_CONNECTION_TTL);
    if let Some(lifetime) = target.max_connection_lifetime() {
        pool_opts = pool_opts.with_abs_conn_ttl(Some(lifetime));
    }
    // A `USE` outlives MySQL's session reset; `PooledConn` closes a
    // connection that may have run one instead of pooling it again.
    let opts = OptsBuilder::default()
        .ip_or_hostname(addr.host)
        .tcp_port(addr.port)
        .user(addr.user)
        .pass(addr.pass.as_deref().map(String::as_str))
        .db_name(addr.db)
        // Connect where the operator said: mysql_async would otherwise switch
        // a loopback TCP connection to the Unix socket, which matches a
        // different account (`user@localhost`).
        .prefer_socket(false)
        // Keep up to `max` idle connections (Vault's default for idle
        // connections), closed after a minute unused. With mysql_async's
        // default TTL of zero the pool keeps only `min` (zero) idle, so every
        // plugin call would open, authenticate and close a connection.
        .pool_opts(pool_opts);
    let opts = Opts::from(opts);
    Ok(MySqlPool {
        pool: Pool::new(opts.clone()),
        opts,
    })
}

/// Ends the statement running on one session, from a connection of its own.
pub(crate) struct Killer {
    id: u32,
    opts: Opts,
}

impl Killer {
    pub(super) async fn kill_query(self) -> Result<(), String> {
        let mut conn = Conn::new(self.opts).await.map_err(|e| e.to_string())?;
        // The admin may end its own sessions' statements without any privilege.
        let killed = conn
            .query_drop(format!("KILL QUERY {}", self.id))
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = conn.disconnect().await {
            tracing::debug!(error = %e, "closing the connection that sent KILL QUERY");
        }
        killed
    }
}

/// A pooled connection, held for one plugin call.
///
/// The pool resets a session before handing it out again, but MySQL's reset
/// keeps the default database, so one role's `USE` would carry over to the
/// next call, of any role, on that connection (statements naming tables
/// without their database would then act on another one). A connection
/// that may have run a `USE` is closed instead of returning to the pool.
///
/// So is one that may still run a statement: its call was dropped or
/// stopped while the statement ran.
pub(crate) struct PooledConn {
    /// `Some` until dropped.
    conn: Option<Conn>,
    switched_database: bool,
    pub(super) discard: bool,
    opts: Opts,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("switched_database", &self.switched_database)
            .field("discard", &self.discard)
            .finish_non_exhaustive()
    }
}

impl PooledConn {
    /// The connection, to run `statement` on; notes whether it may switch
    /// the session's database.
    fn conn_for(&mut self, statement: &str) -> Result<&mut Conn, SqlError> {
        if may_switch_database(statement) {
            self.switched_database = true;
        }
        self.conn
            .as_mut()
            .ok_or_else(|| SqlError::new(SqlErrorKind::Unavailable, "the connection was released"))
    }

    /// What ends this session's running statement.
    pub(super) fn killer(&self) -> Result<Killer, SqlError> {
        let conn = self.conn.as_ref().ok_or_else(|| {
            SqlError::new(SqlErrorKind::Unavailable, "the connection was released")
        })?;
        Ok(Killer {
            id: conn.id(),
            opts: self.opts.clone(),
        })
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        if (self.switched_database || self.discard)
            && let Some(conn) = self.conn.take()
        {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if let Err(e) = conn.disconnect().await {
                            tracing::debug!(error = %e, "closing a MySQL connection that is not pooled again");
                        }
                    });
                }
                // Not reached: calls run on the runtime. Dropping returns it to the pool.
                Err(_) => {
                    tracing::warn!("a MySQL connection not to be pooled went back to its pool")
                }
            }
        }
    }
}

/// Whether `statement` may change the session's default database: a `USE`
/// (the word, in any case, not part of a longer name; a digit before it
/// counts as a boundary, for `/*!50000USE db*/`), or a `DROP DATABASE` /
/// `DROP SCHEMA`, which leaves the session on none. Errs towards yes: a
/// false alarm costs one reconnection, a miss would leak a database choice
/// into another call. MySQL takes `USE` only as a statement of its own,
/// never in a prepared statement or a stored routine, and a plugin has no
/// other way to send `COM_INIT_DB`, so the statements are all there is.
fn may_switch_database(statement: &str) -> bool {
    let bytes = statement.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let before = |b: u8| word(b) && !b.is_ascii_digit();
    let has = |keyword: &[u8]| {
        bytes.windows(keyword.len()).enumerate().any(|(i, w)| {
            w.eq_ignore_ascii_case(keyword)
                && (i == 0 || !before(bytes[i - 1]))
                && bytes.get(i + keyword.len()).is_none_or(|b| !word(*b))
        })
    };
    has(b"use") || (has(b"drop") && (has(b"database") || has(b"schema")))
}

pub(super) async fn connect(pool: &MySqlPool) -> Result<PooledConn, SqlError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, pool.pool.get_conn()).await {
        Ok(Ok(conn)) => Ok(PooledConn {
            conn: Some(conn),
            switched_database: false,
            discard: false,
            opts: pool.opts.clone(),
        }),
        Ok(Err(e)) => Err(map_error(e)),
        Err(_) => Err(SqlError::new(
            SqlErrorKind::Unavailable,
            "timed out connecting to MySQL",
        )),
    }
}

fn map_error(e: mysql_async::Error) -> SqlError {
    match e {
        mysql_async::Error::Server(s) => {
            // 1044/1045: access denied for the admin user (the operator's config).
            let kind = match s.code {
                1044 | 1045 => SqlErrorKind::Denied,
                1040 | 1053 | 2006 | 2013 => SqlErrorKind::Unavailable,
                _ => SqlErrorKind::Statement,
            };
            SqlError {
                kind,
                message: without_statement_text(s.code, s.message),
                code: Some(s.state),
            }
        }
        other => SqlError::new(
            SqlErrorKind::Unavailable,
            format!("MySQL connection failed: {other}"),
        ),
    }
}

/// MySQL's syntax errors (1064) quote the statement from the error on
/// (`… near 'IDENTIFED BY 'Xk2…'' at line 1`), and what follows the error
/// is often the password a plugin just generated. The SDK withholds a
/// message that quotes a secret it knows, but then the operator learns
/// nothing, and a plugin written without the SDK might not: everything
/// from the first quote is cut here, before the message reaches any
/// plugin (in any language the server speaks), and the line number kept
/// where the message is in English.
fn without_statement_text(code: u16, message: String) -> String {
    const PARSE_ERROR: u16 = 1064;
    match message.find('\'') {
        Some(quote) if code == PARSE_ERROR => {
            let line = message.rfind(" at line ").map_or("", |at| &message[at..]);
            format!(
                "{}{line} (the statement's text is left out: it may hold a password)",
                message[..quote].trim_end().trim_end_matches(" near")
            )
        }
        _ => message,
    }
}

fn to_param(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::NULL,
        SqlValue::Bool(b) => Value::Int(i64::from(*b)),
        SqlValue::Int(i) => Value::Int(*i),
        SqlValue::Float(f) => Value::Double(*f),
        SqlValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        SqlValue::Bytes(b) => Value::Bytes(b.clone()),
    }
}

fn from_value(v: Value) -> SqlValue {
    match v {
        Value::NULL => SqlValue::Null,
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => SqlValue::Text(s),
            Err(e) => SqlValue::Bytes(e.into_bytes()),
        },
        Value::Int(i) => SqlValue::Int(i),
        Value::UInt(u) => {
            i64::try_from(u).map_or_else(|_| SqlValue::Text(u.to_string()), SqlValue::Int)
        }
        Value::Float(f) => SqlValue::Float(f.into()),
        Value::Double(f) => SqlValue::Float(f),
        Value::Date(y, mo, d, h, mi, s, _) => {
            SqlValue::Text(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
        }
        Value::Time(neg, days, h, mi, s, _) => {
            let sign = if neg { "-" } else { "" };
            SqlValue::Text(format!(
                "{sign}{:02}:{mi:02}:{s:02}",
                days.saturating_mul(24).saturating_add(u32::from(h))
            ))
        }
    }
}

pub(super) async fn execute(
    c: &mut PooledConn,
    statement: &str,
    params: &[SqlValue],
) -> Result<u64, SqlError> {
    let c = c.conn_for(statement)?;
    if params.is_empty() {
        c.query_drop(statement).await.map_err(map_error)?;
    } else {
        let params = Params::Positional(params.iter().map(to_param).collect());
        c.exec_drop(statement, params).await.map_err(map_error)?;
    }
    Ok(c.affected_rows())
}

pub(super) async fn query(
    c: &mut PooledConn,
    statement: &str,
    params: &[SqlValue],
) -> Result<Rows, SqlError> {
    let c = c.conn_for(statement)?;
    if params.is_empty() {
        collect(c.query_iter(statement).await.map_err(map_error)?).await
    } else {
        let params = Params::Positional(params.iter().map(to_param).collect());
        collect(c.exec_iter(statement, params).await.map_err(map_error)?).await
    }
}

/// Reads rows until the budget runs out, then drains the rest so the
/// connection stays usable.
async fn collect<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
) -> Result<Rows, SqlError> {
    let mut out = Rows {
        columns: result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect(),
        rows: Vec::new(),
    };
    let mut budget = RowBudget::default();
    let mut over = None;
    while let Some(row) = result.next().await.map_err(map_error)? {
        if over.is_some() {
            continue;
        }
        // `Row::unwrap` hands over the row's values; it is not `Option::unwrap`.
        let values: Vec<SqlValue> = row.unwrap().into_iter().map(from_value).collect();
        match budget.charge(&values) {
            Ok(()) => out.rows.push(values),
            Err(e) => over = Some(e),
        }
    }
    result.drop_result().await.map_err(map_error)?;
    match over {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Runs the statements one by one. MySQL commits DDL (CREATE USER, GRANT,
/// ALTER USER) implicitly, and MariaDB loses an ALTER USER run inside an
/// explicit transaction, so no transaction is opened: plugins undo a failed
/// batch themselves (the MySQL plugin's rollback statements).
pub(super) async fn batch(c: &mut PooledConn, statements: &[String]) -> Result<(), SqlError> {
    for s in statements {
        c.conn_for(s)?
            .query_drop(s.as_str())
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    fn dsn(url: &str, user: Option<&str>, pass: Option<&str>) -> Address {
        let target = SqlTarget::new(Dialect::MySql, url, user, pass);
        if url.starts_with("mysql://") {
            parse_url(&target)
        } else {
            parse_dsn(&target)
        }
        .unwrap()
    }

    #[test]
    fn vault_go_dsn() {
        let a = dsn(
            "{{username}}:{{password}}@tcp(db.internal:3307)/app?tls=false",
            Some("vault"),
            Some("p@ss/w:rd"),
        );
        assert_eq!((a.host.as_str(), a.port), ("db.internal", 3307));
        assert_eq!(a.user.as_deref(), Some("vault"));
        // The password is filled in after parsing: its `@`, `/` and `:` cannot confuse the parser.
        assert_eq!(a.pass.as_deref().map(String::as_str), Some("p@ss/w:rd"));
        assert_eq!(a.db.as_deref(), Some("app"));
    }

    #[test]
    fn dsn_defaults_and_ipv6() {
        let a = dsn("root@/", None, None);
        assert_eq!(
            (a.host.as_str(), a.port, a.user.as_deref()),
            ("127.0.0.1", 3306, Some("root"))
        );
        assert!(a.pass.is_none() && a.db.is_none());
        let a = dsn("u:p@tcp([::1]:3306)/", None, None);
        assert_eq!((a.host.as_str(), a.port), ("::1", 3306));
    }

    #[test]
    fn url_form_decodes_credentials() {
        let a = dsn(
            "mysql://{{username}}:{{password}}@127.0.0.1:3310/db",
            Some("a b"),
            Some("p@ss/word"),
        );
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 3310));
        assert_eq!(a.user.as_deref(), Some("a b"));
        assert_eq!(a.pass.as_deref().map(String::as_str), Some("p@ss/word"));
        assert_eq!(a.db.as_deref(), Some("db"));
    }

    #[test]
    fn bad_addresses_are_refused_without_echoing_the_url() {
        let target = SqlTarget::new(
            Dialect::MySql,
            "u:secret@unix(/run/mysqld.sock)/",
            None,
            None,
        );
        let e = parse_dsn(&target).err().unwrap();
        assert_eq!(e.kind, SqlErrorKind::Denied);
        assert!(!e.message.contains("secret"), "{}", e.message);
        let target = SqlTarget::new(Dialect::MySql, "u:secret@tcp(host:notaport)/", None, None);
        assert!(!parse_dsn(&target).err().unwrap().message.contains("secret"));
    }

    #[test]
    fn target_debug_hides_secrets() {
        let target = SqlTarget::new(
            Dialect::MySql,
            "u:inline-secret@tcp(h:1)/",
            Some("u"),
            Some("other-secret"),
        );
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("inline-secret") && !shown.contains("other-secret"),
            "{shown}"
        );
    }

    #[test]
    fn a_use_is_noticed_wherever_it_may_be() {
        for yes in [
            "USE test",
            "use`test`",
            "SELECT 1; Use other",
            "/* x */use\ttest",
            "USE",
            "/*!50000USE test*/",
            "DROP DATABASE scratch",
            "drop schema if exists scratch",
        ] {
            assert!(may_switch_database(yes), "{yes}");
        }
        for no in [
            "CREATE USER 'v'@'%'",
            "GRANT USAGE ON *.* TO 'v'@'%'",
            "SELECT reuse FROM t",
            "SELECT use_count FROM t",
            "DROP USER IF EXISTS 'v'@'%'",
        ] {
            assert!(!may_switch_database(no), "{no}");
        }
    }

    #[test]
    fn a_syntax_error_does_not_quote_the_statement() {
        let server = "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'IDENTIFED BY 'Xk2-secret'' at line 1";
        let shown = without_statement_text(1064, server.to_owned());
        assert!(!shown.contains("Xk2-secret"), "{shown}");
        assert!(shown.contains("right syntax to use at line 1"), "{shown}");
        // Another language: the quote goes all the same.
        let german = "Fehler in der SQL-Syntax bei 'IDENTIFED BY 'Xk2-secret'' in Zeile 1";
        let shown = without_statement_text(1064, german.to_owned());
        assert!(!shown.contains("Xk2-secret"), "{shown}");
        assert!(shown.starts_with("Fehler in der SQL-Syntax bei"), "{shown}");
        let other = "Operation CREATE USER failed for 'v-app'@'%'".to_owned();
        assert_eq!(without_statement_text(1396, other.clone()), other);
    }
}
