//! Seals end to end: a broker process on the default `shamir` seal is
//! initialized over the API, starts sealed, unseals with key shares,
//! seals and unseals again, survives a restart, and rekeys; hvac drives
//! the same through its own calls.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::hvac::run_hvac_script;
use crate::process::Broker;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Gives `keys` one by one; returns the last status.
async fn unseal(b: &Broker, keys: &[String]) -> Value {
    let mut status = Value::Null;
    for key in keys {
        let (code, body) = b
            .call_as("", "PUT", "sys/unseal", Some(json!({ "key": key })))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        status = body;
    }
    status
}

#[tokio::test]
async fn a_shamir_broker_is_initialized_unsealed_sealed_and_rekeyed_over_the_api() {
    let mut b = Broker::start_uninitialized("", "").await;

    // Not initialized: seal status says so; health is 501; the rest 503.
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(status["initialized"], false, "{status}");
    assert_eq!(status["type"], "shamir");
    let (code, _) = b.call_as("", "GET", "sys/health", None).await;
    assert_eq!(code, StatusCode::NOT_IMPLEMENTED);
    let (code, body) = b.call_as("", "GET", "sys/mounts", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.to_string().contains("not initialized"), "{body}");

    // A bad split is refused, and nothing is written.
    let (code, body) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 4})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, body) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 5, "secret_threshold": 3, "pgp_keys": ["x"]})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("PGP"), "{body}");

    let (code, init) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 5, "secret_threshold": 3})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let keys = strings(&init["keys"]);
    assert_eq!(keys.len(), 5);
    assert_eq!(strings(&init["keys_base64"]).len(), 5);
    b.token = init["root_token"].as_str().unwrap().to_owned();
    // No share and no token is stored anywhere in the storage file.
    let db = std::fs::read(b.dir().join("broker.db")).unwrap();
    for secret in keys.iter().chain([&b.token]) {
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    let (code, _) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a second init is refused");

    // Sealed after init, as Vault: 503 with how to unseal.
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(
        (
            status["sealed"].clone(),
            status["t"].clone(),
            status["n"].clone()
        ),
        (json!(true), json!(3), json!(5))
    );
    let (code, body) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.to_string().contains("sys/unseal"), "{body}");

    // Progress, a repeated share that does not count, a reset.
    let status = unseal(&b, &keys[..2]).await;
    assert_eq!(status["progress"], 2, "{status}");
    let status = unseal(&b, &keys[1..2]).await;
    assert_eq!(
        status["progress"], 2,
        "the same share twice counts once: {status}"
    );
    let (_, status) = b
        .call_as("", "PUT", "sys/unseal", Some(json!({"reset": true})))
        .await;
    assert_eq!(status["progress"], 0, "{status}");
    let (code, body) = b
        .call_as("", "PUT", "sys/unseal", Some(json!({"key": "not a share"})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // Any three unseal; the data written then survives seal and restart.
    let status = unseal(&b, &[keys[4].clone(), keys[0].clone(), keys[2].clone()]).await;
    assert_eq!(status["sealed"], false, "{status}");
    let (code, _) = b.call("GET", "sys/health", None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = b
        .call(
            "PUT",
            "sys/policies/acl/kept",
            Some(json!({"policy": "path \"x/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert!(code.is_success(), "{body}");

    let (code, _) = b.call("PUT", "sys/seal", None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = b.call("GET", "sys/policies/acl/kept", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    unseal(&b, &keys[1..4]).await;

    b.restart_sealed().await;
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(status["sealed"], true, "a restart starts sealed: {status}");
    let status = unseal(&b, &keys[2..5]).await;
    assert_eq!(status["sealed"], false, "{status}");
    let (code, body) = b.call("GET", "sys/policies/acl/kept", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // Rekey to 3 shares, 2 needed: the old shares stop working.
    let (code, started) = b
        .call_as(
            "",
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{started}");
    let nonce = started["nonce"].as_str().unwrap().to_owned();
    assert_eq!(started["required"], 3, "{started}");
    let (code, body) = b
        .call_as(
            "",
            "PUT",
            "sys/rekey/update",
            Some(json!({"key": keys[0], "nonce": "wrong"})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let mut done = Value::Null;
    for key in &keys[..3] {
        let (code, body) = b
            .call_as(
                "",
                "PUT",
                "sys/rekey/update",
                Some(json!({"key": key, "nonce": nonce})),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        done = body;
    }
    assert_eq!(done["complete"], true, "{done}");
    let new_keys = strings(&done["keys"]);
    assert_eq!(new_keys.len(), 3);

    b.call("PUT", "sys/seal", None).await;
    let (code, body) = {
        unseal(&b, &keys[..2]).await;
        b.call_as("", "PUT", "sys/unseal", Some(json!({"key": keys[2]})))
            .await
    };
    assert!(
        code.is_client_error() || code.is_server_error(),
        "old shares refused: {body}"
    );
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(
        (status["sealed"].clone(), status["progress"].clone()),
        (json!(true), json!(0)),
        "{status}"
    );
    assert_eq!(
        (status["t"].clone(), status["n"].clone()),
        (json!(2), json!(3))
    );
    let status = unseal(&b, &new_keys[1..3]).await;
    assert_eq!(status["sealed"], false, "{status}");
    let (code, _) = b.call("GET", "sys/policies/acl/kept", None).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn a_local_seal_that_cannot_open_keeps_the_broker_sealed_and_says_why() {
    let b = Broker::start().await;
    let mut b = b;
    b.stop().await;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        b.dir().join("kms.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    b.restart_sealed().await;
    let (code, body) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let text = body.to_string();
    assert!(
        text.contains("local seal unavailable") && text.contains("chmod 600"),
        "{text}"
    );
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(status["sealed"], true);
    // Fixed, the broker unseals itself on its next try.
    std::fs::set_permissions(
        b.dir().join("kms.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
        if status["sealed"] == false {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not unseal itself: {status}\n{}",
            b.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, _) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn hvac_initializes_unseals_and_rekeys() {
    let b = Broker::start_uninitialized("", "").await;
    let out = run_hvac_script(&b, "test_seal.py", &[]);
    assert!(out.contains("sys.initialize"), "{out}");
}
