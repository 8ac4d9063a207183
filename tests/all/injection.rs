//! Hostile values in roles and requests cannot inject SQL: each gives a
//! correctly quoted statement (the user exists under exactly that name and
//! can log in) or a clear error that creates nothing.

use broker::plugin::{CallContext, FailureKind, Limits, PluginError};
use broker_tests::{
    builtin, connection, mysql, mysql_admin, mysql_target, pg_admin, pg_connect, pg_target,
    postgres, request, runtime, unique,
};
use mysql_async::prelude::Queryable;
use serde_json::json;

/// Quotes of every kind, a backslash, a statement break and a comment opener.
const HOSTILE: &str = r#"q'd"b\s;x`-- "#;

#[tokio::test]
async fn postgres_quotes_hostile_names() {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "postgres").await;
    let s = postgres();
    let ctx = CallContext::new().with_sql(&unique("inj"), pg_target(s, &s.user, &s.password));
    let role = json!({ "creation_statements": [
        r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#,
        // A bare placeholder is quoted as a whole identifier.
        "COMMENT ON ROLE {{name}} IS 'made by the broker';",
    ] });
    let tag = unique("");
    let config =
        json!({ "username_template": format!("{{{{display_name}}}}{}", &tag[tag.len() - 6..]) });
    let cred = plugin
        .issue(
            &ctx,
            &connection(config.clone()),
            &request("r", role.clone(), HOSTILE),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let user = cred.data["username"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let password = cred.data["password"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(user.starts_with(HOSTILE), "{user:?}");

    let admin = pg_admin().await;
    let found = admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        found.len(),
        1,
        "the role must exist under exactly the hostile name"
    );
    let client = pg_connect(s, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let me: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(me, user);
    drop(client);

    plugin
        .revoke(&ctx, &connection(config.clone()), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let found = admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(found.is_empty());

    // NUL cannot be quoted: a clear error, and nothing is created.
    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "nul\0name"))
        .await
        .err();
    match err {
        Some(PluginError::Failed {
            kind: FailureKind::InvalidRequest,
            message,
        }) => assert!(message.contains("NUL"), "{message}"),
        other => panic!("expected a NUL error, got {other:?}"),
    }
    let left = admin
        .query("SELECT 1 FROM pg_roles WHERE rolname LIKE 'nul%'", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty());
}

#[tokio::test]
async fn postgres_refuses_placeholders_in_comments() {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "postgres").await;
    let s = postgres();
    let ctx = CallContext::new().with_sql(&unique("inj"), pg_target(s, &s.user, &s.password));
    let role = json!({ "creation_statements": "CREATE ROLE \"{{name}}\"; -- for {{name}}" });
    let err = plugin
        .issue(&ctx, &connection(json!({})), &request("r", role, "t"))
        .await
        .err();
    assert!(
        matches!(&err, Some(PluginError::Failed { kind: FailureKind::InvalidRequest, message }) if message.contains("comment")),
        "{err:?}"
    );
}

#[tokio::test]
async fn mysql_quotes_hostile_names() {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "mysql").await;
    let s = mysql();
    let ctx = CallContext::new().with_sql(&unique("inj"), mysql_target(s, &s.user, &s.password));
    let role = json!({ "creation_statements": [
        "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        // Double-quoted strings and bare placeholders are quoted too.
        "GRANT USAGE ON *.* TO \"{{name}}\"@'%';",
        "ALTER USER {{name}}@'%' PASSWORD EXPIRE NEVER;",
    ] });
    let tag = unique("");
    let config =
        json!({ "username_template": format!("{{{{display_name}}}}{}", &tag[tag.len() - 6..]) });
    let cred = plugin
        .issue(
            &ctx,
            &connection(config.clone()),
            &request("r", role.clone(), HOSTILE),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let user = cred.data["username"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let password = cred.data["password"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(user.starts_with(HOSTILE), "{user:?}");

    let mut admin = mysql_admin().await;
    let n: Option<i64> = admin
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (&user,))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        n,
        Some(1),
        "the account must exist under exactly the hostile name"
    );
    let mut conn = mysql_async::Conn::new(s.mysql_opts(&user, &password))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let me: Option<String> = conn
        .query_first("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(me.as_deref(), Some(user.as_str()));
    drop(conn);

    plugin
        .revoke(&ctx, &connection(config.clone()), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let n: Option<i64> = admin
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (&user,))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, Some(0));

    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "nul\0name"))
        .await
        .err();
    match err {
        Some(PluginError::Failed {
            kind: FailureKind::InvalidRequest,
            message,
        }) => assert!(message.contains("NUL"), "{message}"),
        other => panic!("expected a NUL error, got {other:?}"),
    }
}
