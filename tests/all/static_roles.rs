//! Static roles end to end, against the real databases: the password the
//! broker reports logs in, a rotation makes the old one fail, and a broker
//! killed with SIGKILL in the middle of a rotation reports, after restart,
//! a password that works (both halves of the two-phase rotation). Root
//! rotation goes through the same two phases. A rotation period rotates on
//! its own, once per period, across a restart.

use std::time::{Duration, Instant};

use broker_tests::{mysql, mysql_admin, pg_admin, pg_connect, postgres, unique};
use mysql_async::prelude::Queryable;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{mount_database, pg_url};
use crate::process::Broker;

const OK: StatusCode = StatusCode::NO_CONTENT;

/// `database/config/{name}` on the test PostgreSQL, for every role.
async fn pg_config(b: &Broker, name: &str) {
    let s = postgres();
    b.expect(
        OK,
        "POST",
        &format!("database/config/{name}"),
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg_url(&s.host, s.port),
            "username": s.user,
            "password": s.password,
            "allowed_roles": "*",
        })),
    )
    .await;
}

/// A PostgreSQL login `name` with `password`, made by the admin.
async fn pg_account(name: &str, password: &str) {
    pg_admin()
        .await
        .batch_execute(&format!(
            "CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '{password}'"
        ))
        .await
        .unwrap();
}

async fn pg_logs_in(user: &str, password: &str) -> bool {
    pg_connect(postgres(), user, password).await.is_ok()
}

async fn mysql_logs_in(user: &str, password: &str) -> bool {
    let s = mysql();
    match mysql_async::Conn::new(s.mysql_opts(user, password)).await {
        Ok(c) => {
            let _ = c.disconnect().await;
            true
        }
        Err(_) => false,
    }
}

async fn creds(b: &Broker, role: &str) -> Value {
    b.expect(
        StatusCode::OK,
        "GET",
        &format!("database/static-creds/{role}"),
        None,
    )
    .await["data"]
        .clone()
}

fn password(creds: &Value) -> String {
    creds["password"].as_str().unwrap().to_owned()
}

/// Sends `rotate-role/{role}` in the background (the broker is killed
/// while it runs, so its answer does not matter).
fn rotate_in_background(b: &Broker, role: &str) {
    let url = format!("{}/database/rotate-role/{role}", b.base);
    let request = b
        .http
        .post(url)
        .header("X-Vault-Token", &b.token)
        .timeout(Duration::from_secs(60));
    tokio::spawn(async move {
        let _ = request.send().await;
    });
}

