//! Lease prefixes, unmounting and TTLs at their edges, against a broker
//! process over HTTP with leases on a real PostgreSQL: prefixes and mount
//! paths act on whole path segments, only a mount's exact path disables it,
//! every TTL field has a bound checked at write time, and a stored lease
//! whose times are out of range is ended with a clear error instead of
//! panicking the lookup.

use broker_tests::postgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_role_exists, pg_url};
use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Mounts the database engine at `mount` with config `pg` on the test
/// PostgreSQL, and each of `roles` (TTL 1h).
async fn database_at(b: &Broker, mount: &str, roles: &[&str]) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(json!({ "type": "database" })),
    )
    .await;
    let s = postgres();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("{mount}/config/pg"),
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg_url(&s.host, s.port),
            "username": s.user,
            "password": s.password,
            "allowed_roles": "*",
        })),
    )
    .await;
    for role in roles {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("{mount}/roles/{role}"),
            Some(
                json!({ "db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": "1h" }),
            ),
        )
        .await;
    }
}

/// A credential of `mount`'s `role`: its lease id and username.
async fn creds(b: &Broker, mount: &str, role: &str) -> (String, String) {
    let body = b
        .expect(
            StatusCode::OK,
            "GET",
            &format!("{mount}/creds/{role}"),
            None,
        )
        .await;
    (
        body["lease_id"].as_str().unwrap().to_owned(),
        body["data"]["username"].as_str().unwrap().to_owned(),
    )
}

async fn lookup(b: &Broker, lease_id: &str) -> (StatusCode, Value) {
    b.call(
        "PUT",
        "sys/leases/lookup",
        Some(json!({ "lease_id": lease_id })),
    )
    .await
}

async fn lease_exists(b: &Broker, lease_id: &str) -> bool {
    let (status, body) = lookup(b, lease_id).await;
    match status {
        StatusCode::OK => true,
        StatusCode::BAD_REQUEST if first_error(&body).contains("not found") => false,
        other => panic!("lookup of {lease_id}: {other} {body}"),
    }
}

/// Drops a PostgreSQL role the test made (after revoke-force forgot it).
async fn drop_pg_role(name: &str) {
    broker_tests::pg_admin()
        .await
        .execute(&format!("DROP ROLE IF EXISTS \"{name}\""), &[])
        .await
        .unwrap();
}

/// Finding 6: `revoke-prefix/database/creds/app` revoked role `app2`'s
/// leases too. A prefix is whole segments; with or without a trailing slash
/// it still revokes its own role's leases. LIKE wildcards in names stay text.
#[tokio::test]
async fn revoke_prefix_takes_whole_role_segments() {
    let b = Broker::start().await;
    database_at(&b, "database", &["app", "app2", "a_p", "axp"]).await;
    let app = [
        creds(&b, "database", "app").await,
        creds(&b, "database", "app").await,
    ];
    let app2 = creds(&b, "database", "app2").await;
    let axp = creds(&b, "database", "axp").await;

    // LIST sees the two roles as two folders, and a role's folder only its own.
    let folders = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds",
            None,
        )
        .await;
    assert_eq!(folders["data"]["keys"], json!(["app/", "app2/", "axp/"]));
    let listed = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds/app",
            None,
        )
        .await;
    assert_eq!(
        listed["data"]["keys"].as_array().unwrap().len(),
        2,
        "{listed}"
    );

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/app",
        None,
    )
    .await;
    for (lease, user) in &app {
        assert!(!lease_exists(&b, lease).await);
        assert!(!pg_role_exists(user).await, "{user} outlived revoke-prefix");
    }
    assert!(
        lease_exists(&b, &app2.0).await,
        "role app2's lease was revoked"
    );
    assert!(
        pg_role_exists(&app2.1).await,
        "role app2's user was dropped"
    );

    // The trailing-slash form revokes the role's leases too.
    let again = creds(&b, "database", "app").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/app/",
        None,
    )
    .await;
    assert!(!pg_role_exists(&again.1).await);
    assert!(pg_role_exists(&app2.1).await);

    // `_` is a LIKE wildcard: role a_p's prefix must not reach role axp.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/a_p",
        None,
    )
    .await;
    assert!(lease_exists(&b, &axp.0).await);
    assert!(pg_role_exists(&axp.1).await);

    // A whole lease id as the prefix revokes that lease alone, as in Vault.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        &format!("sys/leases/revoke-prefix/{}", app2.0),
        None,
    )
    .await;
    assert!(!pg_role_exists(&app2.1).await);
    assert!(pg_role_exists(&axp.1).await);

    // No prefix is not "every lease".
    let (status, body) = b.call("PUT", "sys/leases/revoke-prefix/", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("prefix is required"), "{body}");
    assert!(lease_exists(&b, &axp.0).await);
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database",
        None,
    )
    .await;
    assert!(!pg_role_exists(&axp.1).await);
}

