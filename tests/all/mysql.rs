//! The built-in MySQL plugin against a real MariaDB/MySQL.

use broker::plugin::{CallContext, Credential, FailureKind, Limits, Plugin, PluginError};
use broker_tests::{
    builtin, connection, mysql, mysql_admin, mysql_target, request, runtime, unique,
};
use mysql_async::prelude::Queryable;
use serde_json::json;

const CREATE: &str = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';";

async fn setup() -> (Plugin, CallContext) {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "mysql-database-plugin").await;
    let s = mysql();
    (
        plugin,
        CallContext::new().with_sql(&unique("my"), mysql_target(s, &s.user, &s.password)),
    )
}

fn creds(c: &Credential) -> (String, String) {
    let get = |k: &str| {
        c.data[k]
            .as_str()
            .unwrap_or_else(|| panic!("credential has no {k}"))
            .to_owned()
    };
    (get("username"), get("password"))
}

async fn login(user: &str, password: &str) -> Result<mysql_async::Conn, mysql_async::Error> {
    mysql_async::Conn::new(mysql().mysql_opts(user, password)).await
}

async fn user_exists(name: &str) -> bool {
    let mut admin = mysql_admin().await;
    let n: Option<i64> = admin
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (name,))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    n.unwrap_or(0) > 0
}

#[tokio::test]
async fn issued_login_connects_with_its_password_and_revoke_removes_it() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": [CREATE, "GRANT USAGE ON *.* TO '{{name}}'@'%';"] });
    let cred = plugin
        .issue(
            &ctx,
            &connection(json!({})),
            &request("readonly", role, "token"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, password) = creds(&cred);
    assert!(user.starts_with("v-toke-read-"), "{user}");
    assert_eq!(user.chars().count(), 32);

    let mut conn = login(&user, &password)
        .await
        .unwrap_or_else(|e| panic!("the new login must work: {e}"));
    let one: Option<i64> = conn
        .query_first("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one, Some(1));
    drop(conn);
    assert!(
        login(&user, "not-the-password").await.is_err(),
        "a wrong password must be refused"
    );

    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!user_exists(&user).await);
    assert!(login(&user, &password).await.is_err());
    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn revoke_ends_open_sessions_and_drops_every_host() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": [
        CREATE,
        "CREATE USER '{{name}}'@'localhost' IDENTIFIED BY '{{password}}';",
        "GRANT ALL ON test.* TO '{{name}}'@'%';",
    ] });
    let mut admin = mysql_admin().await;
    admin
        .query_drop("CREATE DATABASE IF NOT EXISTS test")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cred = plugin
        .issue(&ctx, &connection(json!({})), &request("sess", role, "t"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, password) = creds(&cred);
    let mut session = login(&user, &password)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let table = unique("owned");
    session
        .query_drop(format!("CREATE TABLE test.{table} (x int)"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert!(
        !user_exists(&user).await,
        "the account must be gone at every host"
    );
    let after: Result<Option<i64>, _> = session.query_first("SELECT 1").await;
    assert!(after.is_err(), "the open session must have been killed");
    admin
        .query_drop(format!("DROP TABLE test.{table}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_failed_creation_is_rolled_back() {
    let (plugin, ctx) = setup().await;
    let prefix = unique("f").replace('_', "");
    let prefix = &prefix[prefix.len() - 8..];
    let config = json!({ "username_template": format!("{prefix}{{{{random 6}}}}") });
    let role = json!({ "creation_statements": [CREATE, "GRANT SELECT ON no_such_db.no_such_table TO '{{name}}'@'%';"] });
    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "t"))
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(PluginError::Failed {
                kind: FailureKind::InvalidRequest,
                ..
            })
        ),
        "{err:?}"
    );
    let mut admin = mysql_admin().await;
    let n: Option<i64> = admin
        .exec_first(
            "SELECT COUNT(*) FROM mysql.user WHERE User LIKE ?",
            (format!("{prefix}%"),),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        n,
        Some(0),
        "MySQL commits DDL implicitly: the plugin must drop what it made"
    );
}