/// Waits until `seen` says the database is running the rotation's sleep.
async fn wait_for(what: &str, mut seen: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen().await {
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_postgres_static_role_rotates_and_survives_a_crash_before_the_database_changed() {
    let mut b = Broker::start().await;
    mount_database(&b).await;
    pg_config(&b, "pg").await;
    let user = unique("static_pg");
    pg_account(&user, "initial-Pw-1").await;

    // Made: the password is rotated at once (Vault's import rotation).
    b.expect(
        OK,
        "POST",
        "database/static-roles/app",
        Some(json!({ "db_name": "pg", "username": user, "rotation_period": "1h" })),
    )
    .await;
    let first = creds(&b, "app").await;
    assert_eq!(first["username"], json!(user));
    assert!(in_range(&first["ttl"], 3590, 3600), "{first}");
    assert_eq!(first["rotation_period"], json!(3600));
    let p1 = password(&first);
    assert!(
        pg_logs_in(&user, &p1).await,
        "the reported password logs in"
    );
    assert!(
        !pg_logs_in(&user, "initial-Pw-1").await,
        "the old one no longer does"
    );

    // rotate-role: the new one works, the old one fails.
    b.expect(OK, "POST", "database/rotate-role/app", None).await;
    let p2 = password(&creds(&b, "app").await);
    assert_ne!(p1, p2);
    assert!(pg_logs_in(&user, &p2).await);
    assert!(!pg_logs_in(&user, &p1).await);
    let role = b
        .expect(StatusCode::OK, "GET", "database/static-roles/app", None)
        .await;
    assert_eq!(role["data"]["username"], json!(user));
    assert_eq!(role["data"]["db_name"], json!("pg"));
    assert!(
        role["data"]["last_vault_rotation"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let listed = b
        .expect(StatusCode::OK, "LIST", "database/static-roles", None)
        .await;
    assert_eq!(listed["data"]["keys"], json!(["app"]));

    // SIGKILL after the new password is stored as pending, before the
    // database runs the statement that sets it (it sleeps first).
    b.expect(
        OK,
        "POST",
        "database/static-roles/app",
        Some(json!({ "rotation_statements": [
            "SELECT pg_sleep(30)",
            "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'",
        ] })),
    )
    .await;
    rotate_in_background(&b, "app");
    wait_for("the rotation's pg_sleep on PostgreSQL", async || {
        !pg_admin()
            .await
            .query(
                "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'",
                &[],
            )
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    // Meanwhile the reported password may be about to stop working: a
    // read waits for the rotation, and says so when it does not end.
    let (status, body) = b.call("GET", "database/static-creds/app", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.to_string().contains("being rotated"), "{body}");
    b.kill();
    pg_admin()
        .await
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'",
        )
        .await
        .unwrap();
    b.restart().await;
    let after = password(&creds(&b, "app").await);
    assert_eq!(
        after, p2,
        "the database never changed: the old password stays"
    );
    assert!(pg_logs_in(&user, &after).await, "and it works");

    // The next rotation goes through.
    b.expect(
        OK,
        "POST",
        "database/static-roles/app",
        Some(json!({ "rotation_statements": [] })),
    )
    .await;
    b.expect(OK, "POST", "database/rotate-role/app", None).await;
    let p3 = password(&creds(&b, "app").await);
    assert!(pg_logs_in(&user, &p3).await);
    assert!(!pg_logs_in(&user, &p2).await);

    // Deleted: the account stays as it is.
    b.expect(OK, "DELETE", "database/static-roles/app", None)
        .await;
    assert!(pg_logs_in(&user, &p3).await);
    let (status, _) = b.call("GET", "database/static-creds/app", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_mysql_static_role_survives_a_crash_after_the_database_changed() {
    let mut b = Broker::start().await;
    mount_database(&b).await;
    let s = mysql();
    b.expect(
        OK,
        "POST",
        "database/config/my",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", s.host, s.port),
            "username": s.user,
            "password": s.password,
            "allowed_roles": "*",
        })),
    )
    .await;
    let user = unique("st_my");
    let mut admin = mysql_admin().await;
    admin
        .query_drop(format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'initial-Pw-1'"
        ))
        .await
        .unwrap();
    let alter = "ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'";
    b.expect(
        OK,
        "POST",
        "database/static-roles/app",
        Some(
            json!({ "db_name": "my", "username": user, "rotation_period": "1h",
            "rotation_statements": [alter] }),
        ),
    )
    .await;
    let m1 = password(&creds(&b, "app").await);
    assert!(mysql_logs_in(&user, &m1).await);
    assert!(!mysql_logs_in(&user, "initial-Pw-1").await);

    // SIGKILL after the database took the new password (MySQL runs the
    // statements one by one: the ALTER is done), before the broker made it
    // current.
    b.expect(
        OK,
        "POST",
        "database/static-roles/app",
        Some(json!({ "rotation_statements": [alter, "SELECT SLEEP(30)"] })),
    )
    .await;
    rotate_in_background(&b, "app");
    wait_for("the rotation's SLEEP on MariaDB", async || {
        let rows: Vec<u64> = admin
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'")
            .await
            .unwrap();
        !rows.is_empty()
    })
    .await;
    b.kill();
    let sleepers: Vec<u64> = admin
        .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'")
        .await
        .unwrap();
    for id in sleepers {
        let _ = admin.query_drop(format!("KILL {id}")).await;
    }
    assert!(!mysql_logs_in(&user, &m1).await, "the database did change");
    b.restart().await;
    let m2 = password(&creds(&b, "app").await);
    assert_ne!(m2, m1, "the broker reports the password the database took");
    assert!(mysql_logs_in(&user, &m2).await, "and it works");
    admin
        .query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
}

#[tokio::test]
async fn root_rotation_keeps_the_password_the_database_took() {
    let b = Broker::start().await;
    mount_database(&b).await;

    // PostgreSQL: a root of its own, so rotating it touches no other test.
    let root = unique("root_pg");
    pg_account(&root, "root-Pw-1").await;
    pg_admin()
        .await
        .batch_execute(&format!("ALTER ROLE \"{root}\" SUPERUSER"))
        .await
        .unwrap();
    let s = postgres();
    b.expect(
        OK,
        "POST",
        "database/config/own",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg_url(&s.host, s.port),
            "username": root,
            "password": "root-Pw-1",
            "allowed_roles": "*",
        })),
    )
    .await;
    b.expect(OK, "POST", "database/rotate-root/own", None).await;
    assert!(!pg_logs_in(&root, "root-Pw-1").await, "rotated away");
    // The broker still reaches the database with the one it keeps.
    let user = unique("static_after_root");
    pg_account(&user, "x-Pw-1").await;
    b.expect(
        OK,
        "POST",
        "database/static-roles/after-root",
        Some(json!({ "db_name": "own", "username": user, "rotation_period": "1h" })),
    )
    .await;
    assert!(pg_logs_in(&user, &password(&creds(&b, "after-root").await)).await);

    // MySQL runs root_rotation_statements one by one: here the password
    // changes and the next statement fails. The broker keeps the password
    // the database took, so it is not locked out.
    let my = mysql();
    let my_root = unique("root_my");
    let mut admin = mysql_admin().await;
    admin
        .query_drop(format!(
            "CREATE USER '{my_root}'@'%' IDENTIFIED BY 'root-Pw-1'"
        ))
        .await
        .unwrap();
    admin
        .query_drop(format!("GRANT CREATE USER ON *.* TO '{my_root}'@'%'"))
        .await
        .unwrap();
    b.expect(
        OK,
        "POST",
        "database/config/my",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", my.host, my.port),
            "username": my_root,
            "password": "root-Pw-1",
            "allowed_roles": "*",
            "root_rotation_statements": [
                "ALTER USER '{{username}}'@'%' IDENTIFIED BY '{{password}}'",
                "SELECT * FROM no_such_schema.no_such_table",
            ],
        })),
    )
    .await;
    let (status, body) = b.call("POST", "database/rotate-root/my", None).await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status} {body}"
    );
    assert!(
        !mysql_logs_in(&my_root, "root-Pw-1").await,
        "the password did change"
    );
    let account = unique("st_after");
    admin
        .query_drop(format!(
            "CREATE USER '{account}'@'%' IDENTIFIED BY 'x-Pw-1'"
        ))
        .await
        .unwrap();
    b.expect(
        OK,
        "POST",
        "database/static-roles/my-after-root",
        Some(
            json!({ "db_name": "my", "username": account, "rotation_period": "1h",
            "rotation_statements": ["ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'"] }),
        ),
    )
    .await;
    let m = password(&creds(&b, "my-after-root").await);
    assert!(
        mysql_logs_in(&account, &m).await,
        "the broker still administers MySQL"
    );
    for u in [&my_root, &account] {
        admin
            .query_drop(format!("DROP USER '{u}'@'%'"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_rotation_period_rotates_on_its_own_once_per_period_across_a_restart() {
    let mut b = Broker::start().await;
    mount_database(&b).await;
    pg_config(&b, "pg").await;
    let user = unique("static_period");
    pg_account(&user, "initial-Pw-1").await;
    b.expect(
        OK,
        "POST",
        "database/static-roles/ticking",
        Some(json!({ "db_name": "pg", "username": user, "rotation_period": "5s" })),
    )
    .await;
    // Watch last_vault_rotation for 16 s, restarting halfway.
    let mut seen: Vec<(String, String)> = Vec::new();
    let start = Instant::now();
    let mut restarted = false;
    while start.elapsed() < Duration::from_secs(16) {
        if !restarted && start.elapsed() > Duration::from_secs(7) {
            b.restart().await;
            restarted = true;
        }
        let c = creds(&b, "ticking").await;
        let at = c["last_vault_rotation"].as_str().unwrap().to_owned();
        if seen.last().map(|(t, _)| t) != Some(&at) {
            seen.push((at, password(&c)));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The import rotation, then one every 5 s: 3 or 4 more in 16 s.
    assert!((4..=5).contains(&seen.len()), "{seen:?}");
    let times: Vec<i64> = seen
        .iter()
        .map(|(t, _)| chrono_free_seconds(t).unwrap_or_else(|| panic!("not RFC 3339: {t}")))
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((5..=7).contains(&gap), "never twice in a period: {times:?}");
    }
    let (_, last) = seen.last().unwrap();
    assert!(pg_logs_in(&user, last).await);
    b.expect(OK, "DELETE", "database/static-roles/ticking", None)
        .await;
}

fn in_range(v: &Value, low: i64, high: i64) -> bool {
    v.as_i64().is_some_and(|n| (low..=high).contains(&n))
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn chrono_free_seconds(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let h: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [y, m, day] = d.as_slice() else {
        return None;
    };
    let [hh, mm, ss] = h.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// vaultrs's `database::static_role`, unchanged: set, read, list, creds
/// (a real PostgreSQL login), rotate, delete.
#[tokio::test]
async fn vaultrs_drives_static_roles() {
    use vaultrs::api::database::requests::SetStaticRoleRequest;
    use vaultrs::database::static_role;

    let b = Broker::start().await;
    mount_database(&b).await;
    pg_config(&b, "pg").await;
    let user = unique("static_vaultrs");
    pg_account(&user, "initial-Pw-1").await;
    let client = b.vaultrs();
    static_role::set(
        &client,
        "database",
        "svc",
        Some(
            SetStaticRoleRequest::builder()
                .db_name("pg")
                .username(user.clone())
                .rotation_period("1h"),
        ),
    )
    .await
    .unwrap();
    let role = static_role::read(&client, "database", "svc").await.unwrap();
    assert_eq!((role.db_name.as_str(), role.rotation_period), ("pg", 3600));
    assert_eq!(role.username, user);
    let listed = static_role::list(&client, "database").await.unwrap();
    assert_eq!(listed.keys, ["svc"]);
    let first = static_role::creds(&client, "database", "svc")
        .await
        .unwrap();
    assert_eq!(first.username, user);
    assert!(first.ttl <= 3600 && first.ttl > 3500, "{first:?}");
    assert!(pg_logs_in(&user, &first.password).await);
    static_role::rotate(&client, "database", "svc")
        .await
        .unwrap();
    let second = static_role::creds(&client, "database", "svc")
        .await
        .unwrap();
    assert_ne!(first.password, second.password);
    assert!(pg_logs_in(&user, &second.password).await);
    assert!(!pg_logs_in(&user, &first.password).await);
    static_role::delete(&client, "database", "svc")
        .await
        .unwrap();
    assert!(static_role::read(&client, "database", "svc").await.is_err());
}

/// hvac, unchanged: `tests/hvac/test_static_roles.py` drives static roles
/// on an account made here; the last password it saw logs in.
#[tokio::test]
async fn hvac_drives_static_roles() {
    let b = Broker::start().await;
    mount_database(&b).await;
    pg_config(&b, "pg").await;
    let user = unique("static_hvac");
    pg_account(&user, "initial-Pw-1").await;
    let out = crate::hvac::run_hvac_script(
        &b,
        "test_static_roles.py",
        &[
            ("BROKER_TEST_DB_CONFIG", "pg"),
            ("BROKER_TEST_DB_ACCOUNT", user.as_str()),
        ],
    );
    let last = out
        .lines()
        .find_map(|l| l.strip_prefix("last password: "))
        .expect("the script prints the last password");
    assert!(pg_logs_in(&user, last).await);
}