/// Finding 6, by mount: `revoke-force/db` forgot mount `db2`'s leases
/// (leaving their users live and unleased), and `revoke-prefix/…/db4`
/// revoked mount `db4b`'s.
#[tokio::test]
async fn prefixes_take_whole_mount_segments() {
    let b = Broker::start().await;
    for mount in ["db", "db2", "db4", "db4b"] {
        database_at(&b, mount, &["r"]).await;
    }
    let db = creds(&b, "db", "r").await;
    let db2 = creds(&b, "db2", "r").await;
    let db4 = creds(&b, "db4", "r").await;
    let db4b = creds(&b, "db4b", "r").await;

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-force/db",
        None,
    )
    .await;
    assert!(
        !lease_exists(&b, &db.0).await,
        "mount db's lease is forgotten"
    );
    assert!(
        lease_exists(&b, &db2.0).await,
        "revoke-force/db forgot mount db2's lease"
    );
    assert!(pg_role_exists(&db2.1).await);
    drop_pg_role(&db.1).await;

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/db4",
        None,
    )
    .await;
    assert!(!pg_role_exists(&db4.1).await);
    assert!(
        lease_exists(&b, &db4b.0).await,
        "revoke-prefix/db4 revoked mount db4b's lease"
    );
    assert!(pg_role_exists(&db4b.1).await);

    // Unmounting db2 revokes its own leases only.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/mounts/db2", None)
        .await;
    assert!(!pg_role_exists(&db2.1).await);
    assert!(pg_role_exists(&db4b.1).await);
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/mounts/db4b", None)
        .await;
    assert!(!pg_role_exists(&db4b.1).await);
}

