//! Barrier key rotation (`sys/rotate`, `sys/key-status`): a new term seals
//! from then on, the new keyring is stored before anything is sealed with
//! it, and every term's values still open after a restart.

use reqwest::StatusCode;
use serde_json::json;

use crate::hvac::run_hvac_script;
use crate::process::Broker;

/// How many stored values each key term sealed (the term follows the
/// format byte of a sealed value); read from the stopped broker's storage.
async fn values_by_term(b: &Broker) -> std::collections::BTreeMap<u32, usize> {
    let sealed = b.sealed_storage().await;
    let storage = sealed.storage();
    let mut terms = std::collections::BTreeMap::new();
    for key in storage.list("core/policies/").await.unwrap() {
        let value = storage.get(&key).await.unwrap().unwrap();
        let term = broker::barrier::Header::parse(&value).unwrap().term;
        *terms.entry(term).or_insert(0) += 1;
        // Each opens with the keyring as stored.
        sealed.barrier().open(&key, &value).unwrap();
    }
    terms
}

#[tokio::test]
async fn the_barrier_key_rotates_and_what_each_term_sealed_still_opens() {
    // The rewrap moves one value a minute: the policies stay under the
    // term that sealed them for the whole test (`rewrap.rs` tests the move).
    let mut b = Broker::start_with(
        None,
        "[barrier]\nrewrap_batch = 1\nrewrap_pause_ms = 60000\n",
    )
    .await;
    let status = b
        .expect(StatusCode::OK, "GET", "sys/key-status", None)
        .await;
    assert_eq!(status["data"]["term"], json!(1));
    let first_install = status["data"]["install_time"].as_str().unwrap().to_owned();
    assert!(first_install.ends_with('Z'), "{status}");

    let policy = |name: &str| json!({ "policy": format!("path \"secret/{name}\" {{ capabilities = [\"read\"] }}") });
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/before",
        Some(policy("before")),
    )
    .await;
    b.expect(StatusCode::NO_CONTENT, "PUT", "sys/rotate", None)
        .await;
    let status = b
        .expect(StatusCode::OK, "GET", "sys/key-status", None)
        .await;
    assert_eq!(status["data"]["term"], json!(2));
    assert!(status["data"]["install_time"].as_str().unwrap() >= first_install.as_str());
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/after",
        Some(policy("after")),
    )
    .await;

    // A token without sudo on sys/rotate may not rotate, nor read the status.
    let (token, _) = b
        .token_with_policy(
            "rotator",
            r#"path "sys/rotate" { capabilities = ["update"] }"#,
        )
        .await;
    let (status, _) = b.call_as(&token, "PUT", "sys/rotate", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = b.call_as(&token, "GET", "sys/key-status", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // In storage: the old policy under term 1, the new one under term 2,
    // and the stored keyring opens both.
    b.stop().await;
    let terms = values_by_term(&b).await;
    assert!(terms.get(&1).is_some_and(|n| *n > 0), "{terms:?}");
    assert!(terms.get(&2).is_some_and(|n| *n > 0), "{terms:?}");

    // After a restart every term's values open, and term 2 still seals.
    b.start_again().await;
    for name in ["before", "after"] {
        let read = b
            .expect(
                StatusCode::OK,
                "GET",
                &format!("sys/policies/acl/{name}"),
                None,
            )
            .await;
        assert!(read["data"]["policy"].as_str().unwrap().contains(name));
    }
    let status = b
        .expect(StatusCode::OK, "GET", "sys/key-status", None)
        .await;
    assert_eq!(status["data"]["term"], json!(2));
}

/// hvac, unchanged: `tests/hvac/test_keys.py` reads the key status and
/// rotates the key.
#[tokio::test]
async fn hvac_rotates_the_barrier_key() {
    let b = Broker::start().await;
    run_hvac_script(&b, "test_keys.py", &[]);
}
