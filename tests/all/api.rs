//! The HTTP API end to end: a broker process set up from a configuration
//! file, a real HTTP client over TCP, real PostgreSQL and MariaDB. Vault's
//! paths, envelope and status codes.

use std::time::{Duration, Instant};

use broker_tests::{mysql, mysql_admin, pg_admin, pg_connect, postgres};
use mysql_async::prelude::Queryable;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Vault's URL form for the test PostgreSQL at `host:port`.
pub fn pg_url(host: &str, port: u16) -> String {
    format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{}?sslmode=disable",
        postgres().database
    )
}

/// Mounts the database engine at `database/`.
pub async fn mount_database(b: &Broker) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({ "type": "database" })),
    )
    .await;
}

/// `database/config/pg` on the test PostgreSQL (at `url`), and role
/// `readonly` with TTL 1h, max 2h.
pub async fn setup_postgres_at(b: &Broker, url: &str, roles: &str) {
    mount_database(b).await;
    let s = postgres();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": url,
            "username": s.user,
            "password": s.password,
            "allowed_roles": roles,
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/readonly",
        Some(json!({
            "db_name": "pg",
            "creation_statements": [PG_CREATE],
            "default_ttl": "1h",
            "max_ttl": "2h",
        })),
    )
    .await;
}

async fn setup_postgres(b: &Broker, roles: &str) {
    let s = postgres();
    setup_postgres_at(b, &pg_url(&s.host, s.port), roles).await;
}

/// Whether PostgreSQL has a role `name`.
pub async fn pg_role_exists(name: &str) -> bool {
    !pg_admin()
        .await
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .unwrap()
        .is_empty()
}

/// Mounts `database/`, configures `pg` with usernames starting with a
/// prefix unique to the caller, and role `role` with `creation_statements`.
/// Returns the prefix, for [`pg_users_with_prefix`].
pub async fn setup_tagged(b: &Broker, role: &str, creation_statements: Value) -> String {
    let tag = broker_tests::unique("t").replace('_', "");
    let prefix = format!("t{}", &tag[tag.len() - 9..]);
    let s = postgres();
    mount_database(b).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg_url(&s.host, s.port),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "username_template": format!("{prefix}-{{{{random 10}}}}"),
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("database/roles/{role}"),
        Some(json!({ "db_name": "pg", "creation_statements": creation_statements })),
    )
    .await;
    prefix
}

/// How many PostgreSQL roles start with `prefix`.
pub async fn pg_users_with_prefix(prefix: &str) -> i64 {
    pg_admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
            &[&format!("{prefix}%")],
        )
        .await
        .unwrap()
        .get(0)
}

pub async fn mysql_user_exists(name: &str) -> bool {
    let n: Option<i64> = mysql_admin()
        .await
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (name,))
        .await
        .unwrap();
    n.unwrap_or(0) > 0
}

fn creds_of(body: &Value) -> (String, String, String) {
    (
        body["lease_id"].as_str().unwrap().to_owned(),
        body["data"]["username"].as_str().unwrap().to_owned(),
        body["data"]["password"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn database_credentials_end_to_end() {
    let b = Broker::start().await;
    setup_postgres(&b, "readonly").await;

    // The admin password is never returned.
    let config = b
        .expect(StatusCode::OK, "GET", "database/config/pg", None)
        .await;
    assert!(
        !config.to_string().contains(&postgres().password),
        "{config}"
    );
    assert_eq!(config["data"]["plugin_name"], "postgresql-database-plugin");

    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    for field in [
        "request_id",
        "lease_id",
        "lease_duration",
        "renewable",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(
            creds.get(field).is_some(),
            "envelope lacks {field}: {creds}"
        );
    }
    assert_eq!(creds["lease_duration"], 3600);
    assert_eq!(creds["renewable"], true);
    let (lease_id, user, password) = creds_of(&creds);
    assert!(lease_id.starts_with("database/creds/readonly/"));
    let client = pg_connect(postgres(), &user, &password)
        .await
        .expect("the issued login works");
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);

    // Renew: capped at max_ttl (2h).
    let renewed = b
        .expect(
            StatusCode::OK,
            "PUT",
            "sys/leases/renew",
            Some(json!({ "lease_id": lease_id, "increment": "5h" })),
        )
        .await;
    let duration = renewed["lease_duration"].as_i64().unwrap();
    assert!((7190..=7200).contains(&duration), "{renewed}");
    // The lease id in the path works too, with seconds as the increment.
    let renewed = b
        .expect(
            StatusCode::OK,
            "PUT",
            &format!("sys/leases/renew/{lease_id}"),
            Some(json!({ "increment": 600 })),
        )
        .await;
    let duration = renewed["lease_duration"].as_i64().unwrap();
    assert!((590..=600).contains(&duration), "{renewed}");

    let lookup = b
        .expect(
            StatusCode::OK,
            "PUT",
            "sys/leases/lookup",
            Some(json!({ "lease_id": lease_id })),
        )
        .await;
    assert_eq!(lookup["data"]["id"], lease_id.as_str());
    assert_eq!(lookup["data"]["state"], "active");
    let listed = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds/readonly/",
            None,
        )
        .await;
    let id_tail = lease_id.rsplit('/').next().unwrap();
    assert_eq!(listed["data"]["keys"], json!([id_tail]));
    let folders = b
        .expect(
            StatusCode::OK,
            "GET",
            "sys/leases/lookup/database/creds?list=true",
            None,
        )
        .await;
    assert_eq!(folders["data"]["keys"], json!(["readonly/"]));

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    assert!(!pg_role_exists(&user).await);
    assert!(pg_connect(postgres(), &user, &password).await.is_err());
    let (status, body) = b
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({ "lease_id": lease_id })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("lease not found"), "{body}");
}

