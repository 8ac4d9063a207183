//! `sys/plugins/catalog`: a third-party plugin runs only once registered by
//! the SHA-256 of its file, which is checked at registration, at reload
//! and at every start; a file changed after registration is refused with
//! a clear error. Built-ins are listed with their versions.

use reqwest::StatusCode;
use serde_json::json;

use crate::contract::{V0_1_0_POSTGRES, V0_1_0_POSTGRES_SHA256};
use crate::process::Broker;

const CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

/// A broker whose plugin directory holds the v0.1.0 fixture as `old-pg.wasm`.
async fn broker() -> (Broker, tempfile::TempDir) {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("old-pg.wasm"), V0_1_0_POSTGRES).unwrap();
    let broker = Broker::start_with_plugin_dir(plugins.path()).await;
    (broker, plugins)
}

async fn register(broker: &Broker, sha256: &str) -> (StatusCode, serde_json::Value) {
    broker
        .call(
            "PUT",
            "sys/plugins/catalog/database/old-pg",
            Some(json!({ "sha256": sha256, "command": "old-pg.wasm", "version": "v0.1.0" })),
        )
        .await
}

/// A database mount with a config and role using the registered plugin.
async fn configure(broker: &Broker) {
    let s = broker_tests::postgres();
    broker
        .call(
            "POST",
            "sys/mounts/database",
            Some(json!({ "type": "database" })),
        )
        .await;
    let url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
        s.host, s.port, s.database
    );
    let (status, body) = broker
        .call(
            "POST",
            "database/config/pg",
            Some(json!({
                "plugin_name": "old-pg",
                "connection_url": url,
                "username": s.user,
                "password": s.password,
                "allowed_roles": "*",
            })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = broker
        .call(
            "POST",
            "database/roles/app",
            Some(json!({ "db_name": "pg", "creation_statements": [CREATE] })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
}

#[tokio::test]
async fn only_a_file_with_the_registered_hash_runs() {
    let (mut broker, plugins) = broker().await;
    // Not registered: nothing in the directory is loaded.
    let (_, all) = broker.call("GET", "sys/plugins/catalog", None).await;
    assert!(!all.to_string().contains("old-pg"), "{all}");

    // Built-ins are listed with their versions.
    let (status, pg) = broker
        .call("GET", "sys/plugins/catalog/database/postgres", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{pg}");
    assert_eq!(pg["data"]["builtin"], true);
    assert_eq!(
        pg["data"]["version"],
        format!("v{}+builtin", env!("CARGO_PKG_VERSION"))
    );
    let (_, list) = broker
        .call("LIST", "sys/plugins/catalog/database", None)
        .await;
    for name in ["postgres", "mysql", "redis", "rabbitmq"] {
        assert!(
            list["data"]["keys"]
                .as_array()
                .unwrap()
                .contains(&json!(name)),
            "{list}"
        );
    }

    // A wrong hash is refused, saying what the file's is.
    let wrong = "0".repeat(64);
    let (status, body) = register(&broker, &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = body.to_string();
    assert!(
        text.contains(V0_1_0_POSTGRES_SHA256) && text.contains("not the sha256 given"),
        "{text}"
    );
    // Missing fields, and a command outside the directory.
    let (status, body) = broker
        .call(
            "PUT",
            "sys/plugins/catalog/database/x",
            Some(json!({ "command": "old-pg.wasm" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("sha256"), "{body}");
    let (status, body) = broker
        .call(
            "PUT",
            "sys/plugins/catalog/database/x",
            Some(json!({ "command": "../old-pg.wasm", "sha256": V0_1_0_POSTGRES_SHA256 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A built-in's name cannot be taken.
    let (status, _) = broker
        .call(
            "PUT",
            "sys/plugins/catalog/database/postgres",
            Some(json!({ "command": "old-pg.wasm", "sha256": V0_1_0_POSTGRES_SHA256 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The right hash: registered, and it works (a v0.1.0 plugin, through the API).
    let (status, body) = register(&broker, V0_1_0_POSTGRES_SHA256).await;
    assert!(status.is_success(), "{status} {body}");
    let (_, read) = broker
        .call("GET", "sys/plugins/catalog/database/old-pg", None)
        .await;
    assert_eq!(read["data"]["sha256"], V0_1_0_POSTGRES_SHA256, "{read}");
    assert_eq!(read["data"]["contract_version"], "0.1.0", "{read}");
    assert_eq!(read["data"]["builtin"], false, "{read}");
    configure(&broker).await;
    let (status, creds) = broker.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    let (_, looked) = broker
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({ "lease_id": lease })),
        )
        .await;
    assert_eq!(looked["data"]["contract_version"], "0.1.0", "{looked}");

    // Registered: still there after a restart.
    broker.restart().await;
    let (status, creds) = broker.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");

    // The file changes: a reload refuses it, and so does a restart.
    let mut tampered = V0_1_0_POSTGRES.to_vec();
    tampered.extend_from_slice(b"\0\0\0\0");
    std::fs::write(plugins.path().join("old-pg.wasm"), &tampered).unwrap();
    let (status, body) = broker
        .call(
            "PUT",
            "sys/plugins/reload/backend",
            Some(json!({ "plugin": "old-pg" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string()
            .contains("the file changed since it was registered"),
        "{body}"
    );
    let (status, body) = broker.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string().contains("registered but refused"),
        "{body}"
    );
    broker.restart().await;
    let (status, body) = broker.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string()
            .contains("the file changed since it was registered"),
        "{body}"
    );
    let (_, read) = broker
        .call("GET", "sys/plugins/catalog/database/old-pg", None)
        .await;
    assert!(
        read["data"]["refused"]
            .as_str()
            .is_some_and(|r| r.contains("SHA-256")),
        "{read}"
    );

    // The original file back: a reload takes it, and the lease revokes.
    std::fs::write(plugins.path().join("old-pg.wasm"), V0_1_0_POSTGRES).unwrap();
    let (status, body) = broker
        .call(
            "PUT",
            "sys/plugins/reload/backend",
            Some(json!({ "plugin": "old-pg" })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = broker
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": lease })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");

    // Deregistered: gone from the catalog.
    let (status, _) = broker
        .call("DELETE", "sys/plugins/catalog/database/old-pg", None)
        .await;
    assert!(status.is_success());
    let (status, _) = broker
        .call("GET", "sys/plugins/catalog/database/old-pg", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = broker
        .call("DELETE", "sys/plugins/catalog/database/postgres", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "built-ins stay");
}

#[tokio::test]
async fn registering_needs_sudo() {
    let (broker, _plugins) = broker().await;
    let (_, created) = broker
        .call(
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["default"] })),
        )
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap();
    let (status, _) = broker
        .call_as(
            token,
            "PUT",
            "sys/plugins/catalog/database/old-pg",
            Some(json!({ "sha256": V0_1_0_POSTGRES_SHA256, "command": "old-pg.wasm" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Two nodes on one PostgreSQL: a plugin registered through one is usable
/// through the other within a moment, and gone from it when deregistered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_reaches_the_other_nodes() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("old-pg.wasm"), V0_1_0_POSTGRES).unwrap();
    let first = Broker::start_with_plugins(
        Some(crate::cluster::fresh_storage().await),
        "[cluster]\nnode_id = \"node1\"\n",
        plugins.path(),
    )
    .await;
    let second = first.join("node2").await;
    let (status, body) = register(&first, V0_1_0_POSTGRES_SHA256).await;
    assert!(status.is_success(), "{status} {body}");
    let seen = |present: bool| {
        let second = &second;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let (status, _) = second
                    .call("GET", "sys/plugins/catalog/database/old-pg", None)
                    .await;
                if (status == StatusCode::OK) == present {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "node2 still answers {status} for old-pg"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    seen(true).await;
    configure(&first).await;
    let (status, creds) = second.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let (status, _) = second
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": creds["lease_id"] })),
        )
        .await;
    assert!(status.is_success());
    let (status, _) = first
        .call("DELETE", "sys/plugins/catalog/database/old-pg", None)
        .await;
    assert!(status.is_success());
    seen(false).await;
}
