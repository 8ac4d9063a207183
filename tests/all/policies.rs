//! ACL policies over HTTP: `sys/policies/acl` and the older `sys/policy`
//! (through vaultrs, unchanged), stored sealed and kept across a restart.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{Broker, first_error};

const APP: &str = r#"
# The application's own database role and KV tree.
path "database/creds/app-marker-7f3a" {
  capabilities = ["read"]
}
path "secret/data/app/*" {
  capabilities = ["create", "read", "update"]
}
"#;

/// Every byte of the SQLite database (the main file and its WAL).
fn storage_bytes(b: &Broker) -> Vec<u8> {
    let dir = b.config.parent().unwrap();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("broker.db")
        {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

fn keys(body: &Value) -> Vec<&str> {
    body["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn policies_are_written_read_listed_and_deleted() {
    let mut b = Broker::start().await;
    let list = b
        .expect(StatusCode::OK, "LIST", "sys/policies/acl", None)
        .await;
    assert_eq!(keys(&list), ["default", "root"]);

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/App",
        Some(json!({ "policy": APP })),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/app", None)
        .await;
    assert_eq!(read["data"]["name"], "app", "names are lowercased");
    assert_eq!(
        read["data"]["policy"], APP,
        "the text comes back as written"
    );
    let list = b
        .expect(StatusCode::OK, "LIST", "sys/policies/acl", None)
        .await;
    assert_eq!(keys(&list), ["app", "default", "root"]);
    // As in Vault, the text may come base64-encoded; it is stored decoded.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/encoded",
        Some(json!({ "policy": base64::engine::general_purpose::STANDARD.encode(APP) })),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/encoded", None)
        .await;
    assert_eq!(read["data"]["policy"], APP);
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/policies/acl/encoded",
        None,
    )
    .await;

    // Stored sealed: the text is nowhere in the database in the clear.
    let stored = storage_bytes(&b);
    assert!(!stored.is_empty());
    assert!(
        !stored
            .windows(b"app-marker-7f3a".len())
            .any(|w| w == b"app-marker-7f3a"),
        "the policy text is stored in the clear"
    );

    // A policy that does not parse, or asks for what is not enforced, is
    // refused with the reason, and the stored one is left as it was.
    for (text, reason) in [
        (
            r#"path "x" { capabilities = ["reed"] }"#,
            "unknown capability \"reed\"",
        ),
        (
            "path \"x\" {\n  capabilities = [\"read\"]\n  denied_parameters = { \"ttl\" = [] }\n}",
            "denied_parameters is not supported",
        ),
        (
            r#"path "x" { capabilities = ["read"]"#,
            "failed to parse policy",
        ),
        (
            r#"path "a/*/b" { capabilities = ["read"] }"#,
            "'*' may only end a path",
        ),
        (
            r#"{"path": {"x": {"capabilities": ["read"]}, "y": 1}}"#,
            "a path rule is an object",
        ),
    ] {
        let body = b
            .expect(
                StatusCode::BAD_REQUEST,
                "PUT",
                "sys/policies/acl/app",
                Some(json!({ "policy": text })),
            )
            .await;
        assert!(first_error(&body).contains(reason), "{text}: {body}");
    }
    let body = b
        .expect(
            StatusCode::BAD_REQUEST,
            "PUT",
            "sys/policies/acl/app",
            Some(json!({})),
        )
        .await;
    assert!(first_error(&body).contains("policy is required"), "{body}");
    b.expect(
        StatusCode::BAD_REQUEST,
        "PUT",
        "sys/policies/acl/a%2Fb",
        Some(json!({ "policy": APP })),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/app", None)
        .await;
    assert_eq!(read["data"]["policy"], APP);

    // The built-ins: root is fixed, default can be rewritten but not deleted.
    b.expect(
        StatusCode::BAD_REQUEST,
        "DELETE",
        "sys/policies/acl/root",
        None,
    )
    .await;
    b.expect(
        StatusCode::BAD_REQUEST,
        "PUT",
        "sys/policies/acl/root",
        Some(json!({ "policy": APP })),
    )
    .await;
    b.expect(
        StatusCode::BAD_REQUEST,
        "DELETE",
        "sys/policies/acl/default",
        None,
    )
    .await;
    let default = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/default", None)
        .await;
    assert!(
        default["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("auth/token/lookup-self")
    );
    let mine = r#"path "sys/leases/renew" { capabilities = ["update"] }"#;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/default",
        Some(json!({ "policy": mine })),
    )
    .await;

    // Kept across a restart.
    b.restart().await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/app", None)
        .await;
    assert_eq!(read["data"]["policy"], APP);
    let default = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/default", None)
        .await;
    assert_eq!(default["data"]["policy"], mine);

    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/policies/acl/app",
        None,
    )
    .await;
    b.expect(StatusCode::NOT_FOUND, "GET", "sys/policies/acl/app", None)
        .await;
    // Deleting what is not there is not an error, as in Vault.
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/policies/acl/app",
        None,
    )
    .await;
    let list = b
        .expect(StatusCode::OK, "LIST", "sys/policies/acl", None)
        .await;
    assert_eq!(keys(&list), ["default", "root"]);
}

#[tokio::test]
async fn vaultrs_manages_policies_through_the_older_path() {
    let b = Broker::start().await;
    let client = b.vaultrs();
    vaultrs::sys::policy::set(&client, "ci", APP).await.unwrap();
    let read = vaultrs::sys::policy::read(&client, "ci").await.unwrap();
    assert_eq!(read.name, "ci");
    assert_eq!(read.rules, APP);
    let list = vaultrs::sys::policy::list(&client).await.unwrap();
    assert_eq!(list.policies, ["ci", "default", "root"]);
    // The older path also takes the text as `rules`.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policy/ci2",
        Some(json!({ "policy": "", "rules": APP })),
    )
    .await;
    b.expect(
        StatusCode::BAD_REQUEST,
        "PUT",
        "sys/policies/acl/ci2",
        Some(json!({ "rules": APP })),
    )
    .await;
    // What one path writes, the other reads.
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/acl/ci", None)
        .await;
    assert_eq!(read["data"]["policy"], APP);
    let refused = vaultrs::sys::policy::set(&client, "ci", r#"path "x" { policy = "all" }"#).await;
    assert!(refused.is_err());
    vaultrs::sys::policy::delete(&client, "ci").await.unwrap();
    assert!(vaultrs::sys::policy::read(&client, "ci").await.is_err());
}