#[tokio::test]
async fn mysql_credentials_end_to_end() {
    let b = Broker::start().await;
    mount_database(&b).await;
    let s = mysql();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/maria",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", s.host, s.port),
            "username": s.user,
            "password": s.password,
            "allowed_roles": ["app"],
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({
            "db_name": "maria",
            "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT USAGE ON *.* TO '{{name}}'@'%';",
            "default_ttl": 300,
            "max_ttl": "10m",
        })),
    )
    .await;
    let roles = b
        .expect(StatusCode::OK, "LIST", "database/roles", None)
        .await;
    assert_eq!(roles["data"]["keys"], json!(["app"]));

    let mut users = Vec::new();
    for _ in 0..2 {
        let creds = b
            .expect(StatusCode::OK, "GET", "database/creds/app", None)
            .await;
        assert_eq!(creds["lease_duration"], 300);
        let (lease_id, user, password) = creds_of(&creds);
        let mut conn = mysql_async::Conn::new(s.mysql_opts(&user, &password))
            .await
            .expect("the issued MySQL login works");
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        drop(conn);
        users.push((lease_id, user));
    }
    // Renew past max_ttl: capped at 10 minutes.
    let renewed = b
        .expect(
            StatusCode::OK,
            "PUT",
            "sys/leases/renew",
            Some(json!({ "lease_id": users[0].0, "increment": "1h" })),
        )
        .await;
    let duration = renewed["lease_duration"].as_i64().unwrap();
    assert!((590..=600).contains(&duration), "{renewed}");

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        &format!("sys/leases/revoke/{}", users[0].0),
        None,
    )
    .await;
    assert!(!mysql_user_exists(&users[0].1).await);
    assert!(mysql_user_exists(&users[1].1).await);
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/app",
        None,
    )
    .await;
    assert!(!mysql_user_exists(&users[1].1).await);
}

#[tokio::test]
async fn revoke_prefix_and_deleted_roles_leave_no_user_behind() {
    let b = Broker::start().await;
    setup_postgres(&b, "*").await;
    let mut users = Vec::new();
    for _ in 0..2 {
        let creds = b
            .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
            .await;
        users.push(creds["data"]["username"].as_str().unwrap().to_owned());
    }
    // Deleting the role and the connection config does not orphan the users
    // (a known failure of Vault, hashicorp/vault#4782).
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "database/roles/readonly",
        None,
    )
    .await;
    b.expect(StatusCode::NO_CONTENT, "DELETE", "database/config/pg", None)
        .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/readonly",
        None,
    )
    .await;
    for u in &users {
        assert!(!pg_role_exists(u).await, "{u} survived");
    }
}

