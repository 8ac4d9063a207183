//! The target database goes down while leases expire: over HTTP, against a
//! broker process, revocations fail visibly, are retried, and all succeed
//! once the database is back. Nothing is dropped.

use std::time::{Duration, Instant};

use broker_tests::{Outage, postgres};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_role_exists, pg_url, setup_postgres_at};
use crate::process::Broker;

async fn lookup(b: &Broker, lease_id: &str) -> (StatusCode, Value) {
    b.call(
        "PUT",
        "sys/leases/lookup",
        Some(json!({ "lease_id": lease_id })),
    )
    .await
}

#[tokio::test]
async fn revocations_wait_out_a_database_outage() {
    let s = postgres();
    let proxy = Outage::start(&s.host, s.port).await;
    let b = Broker::start().await;
    setup_postgres_at(&b, &pg_url("127.0.0.1", proxy.port()), "*").await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/brief",
        Some(json!({
            "db_name": "pg",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"],
            "default_ttl": "2s",
        })),
    )
    .await;
    let mut leases = Vec::new();
    for _ in 0..3 {
        let creds = b
            .expect(StatusCode::OK, "GET", "database/creds/brief", None)
            .await;
        leases.push((
            creds["lease_id"].as_str().unwrap().to_owned(),
            creds["data"]["username"].as_str().unwrap().to_owned(),
        ));
    }

    proxy.down();
    // Asking for credentials now fails cleanly, as unavailable.
    let (status, body) = b.call("GET", "database/creds/brief", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // The leases expire; every revocation fails, and says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (lease_id, user) in &leases {
        loop {
            let (status, body) = lookup(&b, lease_id).await;
            assert_eq!(status, StatusCode::OK, "the lease must stay: {body}");
            if body["data"]["revocation_attempts"].as_u64().unwrap_or(0) >= 1 {
                let error = body["data"]["last_revocation_error"].as_str().unwrap();
                assert!(!error.is_empty());
                assert!(!error.contains(&s.password), "{error}");
                break;
            }
            assert!(Instant::now() < deadline, "no revocation attempt: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(pg_role_exists(user).await, "{user} is still there");
    }

    proxy.up();
    // Retries (capped exponential backoff) now succeed: every user goes,
    // then every lease.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (lease_id, user) in &leases {
        while pg_role_exists(user).await || lookup(&b, lease_id).await.0 == StatusCode::OK {
            assert!(
                Instant::now() < deadline,
                "{lease_id} was not revoked after the outage: {}",
                lookup(&b, lease_id).await.1
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
