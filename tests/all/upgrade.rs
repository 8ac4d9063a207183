//! A store written by the broker before mount storage was keyed by UUID
//! (layout 1: `mounts/<path>/…`) opens after the upgrade with every config,
//! role, CA, certificate and lease intact, and the old keys gone.
//!
//! The fixture in `tests/fixtures/layout1/` was written by that broker
//! (commit 0c4126c) with `tests/fixtures/layout1/make.sh`.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use crate::process::Broker;

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/layout1"))
}

#[tokio::test]
async fn a_store_of_the_path_layout_opens_with_everything_intact() {
    let (mut b, expected) = Broker::start_from_fixture(fixture()).await;

    // The mounts, each with its UUID (now the root of its storage).
    let mounts = b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    for mount in ["database/", "pki/"] {
        let uuid = mounts["data"][mount]["uuid"].as_str().unwrap_or_default();
        assert_eq!(uuid.len(), 36, "{mount} has no UUID: {mounts}");
    }

    // The database engine's config (its password still sealed and unshown)
    // and role.
    let config = b
        .expect(StatusCode::OK, "GET", "database/config/pg", None)
        .await;
    assert_eq!(config["data"]["plugin_name"], "postgresql-database-plugin");
    assert_eq!(
        config["data"]["connection_details"]["username"],
        "fixture_admin"
    );
    assert_eq!(config["data"]["allowed_roles"], json!(["app"]));
    assert!(!config.to_string().contains("fixture-admin-password"));
    let role = b
        .expect(StatusCode::OK, "GET", "database/roles/app", None)
        .await;
    assert_eq!(role["data"]["db_name"], "pg");
    assert_eq!(role["data"]["default_ttl"], 3600);
    let roles = b
        .expect(StatusCode::OK, "LIST", "database/roles", None)
        .await;
    assert_eq!(roles["data"]["keys"], json!(["app"]));

    // The CA, its stored certificate, and the certificate's lease.
    let (status, ca) = b.call("GET", "pki/ca/pem", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ca.as_str().unwrap().trim(),
        expected["ca_certificate"].as_str().unwrap().trim()
    );
    let serial = expected["serial_number"].as_str().unwrap();
    let cert = b
        .expect(StatusCode::OK, "GET", &format!("pki/cert/{serial}"), None)
        .await;
    assert_eq!(cert["data"]["certificate"], expected["certificate"]);
    assert_eq!(cert["data"]["revocation_time"], 0);
    let lease_id = expected["lease_id"].as_str().unwrap();
    let lease = b
        .expect(
            StatusCode::OK,
            "PUT",
            "sys/leases/lookup",
            Some(json!({ "lease_id": lease_id })),
        )
        .await;
    assert_eq!(lease["data"]["state"], "active");

    // The CA key came through: the role issues, signed by the same CA.
    let issued = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/issue/web",
            Some(json!({ "common_name": "b.example.com", "ttl": "1h" })),
        )
        .await;
    assert_eq!(issued["data"]["issuing_ca"], expected["ca_certificate"]);

    // Revoking the old lease revokes its certificate, through the lease's
    // recorded kind and the mount's backend.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    let cert = b
        .expect(StatusCode::OK, "GET", &format!("pki/cert/{serial}"), None)
        .await;
    assert!(
        cert["data"]["revocation_time"].as_u64().unwrap() > 0,
        "{cert}"
    );

    // Storage now has the mounts' entries under their UUIDs only.
    b.stop().await;
    let store = b.sealed_storage().await;
    assert!(
        store.list("mounts/").await.unwrap().is_empty(),
        "layout 1 keys are left"
    );
    let uuid = mounts["data"]["pki/"]["uuid"].as_str().unwrap();
    let pki_keys = store.list(&format!("logical/{uuid}/")).await.unwrap();
    assert!(
        pki_keys.iter().any(|k| k.ends_with("/ca")),
        "no CA under the UUID: {pki_keys:?}"
    );
    // And a second start (already upgraded) serves the same.
    drop(store);
    b.start_again().await;
    let role = b
        .expect(StatusCode::OK, "GET", "database/roles/app", None)
        .await;
    assert_eq!(role["data"]["db_name"], "pg");
}