#[tokio::test]
async fn expired_leases_are_revoked_by_the_worker() {
    let b = Broker::start().await;
    setup_postgres(&b, "*").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/brief",
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": "2s" })),
    )
    .await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/brief", None)
        .await;
    assert_eq!(creds["lease_duration"], 2);
    let (lease_id, user, _) = creds_of(&creds);
    assert!(pg_role_exists(&user).await);
    // The worker runs every second: the user goes within a few.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg_role_exists(&user).await {
        assert!(Instant::now() < deadline, "{user} outlived its lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The record goes just after the user (revocation drops the user
    // first): the lease is gone too, a moment later at most.
    loop {
        let (status, _) = b
            .call(
                "PUT",
                "sys/leases/lookup",
                Some(json!({ "lease_id": lease_id })),
            )
            .await;
        if status == StatusCode::BAD_REQUEST {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the lease outlived its user");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mount_tune_changes_the_ttls_of_new_leases() {
    let b = Broker::start().await;
    setup_postgres(&b, "*").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/plain",
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE] })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database/tune",
        Some(json!({ "default_lease_ttl": "15m", "max_lease_ttl": "1h", "description": "app databases" })),
    )
    .await;
    let tune = b
        .expect(StatusCode::OK, "GET", "sys/mounts/database/tune", None)
        .await;
    assert_eq!(tune["data"]["default_lease_ttl"], 900);
    assert_eq!(tune["data"]["max_lease_ttl"], 3600);
    let mounts = b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    assert_eq!(mounts["data"]["database/"]["description"], "app databases");

    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/plain", None)
        .await;
    assert_eq!(creds["lease_duration"], 900);
    let (lease_id, user, _) = creds_of(&creds);
    let renewed = b
        .expect(
            StatusCode::OK,
            "PUT",
            "sys/leases/renew",
            Some(json!({ "lease_id": lease_id, "increment": "3h" })),
        )
        .await;
    assert!(
        renewed["lease_duration"].as_i64().unwrap() <= 3600,
        "{renewed}"
    );

    let (status, body) = b
        .call(
            "POST",
            "sys/mounts/database/tune",
            Some(json!({ "default_lease_ttl": "2h" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "default above max: {body}");
    let (status, _) = b
        .call(
            "POST",
            "sys/mounts/nowhere/tune",
            Some(json!({ "max_lease_ttl": 5 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Disabling the mount revokes its leases.
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/mounts/database",
        None,
    )
    .await;
    assert!(!pg_role_exists(&user).await);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let b = Broker::start().await;
    setup_postgres(&b, "readonly").await;

    // No token, wrong token; Authorization: Bearer works too.
    let url = format!("{}/database/creds/readonly", b.base);
    let resp = b.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = b
        .http
        .get(&url)
        .header("X-Vault-Token", "brk.not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(first_error(&body), "permission denied");
    let resp = b
        .http
        .get(&url)
        .header("Authorization", format!("Bearer {}", b.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (status, body) = b.call("GET", "database/creds/nope", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(first_error(&body).contains("unknown role"), "{body}");

    let resp = b
        .http
        .post(format!("{}/database/roles/x", b.base))
        .header("X-Vault-Token", &b.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(first_error(&body).contains("JSON"), "{body}");

    let (status, body) = b
        .call(
            "POST",
            "database/roles/x",
            Some(json!({ "db_name": "pg", "default_ttl": "soon" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(first_error(&body).contains("invalid duration"), "{body}");
    let (status, _) = b
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({ "lease_id": "database/creds/readonly/x", "increment": "-1h" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let huge = "x".repeat(2 << 20);
    // A client of its own: the server answers early and drops the
    // connection, which a shared pool would otherwise hand out again.
    let resp = reqwest::Client::new()
        .post(format!("{}/database/roles/x", b.base))
        .header("X-Vault-Token", &b.token)
        .body(format!("{{\"db_name\":\"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A secret of the wrong type is refused without being quoted back.
    let (status, body) = b
        .call(
            "POST",
            "database/config/pg2",
            Some(json!({ "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://x", "password": 987654321 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("987654321"), "{body}");

    let (status, _) = b.call("GET", "nowhere/creds/x", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = b.call("DELETE", "database/creds/readonly", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = b.call("POST", "sys/health", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // A role the connection does not allow.
    b.call(
        "POST",
        "database/roles/other",
        Some(json!({ "db_name": "pg", "creation_statements": "SELECT 1" })),
    )
    .await;
    let (status, body) = b.call("GET", "database/creds/other", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(first_error(&body).contains("allowed_roles"), "{body}");

    let (status, health) = b.call("GET", "sys/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["sealed"], false);
    assert_eq!(health["initialized"], true);
}

#[tokio::test]
async fn past_the_rate_limit_requests_get_429_with_retry_after() {
    let b = Broker::start_with(None, "[rate_limit]\nrate = 1\nburst = 3\n").await;
    let mut limited = None;
    for _ in 0..10 {
        let (status, headers, body) = b.call_full("GET", "sys/mounts", None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((headers, body));
            break;
        }
        assert_eq!(status, StatusCode::OK);
    }
    let (headers, body) = limited.expect("ten requests at once must pass a 1/s limit");
    assert!(first_error(&body).contains("rate limit"), "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    // Health checks are never limited.
    for _ in 0..5 {
        let (status, _) = b.call("GET", "sys/health", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, _) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(status, StatusCode::OK, "allowed again after Retry-After");
}

#[tokio::test]
async fn request_logs_are_structured_and_never_hold_a_secret() {
    let b = Broker::start().await;
    setup_postgres(&b, "*").await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let (lease_id, _, password) = creds_of(&creds);
    let request_id = creds["request_id"].as_str().unwrap().to_owned();
    b.call("GET", "database/creds/nope", None).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;

    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains(&request_id))
        .unwrap_or_else(|| panic!("no log line for request {request_id}:\n{log}"));
    for field in [
        "op=\"read\"",
        "path=database/creds/readonly",
        "status=200",
        "remote=127.0.0.1:",
        "elapsed_us=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert!(line.contains(&lease_id), "{line}");
    assert!(
        log.lines()
            .any(|l| l.contains("status=400") && l.contains("unknown role")),
        "{log}"
    );
    for secret in [password.as_str(), b.token.as_str(), &postgres().password] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}

#[tokio::test]
async fn sys_metrics_reports_requests_issuances_and_leases() {
    let b = Broker::start().await;
    setup_postgres(&b, "*").await;
    for _ in 0..2 {
        b.expect(StatusCode::OK, "GET", "database/creds/readonly", None)
            .await;
    }
    b.call("GET", "database/creds/nope", None).await;
    let resp = b
        .http
        .get(format!("{}/sys/metrics", b.base))
        .header("X-Vault-Token", &b.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in:\n{text}"))
    };
    assert_eq!(value("broker_leases{state=\"active\"}"), 2.0);
    assert_eq!(
        value("broker_issuance_duration_seconds_count{mount=\"database\"}"),
        2.0
    );
    assert!(value("broker_requests_total{op=\"read\",status=\"200\"}") >= 2.0);
    assert_eq!(
        value("broker_requests_total{op=\"read\",status=\"400\"}"),
        1.0
    );
    assert!(
        text.contains("# TYPE broker_revocation_failures counter"),
        "{text}"
    );
    // Metrics need a token, as in Vault by default.
    let resp = b
        .http
        .get(format!("{}/sys/metrics", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_sealed_broker_serves_nothing_until_a_restart_and_loses_no_lease() {
    let mut b = Broker::start().await;
    setup_postgres(&b, "*").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/brief",
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": "2s" })),
    )
    .await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/brief", None)
        .await;
    let (_, user, _) = creds_of(&creds);
    let status = b
        .http
        .head(format!("{}/sys/health", b.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK, "HEAD sys/health");

    // Only the root token seals.
    let resp = b
        .http
        .put(format!("{}/sys/seal", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    b.expect(StatusCode::NO_CONTENT, "PUT", "sys/seal", None)
        .await;

    let health = b
        .expect(StatusCode::SERVICE_UNAVAILABLE, "GET", "sys/health", None)
        .await;
    assert_eq!(health["sealed"], true);
    b.expect(StatusCode::OK, "GET", "sys/health?sealedcode=200", None)
        .await;
    let body = b
        .expect(
            StatusCode::BAD_REQUEST,
            "GET",
            "sys/health?sealedcode=sealed",
            None,
        )
        .await;
    assert!(first_error(&body).contains("sealedcode"), "{body}");
    let status = b
        .expect(StatusCode::OK, "GET", "sys/seal-status", None)
        .await;
    assert_eq!(status["sealed"], true);
    for path in ["database/creds/brief", "sys/mounts", "sys/metrics"] {
        let body = b
            .expect(StatusCode::SERVICE_UNAVAILABLE, "GET", path, None)
            .await;
        assert!(first_error(&body).contains("sealed"), "{path}: {body}");
    }

    // The lease expires while sealed: the worker has no keys and must
    // neither revoke it nor mark it failed. A restart unseals and revokes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(pg_role_exists(&user).await, "revoked without keys?");
    b.restart().await;
    let health = b.expect(StatusCode::OK, "GET", "sys/health", None).await;
    assert_eq!(health["sealed"], false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg_role_exists(&user).await {
        assert!(
            Instant::now() < deadline,
            "{user} outlived its lease after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sys_init_and_the_legacy_lease_paths_answer_as_in_vault() {
    let b = Broker::start().await;
    // Clients ask `is_initialized` before they have a token.
    let r = b
        .http
        .get(format!("{}/sys/init", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({ "initialized": true }));

    setup_postgres(&b, "*").await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let (lease_id, user, _) = creds_of(&creds);
    let renewed = b
        .expect(
            StatusCode::OK,
            "PUT",
            &format!("sys/renew/{lease_id}"),
            Some(json!({ "increment": "30m" })),
        )
        .await;
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    b.expect(
        StatusCode::OK,
        "PUT",
        "sys/renew",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/revoke",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    assert!(!pg_role_exists(&user).await, "{user} was revoked");

    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let (_, user, _) = creds_of(&creds);
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/revoke-prefix/database/creds/readonly",
        None,
    )
    .await;
    assert!(!pg_role_exists(&user).await, "{user} was revoked");
    // A longer word is not an alias.
    let (status, _) = b.call("PUT", "sys/revokes/x", None).await;
    assert_ne!(status, StatusCode::NO_CONTENT);
}