/// Finding 7: `DELETE sys/mounts/db4b/config` answered 204 and deleted the
/// mount's connection configs; `DELETE sys/mounts/db4/creds/app` revoked
/// role app's leases. Only a mount's exact path disables it.
#[tokio::test]
async fn only_a_mounts_exact_path_disables_it() {
    let b = Broker::start().await;
    database_at(&b, "db4b", &["app"]).await;
    let (lease, user) = creds(&b, "db4b", "app").await;

    for inside in [
        "db4b/config",
        "db4b/config/pg",
        "db4b/creds/app",
        "db4b/roles",
    ] {
        let (status, body) = b
            .call("DELETE", &format!("sys/mounts/{inside}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{inside}: {body}");
        assert!(
            first_error(&body).contains("inside mount db4b/"),
            "{inside}: {body}"
        );
    }
    // Not a mount at all; a longer word than `sys/mounts`.
    b.expect(StatusCode::NOT_FOUND, "DELETE", "sys/mounts/db4", None)
        .await;
    b.expect(StatusCode::NOT_FOUND, "DELETE", "sys/mountsdb4b", None)
        .await;
    b.expect(
        StatusCode::NOT_FOUND,
        "POST",
        "sys/mountsx",
        Some(json!({ "type": "database" })),
    )
    .await;
    // Tuning inside a mount is refused too, and changes nothing.
    let (status, body) = b
        .call(
            "POST",
            "sys/mounts/db4b/config/tune",
            Some(json!({ "max_lease_ttl": "1m" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Everything is still there: the config, the role, the lease, the user.
    b.expect(StatusCode::OK, "GET", "db4b/config/pg", None)
        .await;
    b.expect(StatusCode::OK, "GET", "db4b/roles/app", None)
        .await;
    assert!(lease_exists(&b, &lease).await);
    assert!(pg_role_exists(&user).await);
    let tune = b
        .expect(StatusCode::OK, "GET", "sys/mounts/db4b/tune", None)
        .await;
    assert_ne!(tune["data"]["max_lease_ttl"], 60, "{tune}");

    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/mounts/db4b/", None)
        .await;
    assert!(!pg_role_exists(&user).await);
    let mounts = b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    assert!(mounts["data"].get("db4b/").is_none(), "{mounts}");
}

/// Finding 11 (mount paths): NUL, `a/../b`, 5,000 characters and Vault's
/// reserved names in any case were accepted. Each is a 400 saying why.
#[tokio::test]
async fn mount_paths_are_checked() {
    let b = Broker::start().await;
    let long = "x".repeat(5000);
    let cases: Vec<(String, &str)> = vec![
        ("a%00b".into(), "not allowed"),
        ("a%2F..%2Fb".into(), "'..'"),
        ("a%2F.%2Fb".into(), "'.'"),
        ("a//b".into(), "empty segment"),
        ("a%20b".into(), "not allowed"),
        ("a*".into(), "not allowed"),
        (long, "bytes long"),
        ("SYS".into(), "reserved"),
        ("Sys/x".into(), "reserved"),
        ("auth".into(), "reserved"),
        ("AUTH/db".into(), "reserved"),
        ("cubbyhole".into(), "reserved"),
        ("CubbyHole".into(), "reserved"),
        ("identity".into(), "reserved"),
        ("IDENTITY/x".into(), "reserved"),
    ];
    for (path, why) in &cases {
        let (status, body) = b
            .call(
                "POST",
                &format!("sys/mounts/{path}"),
                Some(json!({ "type": "database" })),
            )
            .await;
        let shown = &path[..path.len().min(40)];
        assert_eq!(status, StatusCode::BAD_REQUEST, "{shown}: {body}");
        let error = first_error(&body);
        assert!(error.contains(why), "{shown}: {error}");
        assert!(error.starts_with("path"), "{shown}: {error}");
    }
    let mounts = b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    assert_eq!(mounts["data"], json!({}), "{mounts}");

    // Ordinary paths, nested ones included, still mount.
    for path in ["team-a/prod_db.1", "pki2", "Database"] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("sys/mounts/{path}"),
            Some(json!({ "type": "database" })),
        )
        .await;
    }
    // Inside a mount, or around one, is in use.
    for path in ["team-a", "team-a/prod_db.1/x"] {
        b.expect(
            StatusCode::BAD_REQUEST,
            "POST",
            &format!("sys/mounts/{path}"),
            Some(json!({ "type": "database" })),
        )
        .await;
    }
}

/// Finding 8, at write time: every TTL field refuses what is beyond its
/// documented range (876000h) with a 400 naming the field.
#[tokio::test]
async fn ttl_fields_are_bounded_when_written() {
    let b = Broker::start().await;
    let huge = json!(18446744073709551615u64);
    for (field, value) in [
        ("max_lease_ttl", huge.clone()),
        ("default_lease_ttl", json!("99999999999h")),
        ("max_lease_ttl", json!("876001h")),
        ("max_lease_ttl", json!(-1)),
    ] {
        let (status, body) = b
            .call(
                "POST",
                "sys/mounts/huge",
                Some(json!({ "type": "database", "config": { field: value } })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        assert!(
            first_error(&body).starts_with(&format!("{field}: ")),
            "{body}"
        );
    }
    b.expect(StatusCode::NOT_FOUND, "DELETE", "sys/mounts/huge", None)
        .await;

    database_at(&b, "database", &["app"]).await;
    for (field, value) in [
        ("max_lease_ttl", huge.clone()),
        ("default_lease_ttl", json!("99999999999h")),
    ] {
        let (status, body) = b
            .call(
                "POST",
                "sys/mounts/database/tune",
                Some(json!({ field: value })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "tune {field}: {body}");
        assert!(
            first_error(&body).starts_with(&format!("{field}: ")),
            "{body}"
        );
    }
    for (field, value) in [
        ("default_ttl", json!("99999999999h")),
        ("max_ttl", huge.clone()),
    ] {
        let (status, body) = b
            .call(
                "POST",
                "database/roles/big",
                Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE], field: value })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "role {field}: {body}");
        assert!(
            first_error(&body).starts_with(&format!("{field}: ")),
            "{body}"
        );
    }
    b.expect(StatusCode::NOT_FOUND, "GET", "database/roles/big", None)
        .await;

    // PKI's TTL fields take the same parser, and the same bound.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({ "type": "pki" })),
    )
    .await;
    let (status, body) = b
        .call(
            "POST",
            "pki/root/generate/internal",
            Some(json!({ "common_name": "Root", "ttl": "99999999999h" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).starts_with("ttl: "), "{body}");

    let (lease, user) = creds(&b, "database", "app").await;
    let (status, body) = b
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({ "lease_id": lease, "increment": huge })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).starts_with("increment: "), "{body}");
    assert!(pg_role_exists(&user).await);
}

/// Finding 8, at the bound: a 876000h lease on PostgreSQL is valid until
/// that long from now (not 1970, as an overflowed expiry made it).
#[tokio::test]
async fn the_longest_ttl_makes_a_user_valid_that_long() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({ "type": "database", "config": { "max_lease_ttl": "876000h" } })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/mounts/database",
        None,
    )
    .await;
    database_at(&b, "database", &[]).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database/tune",
        Some(json!({ "max_lease_ttl": "876000h", "default_lease_ttl": "876000h" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/forever",
        Some(json!({ "db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": "876000h", "max_ttl": "876000h" })),
    )
    .await;
    let body = b
        .expect(StatusCode::OK, "GET", "database/creds/forever", None)
        .await;
    let ttl = 876_000 * 3600;
    assert_eq!(body["lease_duration"], ttl, "{body}");
    let user = body["data"]["username"].as_str().unwrap();
    let until: i64 = broker_tests::pg_admin()
        .await
        .query_one(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    let now = broker_tests::now() as i64;
    assert!(
        (now + ttl - 120..=now + ttl + 120).contains(&until),
        "valid until {until}, expected about {}",
        now + ttl
    );
    let lease = body["lease_id"].as_str().unwrap();
    let (status, looked) = lookup(&b, lease).await;
    assert_eq!(status, StatusCode::OK, "{looked}");
    assert!(
        looked["data"]["expire_time"]
            .as_str()
            .unwrap()
            .starts_with("21"),
        "{looked}"
    );
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/mounts/database",
        None,
    )
    .await;
    assert!(!pg_role_exists(user).await);
}

/// Finding 8, stored: a lease whose stored expiry is out of range (as the
/// unbounded TTLs made: 2.3e18 s) made `sys/leases/lookup` panic, and the
/// worker, which finds leases by due time, never reached it. Now lookups
/// answer (showing why it failed while it is there), the worker revokes it
/// as expired, and another lease keeps working.
#[tokio::test]
async fn a_stored_out_of_range_expiry_is_ended_not_a_panic() {
    let mut b = Broker::start().await;
    database_at(&b, "database", &["app"]).await;
    let (broken, broken_user) = creds(&b, "database", "app").await;
    let (fine, fine_user) = creds(&b, "database", "app").await;
    b.stop().await;
    {
        let path = b.config.parent().unwrap().join("broker.db");
        let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let far = i64::MAX / 4;
        let done = sqlx::query(
            "UPDATE leases SET expires_at = ?, max_expires_at = ?, next_attempt_at = ? WHERE id = ?",
        )
        .bind(far)
        .bind(far)
        .bind(far)
        .bind(&broken)
        .execute(&db)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1);
        db.close().await;
    }
    b.start_again().await;

    // The worker may have ended it already: either way, every lookup answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = lookup(&b, &broken).await;
        match status {
            StatusCode::OK => {
                let data = &body["data"];
                assert_ne!(data["state"], "active", "{body}");
                let error = data["last_revocation_error"].as_str().unwrap_or_default();
                assert!(error.contains("out of range"), "{body}");
                assert!(data["expire_time"].is_string(), "{body}");
            }
            StatusCode::BAD_REQUEST if first_error(&body).contains("not found") => {
                if !pg_role_exists(&broken_user).await {
                    break;
                }
            }
            other => panic!("lookup: {other} {body}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the out-of-range lease was never revoked:\n{}",
            b.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b.log().contains("times out of range"), "{}", b.log());
    // The other lease is untouched and renews.
    assert!(pg_role_exists(&fine_user).await);
    b.expect(
        StatusCode::OK,
        "PUT",
        "sys/leases/renew",
        Some(json!({ "lease_id": fine, "increment": "30m" })),
    )
    .await;
    assert!(!b.log().contains("panicked"), "{}", b.log());
}
