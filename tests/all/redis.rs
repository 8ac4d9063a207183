//! The built-in Redis plugin (contract v0.2.0, public SDK only) against the
//! machine's Redis: ACL users issued, logged in to with `redis-cli`,
//! revoked, gone; and the whole path through a broker process, Vault's
//! `redis-database-plugin` fields, rotate-root included.

use broker::plugin::{CallContext, Limits};
use broker_tests::{builtin, connection, redis_cli, redis_target, request, runtime, unique};
use reqwest::StatusCode;
use serde_json::json;

use crate::process::Broker;

fn auth(user: &str, password: &str, command: &[&str]) -> String {
    let mut args = vec!["--user", user, "--pass", password];
    args.extend(command);
    redis_cli(&args)
}

#[tokio::test]
async fn an_acl_user_is_issued_logs_in_with_its_rules_and_is_gone_after_revoke() {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "redis-database-plugin").await;
    assert_eq!(plugin.info().api_version, "0.2.0");
    let ctx = CallContext::new().with_redis(&unique("redis"), redis_target(None, None));
    let key = unique("k");
    redis_cli(&["SET", &key, "hello"]);
    let role = json!({ "creation_statements": "[\"~*\", \"+@read\", \"+ping\"]" });
    let cred = plugin
        .issue(
            &ctx,
            &connection(json!({})),
            &request("reader", role, "token"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let user = cred.data["username"].as_str().unwrap().to_owned();
    let password = cred.data["password"].as_str().unwrap().to_owned();
    assert!(user.starts_with("v_token_reader_"), "{user}");

    // redis-cli AUTH as the new user: reads work, writes are refused.
    assert_eq!(auth(&user, &password, &["PING"]), "PONG");
    assert_eq!(auth(&user, &password, &["GET", &key]), "hello");
    assert!(auth(&user, &password, &["SET", &key, "x"]).contains("NOPERM"));
    assert!(auth(&user, "wrong-password", &["PING"]).contains("WRONGPASS"));

    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(auth(&user, &password, &["PING"]).contains("WRONGPASS"));
    assert_eq!(redis_cli(&["ACL", "GETUSER", &user]), "");
    // Revoking again finds nothing, and succeeds.
    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    redis_cli(&["DEL", &key]);
}

#[tokio::test]
async fn a_role_cannot_choose_the_password() {
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "redis").await;
    let ctx = CallContext::new().with_redis(&unique("redis"), redis_target(None, None));
    for rules in [
        json!([">known-password", "+@all"]),
        json!(["nopass", "+@all"]),
    ] {
        let e = plugin
            .issue(
                &ctx,
                &connection(json!({})),
                &request("r", json!({ "creation_statements": rules }), "t"),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("not allowed in a role"), "{e}");
        assert!(!e.contains("known-password"), "{e}");
    }
}

/// An admin ACL user for one test, made with the default user.
fn admin_user() -> (String, String) {
    let name = unique("broker_admin");
    let password = format!("Pw-{}", unique("x"));
    let out = redis_cli(&[
        "ACL",
        "SETUSER",
        &name,
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ]);
    assert_eq!(out, "OK");
    (name, password)
}

#[tokio::test]
async fn through_the_api_with_vaults_fields_and_rotate_root() {
    let broker = Broker::start().await;
    let (admin, admin_password) = admin_user();
    let (host, port) = broker_tests::redis_addr();
    assert_eq!(
        broker
            .call(
                "POST",
                "sys/mounts/database",
                Some(json!({ "type": "database" }))
            )
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = broker
        .call(
            "POST",
            "database/config/cache",
            Some(json!({
                "plugin_name": "redis-database-plugin",
                "host": host,
                "port": port,
                "username": admin,
                "password": admin_password,
                "allowed_roles": "*",
            })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    // The password is never read back.
    let (_, config) = broker.call("GET", "database/config/cache", None).await;
    assert!(!config.to_string().contains(&admin_password), "{config}");
    let (status, body) = broker
        .call(
            "POST",
            "database/roles/writer",
            Some(json!({
                "db_name": "cache",
                "creation_statements": "[\"~app:*\", \"+@all\"]",
                "default_ttl": "1h",
            })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");

    let (status, creds) = broker.call("GET", "database/creds/writer", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    let password = creds["data"]["password"].as_str().unwrap().to_owned();
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    let key = format!("app:{}", unique("k"));
    assert_eq!(auth(&user, &password, &["SET", &key, "1"]), "OK");
    assert!(auth(&user, &password, &["SET", "other", "1"]).contains("NOPERM"));

    // The lease records which plugin made it, and at which versions.
    let (_, looked) = broker
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({ "lease_id": lease })),
        )
        .await;
    assert_eq!(
        looked["data"]["plugin"], "redis-database-plugin",
        "{looked}"
    );
    assert_eq!(looked["data"]["contract_version"], "0.2.0", "{looked}");
    assert_eq!(
        looked["data"]["plugin_version"],
        env!("CARGO_PKG_VERSION"),
        "{looked}"
    );

    // vaultrs, unchanged: reads the connection, writes a role, issues
    // from it, and rotates the root; the old admin password stops working
    // and the broker goes on.
    let client = broker.vaultrs();
    let read = vaultrs::database::connection::read(&client, "database", "cache")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.plugin_name, "redis-database-plugin");
    assert_eq!(read.connection_details.username, admin);
    vaultrs::database::role::set(
        &client,
        "database",
        "pinger",
        Some(
            vaultrs::api::database::requests::SetRoleRequest::builder()
                .db_name("cache")
                .creation_statements(vec!["[\"+ping\"]".to_owned()]),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let pinger = vaultrs::database::role::creds(&client, "database", "pinger")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(auth(&pinger.username, &pinger.password, &["PING"]), "PONG");
    vaultrs::database::connection::rotate(&client, "database", "cache")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(auth(&admin, &admin_password, &["PING"]).contains("WRONGPASS"));
    let (status, second) = broker.call("GET", "database/creds/writer", None).await;
    assert_eq!(status, StatusCode::OK, "{second}");

    // Revoked: the user is gone.
    let (status, body) = broker
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": lease })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert!(auth(&user, &password, &["PING"]).contains("WRONGPASS"));
    assert_eq!(redis_cli(&["ACL", "GETUSER", &user]), "");
    let second_lease = second["lease_id"].as_str().unwrap();
    broker
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": second_lease })),
        )
        .await;
    broker
        .call(
            "PUT",
            "sys/leases/revoke-prefix/database/creds/pinger",
            None,
        )
        .await;
    redis_cli(&["DEL", &key]);
    redis_cli(&["ACL", "DELUSER", &admin]);
}
