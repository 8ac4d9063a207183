//! Several broker processes on one PostgreSQL database, behind a real
//! load balancer (HAProxy on loopback): every node serves; a change made
//! through one node (a mount, a tune, a policy, a token, a credential, the
//! barrier key) takes effect on the others within a second; once-only
//! work runs on one node at a time and moves when that node dies.

use std::time::{Duration, Instant};

use broker_tests::haproxy::Haproxy;
use broker_tests::{pg_admin, postgres, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_role_exists, pg_url, setup_postgres_at};
use crate::process::Broker;

/// A `[storage]` table for a fresh database of its own on the test
/// PostgreSQL.
async fn fresh_storage() -> String {
    let s = postgres();
    let db = unique("cluster");
    pg_admin()
        .await
        .execute(&format!("CREATE DATABASE {db}"), &[])
        .await
        .unwrap();
    format!(
        "[storage]\ntype = \"postgres\"\nurl = \"postgres://{}:{}@{}:{}/{db}\"",
        s.user, s.password, s.host, s.port
    )
}

/// Three nodes on one fresh database, and HAProxy in front of them.
async fn three_nodes(extra: &str) -> (Vec<Broker>, Haproxy) {
    let first = Broker::start_with(
        Some(fresh_storage().await),
        &format!("{extra}\n[cluster]\nnode_id = \"node1\"\n"),
    )
    .await;
    let second = first.join("node2").await;
    let third = first.join("node3").await;
    let proxy = Haproxy::start(&[first.port(), second.port(), third.port()]);
    let nodes = vec![first, second, third];
    // Each node has echoed, and HAProxy counts each as up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = nodes[0]
            .expect(StatusCode::OK, "GET", "sys/ha-status", None)
            .await;
        let listed = status["Nodes"].as_array().map_or(0, Vec::len);
        let mut up = 0;
        for n in 1..=3 {
            up += usize::from(proxy.is_up(n).await);
        }
        if listed == 3 && up == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node is up: {status}, {up} up at the proxy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (nodes, proxy)
}

/// Polls `check` on `node` until it holds; how long that took. Fails
/// after 5 s (the bound asserted by callers is tighter).
async fn until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not seen within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn within_a_second(what: &str, took: Duration) {
    eprintln!("{what}: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "{what} took {took:?} to reach the other nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_takes_effect_on_the_others_within_a_second() {
    let (nodes, proxy) = three_nodes("").await;
    let [a, b, c] = [&nodes[0], &nodes[1], &nodes[2]];

    // Every node serves, and the proxy spreads requests over all three.
    let http = reqwest::Client::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let health: Value = http
            .get(format!("{}/sys/health", proxy.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["ha_enabled"], true, "{health}");
        seen.insert(health["node_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // A mount made on one node serves on the others.
    a.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    let took = until("the mount", || async {
        b.call("GET", "sys/mounts", None).await.1["data"]
            .get("secret/")
            .is_some()
    })
    .await;
    within_a_second("a mount", took);
    c.expect(
        StatusCode::OK,
        "POST",
        "secret/data/app",
        Some(json!({"data": {"password": "s3cret"}})),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "secret/data/app", None)
        .await;
    assert_eq!(read["data"]["data"]["password"], "s3cret");

    // A tune on one node is what the others report.
    c.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/secret/tune",
        Some(json!({"default_lease_ttl": "2h"})),
    )
    .await;
    let took = until("the tune", || async {
        a.call("GET", "sys/mounts/secret/tune", None).await.1["data"]["default_lease_ttl"]
            == json!(7200)
    })
    .await;
    within_a_second("a tune", took);

    // A token whose policy does not yet allow the read; the policy
    // changed on another node; the third node allows it.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({"policy": "path \"secret/data/other\" { capabilities = [\"read\"] }"})),
    )
    .await;
    let created = a
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["app"], "ttl": "1h"})),
        )
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (code, _) = c.call_as(&token, "GET", "secret/data/app", None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    a.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({"policy": "path \"secret/data/app\" { capabilities = [\"read\"] }"})),
    )
    .await;
    let took = until("the policy", || async {
        c.call_as(&token, "GET", "secret/data/app", None).await.0 == StatusCode::OK
    })
    .await;
    within_a_second("a policy change", took);

    // A token revoked on one node is refused by the others at once.
    c.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/token/revoke",
        Some(json!({"token": token})),
    )
    .await;
    let (code, _) = b.call_as(&token, "GET", "secret/data/app", None).await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a revoked token still works on another node"
    );

    // Credentials: issued through one node, known to the others, revoked
    // through a third.
    let s = postgres();
    setup_postgres_at(a, &pg_url(&s.host, s.port), "*").await;
    let took = until("the database mount", || async {
        b.call("GET", "database/roles/readonly", None).await.0 == StatusCode::OK
    })
    .await;
    within_a_second("a database mount", took);
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/readonly", None)
        .await;
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    assert!(pg_role_exists(&user).await);
    c.expect(
        StatusCode::OK,
        "PUT",
        "sys/leases/lookup",
        Some(json!({"lease_id": lease})),
    )
    .await;
    a.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({"lease_id": lease})),
    )
    .await;
    assert!(!pg_role_exists(&user).await);

    // The barrier key rotated on one node: the others seal under the new
    // term within a second, and what each writes the others read.
    a.expect(StatusCode::NO_CONTENT, "PUT", "sys/rotate", None)
        .await;
    for node in [b, c] {
        let took = until("the new key term", || async {
            node.call("GET", "sys/key-status", None).await.1["data"]["term"] == json!(2)
        })
        .await;
        within_a_second("a key rotation", took);
    }
    b.expect(
        StatusCode::OK,
        "POST",
        "secret/data/after-rotation",
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    let read = c
        .expect(StatusCode::OK, "GET", "secret/data/after-rotation", None)
        .await;
    assert_eq!(read["data"]["data"]["k"], "v");

    // An unmount on one node: the others stop serving the mount.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/mounts/secret", None)
        .await;
    let took = until("the unmount", || async {
        c.call("GET", "secret/data/app", None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    within_a_second("an unmount", took);

    // ha-status on any node names all three, and one holds the periodic job.
    let status = c.expect(StatusCode::OK, "GET", "sys/ha-status", None).await;
    let listed = status["Nodes"].as_array().unwrap();
    let names: std::collections::BTreeSet<_> = listed
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"].into_iter().collect());
    assert_eq!(
        listed.iter().filter(|n| n["active_node"] == true).count(),
        1,
        "{status}"
    );
    let leader: Value = http
        .get(format!("{}/sys/leader", proxy.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(leader["ha_enabled"], true, "{leader}");
    let active = listed.iter().find(|n| n["active_node"] == true).unwrap();
    assert_eq!(leader["leader_address"], active["api_address"], "{leader}");
}
