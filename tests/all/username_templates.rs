//! Username templates in Vault's syntax, end to end: a config's
//! `username_template` is checked when written, and the names the plugins
//! render from it fit the database's limit and log in.

use broker_tests::{mysql, pg_connect, postgres};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{mount_database, mysql_user_exists, pg_role_exists, pg_url};
use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// A token whose display name is `token-<name>`, able to do anything.
async fn token_named(b: &Broker, name: &str) -> String {
    let created = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({ "display_name": name, "policies": ["root"] })),
        )
        .await;
    created["auth"]["client_token"].as_str().unwrap().to_owned()
}

/// Writes PostgreSQL config `name` with `template`; the status and body.
async fn pg_config(b: &Broker, name: &str, template: Value) -> (StatusCode, Value) {
    let s = postgres();
    b.call(
        "POST",
        &format!("database/config/{name}"),
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg_url(&s.host, s.port),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "username_template": template,
        })),
    )
    .await
}

#[tokio::test]
async fn a_template_that_cannot_work_is_refused_when_the_config_is_written() {
    let b = Broker::start().await;
    mount_database(&b).await;
    for (template, reason) in [
        (
            json!("v-{{.DisplayName | truncate 0}}"),
            "the length must be at least 1",
        ),
        (
            json!("v-{{.RoleName | upper}}"),
            "unknown function \"upper\"",
        ),
        (json!("v-{{ .RoleName"), "no closing '}}'"),
        (
            json!("{{ printf \"%s-%s\" .RoleName }}"),
            "2 verbs but 1 values",
        ),
        (json!("{{ timestamp }}"), "timestamp takes a Go layout"),
        (json!(["v-{{random 8}}"]), "must be a string"),
    ] {
        let (status, body) = pg_config(&b, "pg", template.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{template}: {body}");
        let e = first_error(&body);
        assert!(e.starts_with("username_template"), "{template}: {e}");
        assert!(e.contains(reason), "{template}: {e}");
        let (status, _) = b.call("GET", "database/config/pg", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{template}: stored anyway");
    }
    // Vault's own default for PostgreSQL is taken as Vault writes it.
    let vault_default = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
    let (status, body) = pg_config(&b, "pg", json!(vault_default)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn postgres_names_follow_vaults_functions_and_fit_63_bytes() {
    let b = Broker::start().await;
    mount_database(&b).await;
    let tag = broker_tests::unique("u").replace('_', "");
    let prefix = format!("u{}", &tag[tag.len() - 8..]);
    let template = format!(
        r#"{prefix}-{{{{ printf "%s-%s" (.RoleName | uppercase | replace "-" "_" | truncate 7) (random 12) }}}}-{{{{ timestamp "20060102" }}}}-{{{{ .DisplayName | truncate_sha256 12 }}}}"#
    );
    let (status, body) = pg_config(&b, "pg", json!(template)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/read-only-app",
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE] })),
    )
    .await;
    let token = token_named(&b, "ci-pipeline-for-billing").await;
    let (status, creds) = b
        .call_as(&token, "GET", "database/creds/read-only-app", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let user = creds["data"]["username"].as_str().unwrap();
    let password = creds["data"]["password"].as_str().unwrap();
    // prefix-READ_ON-<12 random>-<yyyymmdd>-<display name, hashed to 12>
    let parts: Vec<&str> = user.split('-').collect();
    assert_eq!(parts[0], prefix, "{user}");
    assert_eq!(parts[1], "READ_ON", "{user}");
    assert!(
        parts[2].len() == 12 && parts[2].chars().all(|c| c.is_ascii_alphanumeric()),
        "{user}"
    );
    assert!(
        parts[3].len() == 8 && parts[3].chars().all(|c| c.is_ascii_digit()),
        "{user}"
    );
    // "token-ci-pipeline-for-billing" is longer than 12: its first 4
    // characters and 8 hex digits.
    assert!(
        parts[4].starts_with("toke") && parts[4].len() == 12,
        "{user}"
    );
    assert_eq!(parts.len(), 5, "{user}");
    assert!(user.len() <= 63);
    let client = pg_connect(postgres(), user, password)
        .await
        .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"));
    let me: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(me, user);
    drop(client);

    // A name that would be longer than PostgreSQL's 63 bytes is cut to
    // them, and still logs in.
    let long = format!("{prefix}-{{{{ .RoleName }}}}-{{{{ random 64 }}}}-{{{{ uuid }}}}");
    let (status, body) = pg_config(&b, "long", json!(long)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/long",
        Some(json!({ "db_name": "long", "creation_statements": [PG_CREATE] })),
    )
    .await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/long", None)
        .await;
    let long_user = creds["data"]["username"].as_str().unwrap();
    assert_eq!(long_user.len(), 63, "{long_user}");
    assert!(long_user.starts_with(&format!("{prefix}-long-")));
    pg_connect(
        postgres(),
        long_user,
        creds["data"]["password"].as_str().unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("{long_user} cannot log in: {e}"));

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds",
        None,
    )
    .await;
    assert!(!pg_role_exists(user).await);
    assert!(!pg_role_exists(long_user).await);
}

#[tokio::test]
async fn mysql_names_fit_32_characters() {
    let b = Broker::start().await;
    mount_database(&b).await;
    let s = mysql();
    let tag = broker_tests::unique("m").replace('_', "");
    let prefix = format!("m{}", &tag[tag.len() - 6..]);
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/maria",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", s.host, s.port),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "username_template": format!(
                "{prefix}_{{{{ .DisplayName | lowercase | replace \"-\" \"\" | truncate_sha256 10 }}}}_{{{{ random 20 }}}}"
            ),
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({
            "db_name": "maria",
            "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        })),
    )
    .await;
    let token = token_named(&b, "CI-Pipeline-For-Billing").await;
    let (status, creds) = b.call_as(&token, "GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let user = creds["data"]["username"].as_str().unwrap();
    let password = creds["data"]["password"].as_str().unwrap();
    // m<6>_<10: "to" and 8 hex digits>_<random, cut at 32>
    assert_eq!(user.chars().count(), 32, "{user}");
    let parts: Vec<&str> = user.split('_').collect();
    assert_eq!(parts[0], prefix, "{user}");
    assert!(parts[1].starts_with("to") && parts[1].len() == 10, "{user}");
    mysql_async::Conn::new(s.mysql_opts(user, password))
        .await
        .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"));
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/app",
        None,
    )
    .await;
    assert!(!mysql_user_exists(user).await);
}
