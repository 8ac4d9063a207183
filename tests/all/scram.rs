//! SCRAM verifiers: a PostgreSQL connection with `password_authentication
//! = "scram-sha-256"` (the default for new configs) sends the server what
//! it stores for a password, never the password. The issued login works
//! against the harness's scram-only cluster, and with `log_statement =
//! all` the server's log holds the verifier and not the password; with
//! `password`, the same log does hold it (so the check can fail).

use broker_tests::{pg_admin, pg_connect, postgres, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{mount_database, pg_url};
use crate::process::Broker;

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'";

/// The harness cluster's server log (`pg_ctl -l`, beside its data directory).
async fn server_log() -> String {
    let row = pg_admin()
        .await
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap();
    let data: String = row.get(0);
    let log = std::path::Path::new(&data).with_file_name("log");
    std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("read {}: {e}", log.display()))
}

/// A superuser of this test's own whose statements the server logs, and a
/// config `name` connecting as it; `authentication` is the field's value
/// (`None`: left out).
async fn logged_config(b: &Broker, name: &str, authentication: Option<&str>) {
    let admin = unique("scram_admin");
    pg_admin()
        .await
        .batch_execute(&format!(
            "CREATE ROLE \"{admin}\" WITH LOGIN SUPERUSER PASSWORD 'admin-Pw-1';
             ALTER ROLE \"{admin}\" SET log_statement = 'all'"
        ))
        .await
        .unwrap();
    let s = postgres();
    let mut body = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg_url(&s.host, s.port),
        "username": admin,
        "password": "admin-Pw-1",
        "allowed_roles": "*",
    });
    if let (Some(a), Some(fields)) = (authentication, body.as_object_mut()) {
        fields.insert("password_authentication".into(), json!(a));
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("database/config/{name}"),
        Some(body),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("database/roles/{name}"),
        Some(json!({ "db_name": name, "creation_statements": [CREATE] })),
    )
    .await;
}

async fn issue(b: &Broker, role: &str) -> (String, String) {
    let v: Value = b
        .expect(
            StatusCode::OK,
            "GET",
            &format!("database/creds/{role}"),
            None,
        )
        .await;
    (
        v["data"]["username"].as_str().unwrap().to_owned(),
        v["data"]["password"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn scram_verifiers_keep_passwords_off_the_wire_and_out_of_the_log() {
    let b = Broker::start().await;
    mount_database(&b).await;

    // New configs send verifiers by default, and say so.
    logged_config(&b, "scram", None).await;
    let config = b
        .expect(StatusCode::OK, "GET", "database/config/scram", None)
        .await;
    assert_eq!(
        config["data"]["connection_details"]["password_authentication"],
        json!("scram-sha-256")
    );
    let (user, password) = issue(&b, "scram").await;
    let login = pg_connect(postgres(), &user, &password)
        .await
        .expect("the issued login works on a scram-only server");
    drop(login);
    let log = server_log().await;
    assert!(
        log.lines()
            .any(|l| l.contains(&user) && l.contains("SCRAM-SHA-256$4096:")),
        "the server was sent a verifier for {user}"
    );
    assert!(
        !log.contains(&password),
        "the password is in the server's log"
    );

    // With `password`, it is sent as it is: the check above can fail.
    logged_config(&b, "plain", Some("password")).await;
    let (user, password) = issue(&b, "plain").await;
    assert!(pg_connect(postgres(), &user, &password).await.is_ok());
    assert!(server_log().await.contains(&password));

    // Anything else is refused, naming the field.
    let (status, body) = b
        .call(
            "POST",
            "database/config/plain",
            Some(json!({ "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://x@127.0.0.1:1/x", "verify_connection": false,
                "password_authentication": "md5" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string().contains("password_authentication"),
        "{body}"
    );
}