#[tokio::test]
async fn a_syntax_error_is_reported_without_the_statement() {
    let (plugin, ctx) = setup().await;
    // A typo before the password: MySQL's error quotes the statement from
    // there on. The host cuts the quote, so the operator still learns it is
    // a syntax error (the SDK would otherwise withhold the whole message).
    let role = json!({ "creation_statements": ["CREATE USER '{{name}}'@'%' IDENTIFED BY '{{password}}';"] });
    let err = plugin
        .issue(&ctx, &connection(json!({})), &request("r", role, "t"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("SQL syntax") && err.contains("at line 1"),
        "{err}"
    );
    assert!(
        !err.contains("IDENTIFED BY '"),
        "the statement is echoed: {err}"
    );
}

#[tokio::test]
async fn legacy_variant_keeps_usernames_to_sixteen_characters() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": CREATE });
    let config = json!({ "plugin_name": "mysql-legacy-database-plugin" });
    let cred = plugin
        .issue(
            &ctx,
            &connection(config.clone()),
            &request("legacyrole", role, "t"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, _) = creds(&cred);
    assert_eq!(user.chars().count(), 16, "{user}");
    plugin
        .revoke(&ctx, &connection(config), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn rotate_root_changes_the_admin_password() {
    let mut admin = mysql_admin().await;
    let name = unique("r").replace('_', "");
    let name = name[name.len() - 12..].to_string();
    admin
        .query_drop(format!(
            "CREATE USER '{name}'@'%' IDENTIFIED BY 'initial-pw'"
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // An admin that makes users holds CREATE USER, which MariaDB's ALTER USER needs.
    admin
        .query_drop(format!("GRANT CREATE USER ON *.* TO '{name}'@'%'"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "mysql").await;
    let s = mysql();
    let ctx = CallContext::new().with_sql(&unique("rot"), mysql_target(s, &name, "initial-pw"));
    let update = plugin
        .rotate_root(&ctx, &connection(json!({ "username": name })))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let new = update["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no password in {update:?}"));
    if let Err(e) = login(&name, new).await {
        panic!("the new admin password must work: {e}");
    }
    assert!(
        login(&name, "initial-pw").await.is_err(),
        "the old admin password must not"
    );
    admin
        .query_drop(format!("DROP USER '{name}'@'%'"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `target` allowed one connection, so that two calls in a row share it
/// unless the first one's was closed.
fn single_connection(target: broker::sql::SqlTarget) -> std::sync::Arc<broker::sql::SqlTarget> {
    std::sync::Arc::new(target.with_max_open_connections(1))
}

/// The first column of the first row `sql` returns.
async fn value(c: &mut broker::sql::SqlConn, sql: &str) -> broker::sql::SqlValue {
    c.query(sql, &[]).await.unwrap().rows[0][0].clone()
}

/// Ends a call's hold on `c`; the pool takes it back in the background.
async fn release(c: broker::sql::SqlConn) {
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// A returned connection waits in the pool for the next call, with its
/// session reset, instead of being closed: each plugin call must not pay a
/// new connection and its authentication.
#[tokio::test]
async fn pooled_connections_are_reused_and_reset() {
    use broker::sql::{Pools, SqlValue};
    let s = mysql();
    let target = single_connection(mysql_target(s, &s.user, &s.password).as_ref().clone());
    let pools = Pools::new();
    let key = unique("pool");

    let mut c = pools.connect(&key, &target).await.unwrap();
    let id = value(&mut c, "SELECT CONNECTION_ID()").await;
    c.execute("SET @left_behind = 'dirty'", &[]).await.unwrap();
    release(c).await;
    let mut c = pools.connect(&key, &target).await.unwrap();
    assert_eq!(
        value(&mut c, "SELECT CONNECTION_ID()").await,
        id,
        "the connection was closed instead of reused"
    );
    assert_eq!(
        value(&mut c, "SELECT @left_behind").await,
        SqlValue::Null,
        "session state crossed calls"
    );
}

/// A `USE` in one call's statements does not carry over to the next call
/// on a pooled connection: MySQL's session reset keeps the default
/// database, so the connection is closed instead of pooled.
#[tokio::test]
async fn a_database_chosen_with_use_does_not_outlive_the_call() {
    use broker::sql::{Dialect, Pools, SqlTarget, SqlValue};
    let s = mysql();
    let target = single_connection(mysql_target(s, &s.user, &s.password).as_ref().clone());
    let pools = Pools::new();
    let key = unique("use");

    let mut c = pools.connect(&key, &target).await.unwrap();
    assert_eq!(value(&mut c, "SELECT DATABASE()").await, SqlValue::Null);
    c.execute("USE mysql", &[]).await.unwrap();
    release(c).await;
    let mut c = pools.connect(&key, &target).await.unwrap();
    assert_eq!(
        value(&mut c, "SELECT DATABASE()").await,
        SqlValue::Null,
        "the last call's USE carried over"
    );
    release(c).await;

    // A URL that names a database keeps it on every connection handed out.
    let named = single_connection(SqlTarget::new(
        Dialect::MySql,
        &format!(
            "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/mysql",
            s.host, s.port
        ),
        Some(&s.user),
        Some(&s.password),
    ));
    let key = unique("use-named");
    let mut c = pools.connect(&key, &named).await.unwrap();
    c.execute("USE information_schema", &[]).await.unwrap();
    release(c).await;
    let mut c = pools.connect(&key, &named).await.unwrap();
    assert_eq!(
        value(&mut c, "SELECT DATABASE()").await,
        SqlValue::Text("mysql".into()),
        "the configured database is not the one in use"
    );
}

/// A username template that names an existing account is refused before
/// anything is recorded or created, so no revocation can ever drop it. The
/// name holds a quote: the check quotes it, as every statement does.
#[tokio::test]
async fn an_existing_account_is_never_taken_over() {
    let (plugin, ctx) = setup().await;
    let name = format!("{}'x", unique("taken"));
    let mut admin = mysql_admin().await;
    let quoted = name.replace('\'', "''");
    admin
        .query_drop(format!("CREATE USER '{quoted}'@'%'"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A template with no random part names the existing account.
    let config = json!({ "username_template": name });
    let role = json!({ "creation_statements": [CREATE] });
    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "t"))
        .await
        .err();
    assert!(
        matches!(&err, Some(PluginError::Failed { kind: FailureKind::InvalidRequest, message }) if message.contains("already exists")),
        "{err:?}"
    );
    assert!(
        user_exists(&name).await,
        "the existing account must be left alone"
    );
    admin
        .query_drop(format!("DROP USER '{quoted}'@'%'"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
