//! The built-in PostgreSQL plugin against a real PostgreSQL that checks
//! passwords (scram-sha-256).

use broker::plugin::{CallContext, Credential, FailureKind, Limits, Plugin, PluginError};
use broker_tests::{
    builtin, connection, pg_admin, pg_connect, pg_target, postgres, request, runtime, unique,
};
use serde_json::json;

const CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

async fn setup() -> (Plugin, CallContext) {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "postgresql-database-plugin").await;
    let s = postgres();
    let ctx = CallContext::new().with_sql(&unique("pg"), pg_target(s, &s.user, &s.password));
    (plugin, ctx)
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

async fn role_exists(name: &str) -> bool {
    let admin = pg_admin().await;
    let rows = admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    !rows.is_empty()
}

#[tokio::test]
async fn issued_login_connects_with_its_password_and_revoke_removes_it() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": [CREATE] });
    let cred = plugin
        .issue(
            &ctx,
            &connection(json!({})),
            &request("readonly", role, "token"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, password) = creds(&cred);
    assert!(user.starts_with("v-token-readonly-"), "{user}");
    assert!(user.len() <= 63);

    let s = postgres();
    let client = pg_connect(s, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("the new login must work: {e}"));
    let one: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(one, 1);
    drop(client);

    let wrong = pg_connect(s, &user, "not-the-password").await;
    assert!(
        wrong.is_err(),
        "a wrong password must be refused (is the server checking passwords?)"
    );

    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!role_exists(&user).await);
    assert!(pg_connect(s, &user, &password).await.is_err());
    // Revoking what is already gone succeeds.
    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn revoke_removes_a_user_that_owns_objects_and_holds_a_session() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": [CREATE, r#"GRANT CREATE ON SCHEMA public TO "{{name}}";"#] });
    let cred = plugin
        .issue(&ctx, &connection(json!({})), &request("owner", role, "t"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, password) = creds(&cred);
    let s = postgres();
    let session = pg_connect(s, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let table = unique("owned");
    session
        .batch_execute(&format!("CREATE TABLE {table} (x int)"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert!(!role_exists(&user).await, "the role must be gone");
    assert!(
        session.query_one("SELECT 1", &[]).await.is_err(),
        "the open session must have been ended"
    );
    let admin = pg_admin().await;
    let owner: String = admin
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = $1",
            &[&table],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(owner, s.user, "objects go to the admin");
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn renew_moves_valid_until() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": CREATE });
    let cred = plugin
        .issue(&ctx, &connection(json!({})), &request("renew", role, "t"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, _) = creds(&cred);
    let later = broker_tests::now() + 7200;
    plugin
        .renew(&ctx, &connection(json!({})), &cred.revocation, later)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = pg_admin().await;
    let until: i64 = admin
        .query_one(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(until, later as i64);
    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_failed_creation_leaves_nothing_behind() {
    let (plugin, ctx) = setup().await;
    let role = json!({ "creation_statements": [CREATE, "GRANT SELECT ON no_such_table_anywhere TO \"{{name}}\""] });
    let template = unique("fail");
    let config = json!({ "username_template": format!("{template}-{{{{random 4}}}}") });
    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "t"))
        .await
        .err();
    match err {
        Some(PluginError::Failed {
            kind: FailureKind::InvalidRequest,
            message,
        }) => {
            assert!(message.contains("no_such_table_anywhere"), "{message}")
        }
        other => panic!("expected the statement's error, got {other:?}"),
    }
    let admin = pg_admin().await;
    let left = admin
        .query(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
            &[&format!("{template}%")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        left.is_empty(),
        "the transaction must have rolled the role back"
    );
}

#[tokio::test]
async fn role_without_statements_is_refused() {
    let (plugin, ctx) = setup().await;
    let err = plugin
        .issue(&ctx, &connection(json!({})), &request("r", json!({}), "t"))
        .await
        .err();
    assert!(
        matches!(&err, Some(PluginError::Failed { kind: FailureKind::InvalidRequest, message }) if message.contains("creation_statements")),
        "{err:?}"
    );
}

#[tokio::test]
async fn verify_connection_tells_bad_credentials_from_a_down_server() {
    let (plugin, ctx) = setup().await;
    plugin
        .verify_connection(&ctx, &connection(json!({})))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let s = postgres();
    let bad = CallContext::new().with_sql(&unique("bad"), pg_target(s, &s.user, "wrong-password"));
    let err = plugin
        .verify_connection(&bad, &connection(json!({})))
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(PluginError::Failed {
                kind: FailureKind::InvalidConfig,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        !format!("{err:?}").contains("wrong-password"),
        "the password leaked into the error"
    );

    let mut down_server = s.clone();
    down_server.port = 1; // nothing listens there
    let down = CallContext::new().with_sql(
        &unique("down"),
        pg_target(&down_server, &s.user, &s.password),
    );
    let err = plugin
        .verify_connection(&down, &connection(json!({})))
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(PluginError::Failed {
                kind: FailureKind::Unavailable,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.as_ref().is_some_and(PluginError::is_retryable));
}

#[tokio::test]
async fn rotate_root_changes_the_admin_password() {
    let admin = pg_admin().await;
    let name = unique("rotadmin");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {name} WITH LOGIN CREATEROLE PASSWORD 'initial-pw'"
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "postgres").await;
    let s = postgres();
    let ctx = CallContext::new().with_sql(&unique("rot"), pg_target(s, &name, "initial-pw"));
    let update = plugin
        .rotate_root(&ctx, &connection(json!({ "username": name })))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let new = update["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no password in {update:?}"));
    assert_ne!(new, "initial-pw");
    assert!(
        pg_connect(s, &name, new).await.is_ok(),
        "the new admin password must work"
    );
    assert!(
        pg_connect(s, &name, "initial-pw").await.is_err(),
        "the old admin password must not"
    );
    // A fresh target with the new password keeps working (a new pool).
    let ctx = CallContext::new().with_sql(&unique("rot"), pg_target(s, &name, new));
    plugin
        .verify_connection(&ctx, &connection(json!({})))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    admin
        .batch_execute(&format!("DROP ROLE {name}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Records revocation data like the lease store would, and checks at that
/// moment that the user does not exist yet.
struct Recorder {
    fail: bool,
    seen: std::sync::Mutex<Vec<(serde_json::Value, bool)>>,
}

impl broker::plugin::RevocationRecorder for Recorder {
    fn record<'a>(
        &'a self,
        revocation: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if self.fail {
                return Err("storage is down".into());
            }
            let user = revocation["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let existed = role_exists(&user).await;
            self.seen
                .lock()
                .map_err(|_| "poisoned".to_string())?
                .push((revocation.clone(), existed));
            Ok(())
        })
    }
}

#[tokio::test]
async fn revocation_data_is_recorded_before_the_user_exists() {
    let (plugin, ctx) = setup().await;
    let recorder = std::sync::Arc::new(Recorder {
        fail: false,
        seen: Default::default(),
    });
    let ctx = ctx.with_recorder(recorder.clone());
    let role = json!({ "creation_statements": CREATE });
    let cred = plugin
        .issue(&ctx, &connection(json!({})), &request("rec", role, "t"))
        .await
        .unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "recorded exactly once");
    assert_eq!(
        seen[0].0, cred.revocation,
        "the recorded data is what revocation gets"
    );
    assert!(
        !seen[0].1,
        "the user must not exist when its revocation is recorded"
    );
    assert!(role_exists(&creds(&cred).0).await);
    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap();
}

#[tokio::test]
async fn nothing_is_created_when_the_lease_cannot_be_recorded() {
    let (plugin, ctx) = setup().await;
    let ctx = ctx.with_recorder(std::sync::Arc::new(Recorder {
        fail: true,
        seen: Default::default(),
    }));
    let template = unique("norec");
    let config = json!({ "username_template": format!("{template}-{{{{random 4}}}}") });
    let role = json!({ "creation_statements": CREATE });
    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "t"))
        .await
        .err();
    assert!(
        matches!(&err, Some(PluginError::Failed { kind: FailureKind::Unavailable, message }) if message.contains("storage is down")),
        "{err:?}"
    );
    let admin = pg_admin().await;
    let left = admin
        .query(
            "SELECT 1 FROM pg_roles WHERE rolname LIKE $1",
            &[&format!("{template}%")],
        )
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "no user may exist without a recorded lease"
    );
}

#[tokio::test]
async fn an_existing_role_is_never_taken_over() {
    let (plugin, ctx) = setup().await;
    let name = unique("taken");
    let admin = pg_admin().await;
    admin
        .batch_execute(&format!("CREATE ROLE \"{name}\""))
        .await
        .unwrap();
    // A template with no random part names the existing role.
    let config = json!({ "username_template": name });
    let role = json!({ "creation_statements": CREATE });
    let err = plugin
        .issue(&ctx, &connection(config), &request("r", role, "t"))
        .await
        .err();
    assert!(
        matches!(&err, Some(PluginError::Failed { kind: FailureKind::InvalidRequest, message }) if message.contains("already exists")),
        "{err:?}"
    );
    assert!(
        role_exists(&name).await,
        "the existing role must be left alone"
    );
    admin
        .batch_execute(&format!("DROP ROLE \"{name}\""))
        .await
        .unwrap();
}

/// A plugin's session changes never reach the next call: settings are
/// reset, and a connection left inside a transaction is not reused.
#[tokio::test]
async fn pooled_connections_carry_no_state_between_calls() {
    use broker::sql::{Pools, SqlValue};
    let s = postgres();
    let target = std::sync::Arc::new(
        pg_target(s, &s.user, &s.password)
            .as_ref()
            .clone()
            .with_max_open_connections(1),
    );
    let pools = Pools::new();
    let key = unique("pool");
    let text = |rows: broker::sql::Rows| match rows.rows[0][0].clone() {
        SqlValue::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    };

    let mut c = pools.connect(&key, &target).await.unwrap();
    let pid = text(c.query("SELECT pg_backend_pid()::text", &[]).await.unwrap());
    c.execute("SET application_name = 'dirty'", &[])
        .await
        .unwrap();
    drop(c);
    let mut c = pools.connect(&key, &target).await.unwrap();
    assert_eq!(
        text(c.query("SELECT pg_backend_pid()::text", &[]).await.unwrap()),
        pid,
        "a clean connection is reused"
    );
    assert_eq!(
        text(
            c.query("SELECT current_setting('application_name')", &[])
                .await
                .unwrap()
        ),
        "broker"
    );

    c.execute("BEGIN", &[]).await.unwrap();
    drop(c);
    let mut c = pools.connect(&key, &target).await.unwrap();
    assert_ne!(
        text(c.query("SELECT pg_backend_pid()::text", &[]).await.unwrap()),
        pid,
        "a connection left in a transaction must not be reused"
    );
}
