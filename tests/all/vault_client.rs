//! Compatibility: `vaultrs`, an existing Vault client library, used
//! unchanged against the broker — mounts, the database engine's config,
//! roles and creds, health — with the credentials it gets logging in to a
//! real PostgreSQL.

use broker_tests::{pg_connect, postgres};
use reqwest::StatusCode;
use serde_json::json;
use vaultrs::api::database::requests::{PostgreSQLConnectionRequest, SetRoleRequest};
use vaultrs::{database, sys};

use crate::api::{pg_role_exists, pg_url};
use crate::process::Broker;

#[tokio::test]
async fn vaultrs_drives_the_database_engine() {
    let b = Broker::start().await;
    let client = b.vaultrs();

    let health = sys::health(&client).await.unwrap();
    assert!(health.initialized && !health.sealed);

    sys::mount::enable(&client, "db", "database", None)
        .await
        .unwrap();
    let mounts = sys::mount::list(&client).await.unwrap();
    assert_eq!(mounts["db/"].mount_type, "database");

    let s = postgres();
    database::connection::postgres(
        &client,
        "db",
        "main",
        Some(
            PostgreSQLConnectionRequest::builder()
                .plugin_name("postgresql-database-plugin")
                .connection_url(pg_url(&s.host, s.port))
                .username(&s.user)
                .password(&s.password)
                .allowed_roles(vec!["app".to_owned()]),
        ),
    )
    .await
    .unwrap();
    let connection = database::connection::read(&client, "db", "main")
        .await
        .unwrap();
    assert_eq!(connection.plugin_name, "postgresql-database-plugin");
    assert_eq!(connection.allowed_roles, vec!["app"]);
    assert_eq!(connection.connection_details.username, s.user);
    let listed = database::connection::list(&client, "db").await.unwrap();
    assert_eq!(listed.keys, vec!["main"]);

    database::role::set(
        &client,
        "db",
        "app",
        Some(
            SetRoleRequest::builder()
                .db_name("main")
                .creation_statements(vec![
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';".to_owned(),
                ])
                .default_ttl("30m")
                .max_ttl("1h"),
        ),
    )
    .await
    .unwrap();
    let role = database::role::read(&client, "db", "app").await.unwrap();
    assert_eq!(role.db_name, "main");
    assert_eq!((role.default_ttl, role.max_ttl), (1800, 3600));
    assert_eq!(role.creation_statements.len(), 1);
    assert!(role.revocation_statements.is_empty());
    assert_eq!(
        database::role::list(&client, "db").await.unwrap().keys,
        vec!["app"]
    );

    let creds = database::role::creds(&client, "db", "app").await.unwrap();
    let login = pg_connect(s, &creds.username, &creds.password)
        .await
        .expect("the login vaultrs received works");
    let one: i32 = login.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(login);

    // vaultrs has no lease calls; revoke everything the mount issued.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/db/",
        Some(json!({})),
    )
    .await;
    assert!(!pg_role_exists(&creds.username).await);

    // Vault's errors reach the client as Vault's errors.
    match database::role::creds(&client, "db", "nope").await {
        Err(vaultrs::error::ClientError::APIError { code, errors }) => {
            assert_eq!(code, 400);
            assert!(
                errors.iter().any(|e| e.contains("unknown role")),
                "{errors:?}"
            );
        }
        other => panic!("expected a 400 API error, got {other:?}"),
    }
    sys::mount::disable(&client, "db").await.unwrap();
}
