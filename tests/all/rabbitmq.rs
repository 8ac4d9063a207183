//! The built-in RabbitMQ plugin (contract v0.2.0's `http`, public SDK only)
//! against the machine's RabbitMQ and its management API: users with
//! vhost permissions issued through a broker process with Vault's
//! `rabbitmq` fields, logged in with, revoked and gone; rotate-root.

use broker_tests::{rabbitmq_url, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::Broker;

/// A management-API request as `user`; its status and JSON body.
async fn api(
    user: &str,
    password: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", rabbitmq_url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, url).basic_auth(user, Some(password));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ's management API must run (.ci/run enables it): {e}"));
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// An administrator for one test, made as guest.
async fn admin_user() -> (String, String) {
    let name = unique("broker-admin");
    let password = format!("Pw-{}", unique("x"));
    let (status, _) = api(
        "guest",
        "guest",
        "PUT",
        &format!("/api/users/{name}"),
        Some(json!({ "password": password, "tags": "administrator" })),
    )
    .await;
    assert!(status.is_success(), "{status}");
    (name, password)
}

#[tokio::test]
async fn users_are_issued_with_vhost_permissions_log_in_and_are_gone_after_revoke() {
    let broker = Broker::start().await;
    let (admin, admin_password) = admin_user().await;
    broker
        .call(
            "POST",
            "sys/mounts/rabbitmq",
            Some(json!({ "type": "database" })),
        )
        .await;
    // Vault's rabbitmq field names: connection_uri, username, password.
    let (status, body) = broker
        .call(
            "POST",
            "rabbitmq/config/connection",
            Some(json!({
                "plugin_name": "rabbitmq-database-plugin",
                "connection_uri": rabbitmq_url(),
                "username": admin,
                "password": admin_password,
                "allowed_roles": "*",
            })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = broker
        .call(
            "POST",
            "rabbitmq/roles/app",
            Some(json!({
                "db_name": "connection",
                "tags": "management",
                "vhosts": "{\"/\": {\"configure\": \"^app\\\\.\", \"write\": \"^app\\\\.\", \"read\": \".*\"}}",
                "vhost_topics": "{\"/\": {\"amq.topic\": {\"write\": \"^app\\\\.\", \"read\": \".*\"}}}",
            })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");

    let (status, creds) = broker.call("GET", "rabbitmq/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    let password = creds["data"]["password"].as_str().unwrap().to_owned();
    let lease = creds["lease_id"].as_str().unwrap().to_owned();

    // A management-API login as the new user.
    let (status, me) = api(&user, &password, "GET", "/api/whoami", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], user.as_str());
    let (_, permissions) = api(
        "guest",
        "guest",
        "GET",
        &format!("/api/users/{user}/permissions"),
        None,
    )
    .await;
    assert_eq!(permissions[0]["vhost"], "/", "{permissions}");
    assert_eq!(permissions[0]["configure"], "^app\\.", "{permissions}");
    let (_, topics) = api(
        "guest",
        "guest",
        "GET",
        &format!("/api/users/{user}/topic-permissions"),
        None,
    )
    .await;
    assert_eq!(topics[0]["exchange"], "amq.topic", "{topics}");

    // rotate-root: the admin's old password stops working; issuing goes on.
    let (status, body) = broker
        .call("POST", "rabbitmq/rotate-root/connection", None)
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _) = api(&admin, &admin_password, "GET", "/api/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, second) = broker.call("GET", "rabbitmq/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{second}");

    // Revoked: the login is refused and the user is gone.
    let (status, body) = broker
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": lease })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _) = api(&user, &password, "GET", "/api/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api("guest", "guest", "GET", &format!("/api/users/{user}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let second_lease = second["lease_id"].as_str().unwrap();
    broker
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": second_lease })),
        )
        .await;
    api(
        "guest",
        "guest",
        "DELETE",
        &format!("/api/users/{admin}"),
        None,
    )
    .await;
}

#[tokio::test]
async fn a_wrong_admin_password_is_refused_when_the_config_is_written() {
    let broker = Broker::start().await;
    broker
        .call(
            "POST",
            "sys/mounts/rabbitmq",
            Some(json!({ "type": "database" })),
        )
        .await;
    let (status, body) = broker
        .call(
            "POST",
            "rabbitmq/config/connection",
            Some(json!({
                "plugin_name": "rabbitmq-database-plugin",
                "connection_uri": rabbitmq_url(),
                "username": "guest",
                "password": "not-guests-password",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = body.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("not-guests-password"), "{text}");
}

/// hvac's `secrets.rabbitmq` (Vault's rabbitmq engine paths, unchanged)
/// and `secrets.database` with a Redis config: `tests/hvac/test_rabbitmq.py`.
#[tokio::test]
async fn hvac_drives_the_rabbitmq_engine_and_a_redis_config() {
    let broker = Broker::start().await;
    let (admin, admin_password) = admin_user().await;
    let redis_admin = unique("hvac_redis_admin");
    let redis_password = format!("Pw-{}", unique("x"));
    broker_tests::redis_cli(&[
        "ACL",
        "SETUSER",
        &redis_admin,
        "on",
        &format!(">{redis_password}"),
        "~*",
        "&*",
        "+@all",
    ]);
    let (host, port) = broker_tests::redis_addr();
    let port = port.to_string();
    let url = rabbitmq_url();
    crate::hvac::run_hvac_script(
        &broker,
        "test_rabbitmq.py",
        &[
            ("RABBITMQ_URL", url.as_str()),
            ("RABBITMQ_ADMIN", admin.as_str()),
            ("RABBITMQ_PASSWORD", admin_password.as_str()),
            ("REDIS_HOST", host.as_str()),
            ("REDIS_PORT", port.as_str()),
            ("REDIS_ADMIN", redis_admin.as_str()),
            ("REDIS_PASSWORD", redis_password.as_str()),
        ],
    );
    broker_tests::redis_cli(&["ACL", "DELUSER", &redis_admin]);
    api(
        "guest",
        "guest",
        "DELETE",
        &format!("/api/users/{admin}"),
        None,
    )
    .await;
}
