//! The KV secrets engine end to end, over HTTP against a broker process:
//! version 2 (check-and-set, versions and their deletion, undeletion and
//! destruction, `max_versions`, `delete_version_after`, metadata and custom
//! metadata, merge patch, subkeys, lists), version 1, the mount options
//! (`type=kv-v2`, `options.version`) as `sys/mounts` lists them, bad input,
//! policies on `secret/data/app/*`, the audit log's HMACs, what storage
//! holds, and the Vault clients `vaultrs` (`kv1`, `kv2`) and `hvac`
//! (`secrets.kv.v1`, `secrets.kv.v2`, `tests/hvac/test_kv.py`) unchanged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use vaultrs::api::kv2::requests::{
    SetConfigurationRequest, SetSecretMetadataRequest, SetSecretRequestOptions,
};
use vaultrs::error::ClientError;
use vaultrs::{kv1, kv2};

use crate::audit::{audit_config, entries};
use crate::hvac::run_hvac_script;
use crate::process::{Broker, first_error};

/// Enables a KV mount at `path` with `body` (`{"type": ...}`).
async fn mount(b: &Broker, path: &str, body: Value) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("sys/mounts/{path}"),
        Some(body),
    )
    .await;
}

/// Writes `data` at `secret/data/<path>` with `options`; the answer.
async fn write(b: &Broker, path: &str, data: Value, options: Value) -> (StatusCode, Value) {
    b.call(
        "POST",
        &format!("secret/data/{path}"),
        Some(json!({ "data": data, "options": options })),
    )
    .await
}

/// A PATCH with `content_type` and `body`, with the root token.
async fn patch(b: &Broker, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
    let resp = b
        .http
        .patch(format!("{}/{path}", b.base))
        .header("X-Vault-Token", &b.token)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

/// The status and messages of a vaultrs API error; panics on success or
/// on any other error (a response vaultrs could not read, above all).
fn api_error<T: std::fmt::Debug>(what: &str, r: Result<T, ClientError>) -> (u16, Vec<String>) {
    match r {
        Err(ClientError::APIError { code, errors }) => (code, errors),
        other => panic!("{what}: expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn kv_v2_versions_check_and_set_deletion_and_destruction() {
    let b = Broker::start().await;
    mount(&b, "secret", json!({ "type": "kv-v2" })).await;
    // Listed as Vault lists it: type kv, version 2 in its options.
    let mounts = b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    assert_eq!(mounts["data"]["secret/"]["type"], "kv", "{mounts}");
    assert_eq!(
        mounts["data"]["secret/"]["options"],
        json!({ "version": "2" })
    );
    let tune = b
        .expect(StatusCode::OK, "GET", "sys/mounts/secret/tune", None)
        .await;
    assert_eq!(tune["data"]["options"]["version"], "2");

    // Version 1, only if new (cas 0).
    let (status, v1) = write(
        &b,
        "app/db",
        json!({ "password": "one" }),
        json!({ "cas": 0 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_eq!(v1["data"]["version"], 1);
    assert_eq!(v1["data"]["deletion_time"], "");
    assert_eq!(v1["data"]["destroyed"], false);
    assert_eq!(v1["data"]["custom_metadata"], Value::Null);
    assert!(v1["data"]["created_time"].as_str().unwrap().ends_with('Z'));
    // cas 0 again: the secret exists now. Vault's status and words.
    let (status, refused) = write(
        &b,
        "app/db",
        json!({ "password": "x" }),
        json!({ "cas": 0 }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(
        first_error(&refused),
        "check-and-set parameter did not match the current version"
    );
    let (status, v2) = write(
        &b,
        "app/db",
        json!({ "password": "two" }),
        json!({ "cas": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(v2["data"]["version"], 2);
    // A stale cas loses, and nothing was written.
    let (status, _) = write(
        &b,
        "app/db",
        json!({ "password": "x" }),
        json!({ "cas": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Reads: the newest, or the version asked for.
    let read = b
        .expect(StatusCode::OK, "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(read["data"]["data"], json!({ "password": "two" }));
    assert_eq!(read["data"]["metadata"]["version"], 2);
    assert_eq!(read["lease_id"], "");
    assert_eq!(read["lease_duration"], 0);
    let old = b
        .expect(StatusCode::OK, "GET", "secret/data/app/db?version=1", None)
        .await;
    assert_eq!(old["data"]["data"], json!({ "password": "one" }));
    assert_eq!(old["data"]["metadata"]["version"], 1);
    for missing in ["secret/data/app/db?version=9", "secret/data/app/none"] {
        let (status, body) = b.call("GET", missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(body, json!({ "errors": [] }), "{missing}");
    }

    // The mount requires cas: a write without it is refused.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/config",
        Some(json!({ "cas_required": true })),
    )
    .await;
    let config = b.expect(StatusCode::OK, "GET", "secret/config", None).await;
    assert_eq!(
        config["data"],
        json!({ "max_versions": 0, "cas_required": true, "delete_version_after": "0s" })
    );
    let (status, refused) = b
        .call(
            "POST",
            "secret/data/app/db",
            Some(json!({ "data": { "password": "x" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        first_error(&refused),
        "check-and-set parameter required for this call"
    );
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/config",
        Some(json!({ "cas_required": false })),
    )
    .await;

    // Soft delete of the newest: a read is a 404 that carries the
    // version's metadata (hvac reads deletion_time from it).
    b.expect(StatusCode::NO_CONTENT, "DELETE", "secret/data/app/db", None)
        .await;
    let (status, deleted) = b.call("GET", "secret/data/app/db", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{deleted}");
    assert_eq!(deleted["data"]["data"], Value::Null);
    assert_eq!(deleted["data"]["metadata"]["version"], 2);
    assert_ne!(deleted["data"]["metadata"]["deletion_time"], "");
    assert_eq!(deleted["data"]["metadata"]["destroyed"], false);
    // The older version still reads.
    b.expect(StatusCode::OK, "GET", "secret/data/app/db?version=1", None)
        .await;
    // Undelete brings it back.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/undelete/app/db",
        Some(json!({ "versions": [2] })),
    )
    .await;
    let back = b
        .expect(StatusCode::OK, "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(back["data"]["data"], json!({ "password": "two" }));
    assert_eq!(back["data"]["metadata"]["deletion_time"], "");
    // delete/ takes chosen versions, as a list or as text.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/delete/app/db",
        Some(json!({ "versions": "1,2" })),
    )
    .await;
    for v in [1, 2] {
        let (status, _) = b
            .call("GET", &format!("secret/data/app/db?version={v}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "version {v}");
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/undelete/app/db",
        Some(json!({ "versions": [1, 2] })),
    )
    .await;
    // Destroy is for good: undelete cannot bring it back.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/destroy/app/db",
        Some(json!({ "versions": [1] })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/undelete/app/db",
        Some(json!({ "versions": [1] })),
    )
    .await;
    let (status, destroyed) = b.call("GET", "secret/data/app/db?version=1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(destroyed["data"]["metadata"]["destroyed"], true);
    assert_eq!(destroyed["data"]["data"], Value::Null);
    // Nothing to act on: versions are required.
    let (status, body) = b
        .call(
            "POST",
            "secret/delete/app/db",
            Some(json!({ "versions": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&body), "No version number provided");

    // Metadata: the versions, the settings, custom metadata.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/metadata/app/db",
        Some(json!({
            "max_versions": 2,
            "custom_metadata": { "owner": "payments", "rotated": 3 },
        })),
    )
    .await;
    let meta = b
        .expect(StatusCode::OK, "GET", "secret/metadata/app/db", None)
        .await;
    let m = &meta["data"];
    assert_eq!(m["current_version"], 2);
    assert_eq!(m["oldest_version"], 0);
    assert_eq!(m["max_versions"], 2);
    assert_eq!(m["cas_required"], false);
    assert_eq!(m["delete_version_after"], "0s");
    assert_eq!(
        m["custom_metadata"],
        json!({ "owner": "payments", "rotated": "3" })
    );
    assert_eq!(m["versions"]["1"]["destroyed"], true);
    assert_eq!(m["versions"]["2"]["destroyed"], false);
    assert_eq!(m["versions"]["2"]["deletion_time"], "");
    // Made with the first version.
    assert_eq!(m["created_time"], v1["data"]["created_time"]);
    // A version's metadata carries the secret's custom metadata.
    let read = b
        .expect(StatusCode::OK, "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(
        read["data"]["metadata"]["custom_metadata"]["owner"],
        "payments"
    );

    // max_versions 2: two more writes leave versions 3 and 4, and the
    // older ones are gone from the metadata and from reads.
    for i in 3..=4 {
        let (status, w) = write(
            &b,
            "app/db",
            json!({ "password": format!("pw-value-{i}") }),
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{w}");
        assert_eq!(w["data"]["version"], i);
    }
    let meta = b
        .expect(StatusCode::OK, "GET", "secret/metadata/app/db", None)
        .await;
    let kept: Vec<&String> = meta["data"]["versions"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(kept, ["3", "4"], "{meta}");
    assert_eq!(meta["data"]["oldest_version"], 3);
    let (status, body) = b.call("GET", "secret/data/app/db?version=2", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({ "errors": [] }))
    );

    // What storage holds: the metadata and each kept version as records of
    // their own, nothing of the removed or destroyed versions' values.
    let uuid = mounts["data"]["secret/"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Metadata delete: every version, for good.
    let (status, _) = write(&b, "gone", json!({ "k": "v" }), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "secret/metadata/gone",
        None,
    )
    .await;
    let (status, _) = b.call("GET", "secret/data/gone", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = b.call("GET", "secret/metadata/gone", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut b = b;
    b.stop().await;
    let store = b.sealed_storage().await;
    let root = format!("logical/{uuid}/");
    let keys: Vec<String> = store
        .list(&root)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k[root.len()..].to_owned())
        .collect();
    let metadata: Vec<&String> = keys.iter().filter(|k| k.starts_with("metadata/")).collect();
    assert_eq!(metadata, ["metadata/app/db"], "{keys:?}");
    let versions: Vec<&String> = keys.iter().filter(|k| k.starts_with("versions/")).collect();
    assert_eq!(versions.len(), 2, "{keys:?}");
    assert!(versions.iter().any(|k| k.ends_with("/3")), "{keys:?}");
    assert!(versions.iter().any(|k| k.ends_with("/4")), "{keys:?}");
    // Sealed: neither a value nor custom metadata is in the database's
    // files in clear.
    for entry in std::fs::read_dir(b.config.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("broker.db") {
            let bytes = std::fs::read(entry.path()).unwrap();
            for clear in [&b"payments"[..], b"pw-value-4"] {
                assert!(
                    !bytes.windows(clear.len()).any(|w| w == clear),
                    "{:?} in clear in {:?}",
                    String::from_utf8_lossy(clear),
                    entry.file_name()
                );
            }
        }
    }
}

#[tokio::test]
async fn kv_v2_patch_subkeys_lists_and_delete_version_after() {
    let b = Broker::start().await;
    mount(
        &b,
        "secret",
        json!({ "type": "kv", "options": { "version": 2 } }),
    )
    .await;
    let (status, _) = write(
        &b,
        "app/db",
        json!({ "user": "app", "password": "s3cr3t", "tls": { "ca": "pem", "verify": true } }),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A merge patch (RFC 7396): null removes, objects merge, the rest
    // replaces; the result is a new version.
    let merge = "application/merge-patch+json";
    let (status, patched) = patch(
        &b,
        "secret/data/app/db",
        merge,
        json!({ "data": { "password": "rotated", "user": null, "tls": { "verify": false } }, "options": { "cas": 1 } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"]["version"], 2);
    let read = b
        .expect(StatusCode::OK, "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(
        read["data"]["data"],
        json!({ "password": "rotated", "tls": { "ca": "pem", "verify": false } })
    );
    // A stale cas loses; JSON that does not say it is a merge patch is
    // refused (Vault's 415); a secret that is not there is a 404.
    let (status, body) = patch(
        &b,
        "secret/data/app/db",
        merge,
        json!({ "data": { "password": "x" }, "options": { "cas": 1 } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = patch(
        &b,
        "secret/data/app/db",
        "application/json",
        json!({ "data": { "password": "x" } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(
        first_error(&body).contains("application/merge-patch+json"),
        "{body}"
    );
    let (status, _) = patch(
        &b,
        "secret/data/app/none",
        merge,
        json!({ "data": { "a": "b" } }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = patch(&b, "secret/data/app/db", merge, json!({ "options": {} })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&body), "no data provided");
    // A patch of a deleted newest version: a 404 with its metadata.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "secret/data/app/db", None)
        .await;
    let (status, body) = patch(
        &b,
        "secret/data/app/db",
        merge,
        json!({ "data": { "a": "b" } }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["data"]["version"], 2, "{body}");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/undelete/app/db",
        Some(json!({ "versions": [2] })),
    )
    .await;
    // Metadata patch: custom metadata merges, null removes a key.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/metadata/app/db",
        Some(json!({ "custom_metadata": { "owner": "payments", "tier": "1" } })),
    )
    .await;
    let (status, body) = patch(
        &b,
        "secret/metadata/app/db",
        merge,
        json!({ "custom_metadata": { "tier": null, "env": "prod" }, "max_versions": 5 }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let meta = b
        .expect(StatusCode::OK, "GET", "secret/metadata/app/db", None)
        .await;
    assert_eq!(
        meta["data"]["custom_metadata"],
        json!({ "owner": "payments", "env": "prod" })
    );
    assert_eq!(meta["data"]["max_versions"], 5);
    let (status, _) = patch(
        &b,
        "secret/metadata/app/none",
        merge,
        json!({ "max_versions": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Subkeys: the structure, never a value; depth 1 stops at the top.
    let sub = b
        .expect(StatusCode::OK, "GET", "secret/subkeys/app/db", None)
        .await;
    assert_eq!(
        sub["data"]["subkeys"],
        json!({ "password": null, "tls": { "ca": null, "verify": null } })
    );
    assert_eq!(sub["data"]["metadata"]["version"], 2);
    let top = b
        .expect(StatusCode::OK, "GET", "secret/subkeys/app/db?depth=1", None)
        .await;
    assert_eq!(
        top["data"]["subkeys"],
        json!({ "password": null, "tls": null })
    );
    let first = b
        .expect(
            StatusCode::OK,
            "GET",
            "secret/subkeys/app/db?version=1",
            None,
        )
        .await;
    assert_eq!(first["data"]["subkeys"]["user"], Value::Null);
    assert!(
        first["data"]["subkeys"]
            .as_object()
            .unwrap()
            .contains_key("user")
    );

    // Lists: secrets and folders, one level at a time.
    for path in ["app/api", "team/a/b", "top"] {
        let (status, _) = write(&b, path, json!({ "k": "v" }), json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let top = b
        .expect(StatusCode::OK, "LIST", "secret/metadata", None)
        .await;
    assert_eq!(top["data"]["keys"], json!(["app/", "team/", "top"]));
    let app = b
        .expect(StatusCode::OK, "GET", "secret/metadata/app?list=true", None)
        .await;
    assert_eq!(app["data"]["keys"], json!(["api", "db"]));
    let team = b
        .expect(StatusCode::OK, "LIST", "secret/metadata/team/", None)
        .await;
    assert_eq!(team["data"]["keys"], json!(["a/"]));
    let (status, body) = b.call("LIST", "secret/metadata/nothing", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({ "errors": [] }))
    );

    // delete_version_after: a new version is scheduled for deletion, reads
    // until then and is a 404 with its metadata after.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/config",
        Some(json!({ "delete_version_after": "1h" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/metadata/brief",
        Some(json!({ "delete_version_after": "1s" })),
    )
    .await;
    let (status, w) = write(&b, "brief", json!({ "k": "v" }), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (created, deletion) = (
        humantime::parse_rfc3339(w["data"]["created_time"].as_str().unwrap()).unwrap(),
        humantime::parse_rfc3339(w["data"]["deletion_time"].as_str().unwrap()).unwrap(),
    );
    // The shorter of the secret's and the mount's settings.
    assert_eq!(
        deletion.duration_since(created).unwrap(),
        Duration::from_secs(1)
    );
    let config = b.expect(StatusCode::OK, "GET", "secret/config", None).await;
    assert_eq!(config["data"]["delete_version_after"], "1h0m0s");
    let deadline = Instant::now() + Duration::from_secs(20);
    let gone = loop {
        let (status, body) = b.call("GET", "secret/data/brief", None).await;
        if status == StatusCode::NOT_FOUND {
            break body;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(Instant::now() < deadline, "the version was never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        gone["data"]["metadata"]["deletion_time"],
        w["data"]["deletion_time"]
    );
    // Negative turns it off for every secret.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "secret/config",
        Some(json!({ "delete_version_after": -1 })),
    )
    .await;
    let (_, w) = write(&b, "brief", json!({ "k": "v2" }), json!({})).await;
    assert_eq!(w["data"]["deletion_time"], "", "{w}");
    let config = b.expect(StatusCode::OK, "GET", "secret/config", None).await;
    assert_eq!(config["data"]["delete_version_after"], "-1s");
}

/// Writes to one secret at once: with check-and-set, exactly one wins;
/// without, each gets a version of its own, none lost or repeated.
#[tokio::test]
async fn concurrent_writes_to_one_secret_never_share_a_version() {
    let b = Broker::start().await;
    mount(&b, "secret", json!({ "type": "kv-v2" })).await;
    const WRITERS: usize = 16;
    let answers = futures_util::future::join_all(
        (0..WRITERS).map(|i| write(&b, "race/cas", json!({ "writer": i }), json!({ "cas": 0 }))),
    )
    .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(won.len(), 1, "one write wins: {statuses:?}");
    assert_eq!(won[0]["data"]["version"], 1);
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(
            first_error(body),
            "check-and-set parameter did not match the current version"
        );
    }

    let answers = futures_util::future::join_all(
        (0..WRITERS).map(|i| write(&b, "race/free", json!({ "writer": i }), json!({}))),
    )
    .await;
    let mut versions: Vec<u64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["data"]["version"].as_u64().unwrap()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=WRITERS as u64).collect::<Vec<_>>());
    let meta = b
        .expect(StatusCode::OK, "GET", "secret/metadata/race/free", None)
        .await;
    assert_eq!(meta["data"]["current_version"], WRITERS as u64);
    // The default max_versions, 10, kept the newest ten.
    assert_eq!(meta["data"]["versions"].as_object().unwrap().len(), 10);
}

#[tokio::test]
async fn kv_refuses_bad_input_with_a_clear_400() {
    let b = Broker::start().await;
    mount(&b, "secret", json!({ "type": "kv-v2" })).await;
    mount(&b, "kv1", json!({ "type": "kv" })).await;

    // Paths: an empty segment, too long.
    let (status, body) = write(&b, "a//b", json!({ "k": "v" }), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("empty segment"), "{body}");
    let long = "p".repeat(600);
    let (status, body) = write(&b, &long, json!({ "k": "v" }), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("at most 512 bytes"), "{body}");
    let (status, body) = b
        .call("PUT", &format!("kv1/{long}"), Some(json!({ "k": "v" })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Values: too large, not an object, absent.
    let big = "x".repeat(600 * 1024);
    let (status, body) = write(&b, "big", json!({ "blob": big }), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = first_error(&body);
    assert!(message.contains("at most 524288"), "{message}");
    assert!(!message.contains("xxxx"), "the value is not quoted");
    let (status, body) = b.call("PUT", "kv1/big", Some(json!({ "blob": big }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = b
        .call("POST", "secret/data/x", Some(json!({ "data": "hunter2" })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("hunter2"), "{body}");
    let (status, body) = b.call("POST", "secret/data/x", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&body), "no data provided");
    let (status, body) = write(&b, "x", json!({ "k": "v" }), json!({ "cas": "one" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&body), "error parsing check-and-set parameter");
    let (status, body) = b.call("PUT", "kv1/empty", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&body), "missing data fields");

    // Settings: bounds and types.
    for (path, body) in [
        ("secret/config", json!({ "max_versions": 1001 })),
        ("secret/config", json!({ "max_versions": -1 })),
        ("secret/config", json!({ "delete_version_after": "soon" })),
        ("secret/metadata/x", json!({ "max_versions": 5000 })),
        (
            "secret/metadata/x",
            json!({ "delete_version_after": "-1s" }),
        ),
        (
            "secret/metadata/x",
            json!({ "custom_metadata": { "k": "" } }),
        ),
        (
            "secret/metadata/x",
            json!({ "custom_metadata": { "k": { "nested": 1 } } }),
        ),
        ("secret/delete/x", json!({ "versions": ["one"] })),
        (
            "secret/destroy/x",
            json!({ "versions": (0..1001).collect::<Vec<_>>() }),
        ),
    ] {
        let (status, answer) = b.call("POST", path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
    }
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, body) = b
        .call(
            "POST",
            "secret/metadata/x",
            Some(json!({ "custom_metadata": many })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        first_error(&body),
        "custom_metadata validation failed: payload must contain at most 64 keys, provided 65"
    );
    // None of those made metadata.
    let (status, _) = b.call("GET", "secret/metadata/x", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Queries: a version that is not a number.
    let (status, _) = b.call("GET", "secret/data/x?version=latest", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Mount options: a version KV does not have; options changed by a tune.
    let (status, body) = b
        .call(
            "POST",
            "sys/mounts/kv3",
            Some(json!({ "type": "kv", "options": { "version": "3" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(first_error(&body).contains("invalid kv version"), "{body}");
    let (status, body) = b
        .call(
            "POST",
            "sys/mounts/kv1/tune",
            Some(json!({ "options": { "version": "2" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(first_error(&body).contains("cannot be changed"), "{body}");
    // A version 2 mount has no version 1 paths.
    let (status, body) = b.call("GET", "secret/app/db", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn kv_v1_reads_writes_lists_and_deletes_at_any_path() {
    let b = Broker::start().await;
    mount(&b, "kv1", json!({ "type": "kv" })).await;
    let mounts = b.expect(StatusCode::OK, "GET", "sys/mounts", None).await;
    assert_eq!(mounts["data"]["kv1/"]["type"], "kv");
    assert_eq!(mounts["data"]["kv1/"]["options"], Value::Null);

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "kv1/app/db",
        Some(json!({ "password": "s3cr3t", "ttl": "1h" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "kv1/app/api",
        Some(json!({ "token": "t0k3n", "port": 8443 })),
    )
    .await;
    // `data/` is an ordinary path on version 1.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "kv1/data/x",
        Some(json!({ "k": "v" })),
    )
    .await;
    let read = b.expect(StatusCode::OK, "GET", "kv1/app/db", None).await;
    assert_eq!(read["data"], json!({ "password": "s3cr3t", "ttl": "1h" }));
    // The secret's ttl is a hint of when to read it again, not a lease.
    assert_eq!(read["lease_duration"], 3600);
    assert_eq!(read["lease_id"], "");
    assert_eq!(read["renewable"], false);
    let api = b.expect(StatusCode::OK, "GET", "kv1/app/api", None).await;
    assert_eq!(api["data"]["port"], 8443);
    // Without one: the mount's default TTL (the system's, 32 days).
    assert_eq!(api["lease_duration"], 32 * 24 * 3600);
    // A write replaces the whole secret.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "kv1/app/api",
        Some(json!({ "token": "new" })),
    )
    .await;
    let api = b.expect(StatusCode::OK, "GET", "kv1/app/api", None).await;
    assert_eq!(api["data"], json!({ "token": "new" }));

    let top = b.expect(StatusCode::OK, "LIST", "kv1", None).await;
    assert_eq!(top["data"]["keys"], json!(["app/", "data/"]));
    let app = b
        .expect(StatusCode::OK, "GET", "kv1/app?list=true", None)
        .await;
    assert_eq!(app["data"]["keys"], json!(["api", "db"]));
    let (status, _) = b.call("LIST", "kv1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    b.expect(StatusCode::NO_CONTENT, "DELETE", "kv1/app/db", None)
        .await;
    let (status, body) = b.call("GET", "kv1/app/db", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({ "errors": [] }))
    );
    // Deleting what is not there is not an error, as in Vault.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "kv1/app/db", None)
        .await;
    // PATCH is version 2's.
    let (status, _) = patch(&b, "kv1/app/api", "application/merge-patch+json", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_token_with_a_policy_on_kv_data_app_reads_only_that() {
    let b = Broker::start().await;
    mount(&b, "secret", json!({ "type": "kv-v2" })).await;
    for path in ["app/db", "other/db"] {
        let (status, _) = write(&b, path, json!({ "password": path }), json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (reader, _) = b
        .token_with_policy(
            "app-reader",
            r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
        )
        .await;
    let (status, body) = b.call_as(&reader, "GET", "secret/data/app/db", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["data"]["password"], "app/db");
    for (method, path, body) in [
        ("GET", "secret/data/other/db", None),
        ("GET", "secret/metadata/app/db", None),
        ("GET", "secret/subkeys/app/db", None),
        ("LIST", "secret/metadata/app", None),
        (
            "POST",
            "secret/data/app/db",
            Some(json!({ "data": { "a": "b" } })),
        ),
        ("DELETE", "secret/data/app/db", None),
        (
            "POST",
            "secret/destroy/app/db",
            Some(json!({ "versions": [1] })),
        ),
        ("DELETE", "secret/metadata/app/db", None),
        ("GET", "secret/config", None),
    ] {
        let (status, answer) = b.call_as(&reader, method, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }

    // create and update are granted apart: a token that may only create
    // writes new secrets and cannot overwrite one.
    let (creator, _) = b
        .token_with_policy(
            "app-creator",
            r#"path "secret/data/app/*" { capabilities = ["create"] }"#,
        )
        .await;
    let new = json!({ "data": { "a": "b" } });
    let (status, body) = b
        .call_as(&creator, "POST", "secret/data/app/new", Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = b
        .call_as(&creator, "POST", "secret/data/app/db", Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // patch is its own capability.
    let (patcher, _) = b
        .token_with_policy(
            "app-patcher",
            r#"path "secret/data/app/*" { capabilities = ["patch"] }"#,
        )
        .await;
    let resp = b
        .http
        .patch(format!("{}/secret/data/app/db", b.base))
        .header("X-Vault-Token", &patcher)
        .header("Content-Type", "application/merge-patch+json")
        .body(json!({ "data": { "extra": "1" } }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = b
        .call_as(&patcher, "POST", "secret/data/app/db", Some(new))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn kv_values_are_hmacd_in_the_audit_log() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let b = Broker::start_with(
        None,
        &audit_config(logs.path(), &[("file", log.to_str().unwrap())]),
    )
    .await;
    mount(&b, "secret", json!({ "type": "kv-v2" })).await;
    mount(&b, "kv1", json!({ "type": "kv" })).await;
    let (password, pin) = ("correct-horse-battery", 80_214_467_u64);
    let (status, _) = write(
        &b,
        "app/db",
        json!({ "password": password, "pin": pin, "nested": { "key": password } }),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    b.expect(StatusCode::OK, "GET", "secret/data/app/db", None)
        .await;
    let (status, _) = patch(
        &b,
        "secret/data/app/db",
        "application/merge-patch+json",
        json!({ "data": { "password": format!("{password}-2") } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "kv1/app",
        Some(json!({ "password": password, "pin": pin })),
    )
    .await;
    b.expect(StatusCode::OK, "GET", "kv1/app", None).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(password),
        "a secret in the audit log in clear"
    );
    assert!(!text.contains(&pin.to_string()), "a secret number in clear");
    // What sys/audit-hash gives for the value is what the log holds.
    let hashed = b
        .expect(
            StatusCode::OK,
            "POST",
            "sys/audit-hash/file",
            Some(json!({ "input": password })),
        )
        .await;
    let hash = hashed["data"]["hash"].as_str().unwrap().to_owned();
    let pin_hash = b
        .expect(
            StatusCode::OK,
            "POST",
            "sys/audit-hash/file",
            Some(json!({ "input": pin.to_string() })),
        )
        .await["data"]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let all = entries(&log);
    let written = all
        .iter()
        .find(|e| e["type"] == "request" && e["request"]["path"] == "secret/data/app/db")
        .unwrap();
    assert_eq!(
        written["request"]["data"]["data"]["password"],
        hash.as_str()
    );
    assert_eq!(
        written["request"]["data"]["data"]["nested"]["key"],
        hash.as_str()
    );
    assert_eq!(written["request"]["data"]["data"]["pin"], pin_hash.as_str());
    let read = all
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "secret/data/app/db"
                && e["request"]["operation"] == "read"
        })
        .unwrap();
    assert_eq!(read["response"]["data"]["data"]["password"], hash.as_str());
    assert_eq!(read["request"]["mount_type"], "kv");
    let v1 = all
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "kv1/app"
                && e["request"]["operation"] == "read"
        })
        .unwrap();
    assert_eq!(v1["response"]["data"]["password"], hash.as_str());
    assert_eq!(v1["response"]["data"]["pin"], pin_hash.as_str());
}

#[tokio::test]
async fn vaultrs_kv2_and_kv1_work_unchanged() {
    let b = Broker::start().await;
    mount(&b, "secret", json!({ "type": "kv-v2" })).await;
    mount(&b, "kv1", json!({ "type": "kv" })).await;
    let client = b.vaultrs();

    // kv2: config.
    kv2::config::set(
        &client,
        "secret",
        Some(
            SetConfigurationRequest::builder()
                .max_versions(5u64)
                .delete_version_after("0s"),
        ),
    )
    .await
    .unwrap();
    let config = kv2::config::read(&client, "secret").await.unwrap();
    assert_eq!(
        (
            config.max_versions,
            config.cas_required,
            config.delete_version_after.as_str()
        ),
        (5, false, "0s")
    );

    // kv2: set, set with cas, read, read a version.
    let mut secret = HashMap::new();
    secret.insert("password", "one");
    let v1 = kv2::set(&client, "secret", "app/db", &secret)
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert!(!v1.destroyed);
    secret.insert("password", "two");
    let (code, errors) = api_error(
        "a stale cas",
        kv2::set_with_options(
            &client,
            "secret",
            "app/db",
            &secret,
            SetSecretRequestOptions { cas: 0 },
        )
        .await,
    );
    assert_eq!(code, 400);
    assert_eq!(
        errors,
        ["check-and-set parameter did not match the current version"]
    );
    let v2 = kv2::set_with_options(
        &client,
        "secret",
        "app/db",
        &secret,
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    .unwrap();
    assert_eq!(v2.version, 2);
    let read: HashMap<String, String> = kv2::read(&client, "secret", "app/db").await.unwrap();
    assert_eq!(read["password"], "two");
    let old: HashMap<String, String> = kv2::read_version(&client, "secret", "app/db", 1)
        .await
        .unwrap();
    assert_eq!(old["password"], "one");

    // kv2: metadata.
    let mut custom = HashMap::new();
    custom.insert("owner".to_owned(), "payments".to_owned());
    kv2::set_metadata(
        &client,
        "secret",
        "app/db",
        Some(
            SetSecretMetadataRequest::builder()
                .max_versions(3u64)
                .custom_metadata(custom.clone()),
        ),
    )
    .await
    .unwrap();
    let meta = kv2::read_metadata(&client, "secret", "app/db")
        .await
        .unwrap();
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.max_versions, 3);
    assert_eq!(meta.custom_metadata, Some(custom));
    assert_eq!(meta.versions.len(), 2);
    assert_eq!(meta.delete_version_after, "0s");

    // kv2: list, delete, undelete, destroy, delete metadata.
    kv2::set(&client, "secret", "app/api", &secret)
        .await
        .unwrap();
    let keys = kv2::list(&client, "secret", "app").await.unwrap();
    assert_eq!(keys, ["api", "db"]);
    let keys = kv2::list(&client, "secret", "").await.unwrap();
    assert_eq!(keys, ["app/"]);
    kv2::delete_latest(&client, "secret", "app/db")
        .await
        .unwrap();
    let (code, _) = api_error(
        "a deleted version",
        kv2::read::<HashMap<String, String>>(&client, "secret", "app/db").await,
    );
    assert_eq!(code, 404);
    kv2::undelete_versions(&client, "secret", "app/db", vec![2])
        .await
        .unwrap();
    let read: HashMap<String, String> = kv2::read(&client, "secret", "app/db").await.unwrap();
    assert_eq!(read["password"], "two");
    kv2::delete_versions(&client, "secret", "app/db", vec![1])
        .await
        .unwrap();
    kv2::destroy_versions(&client, "secret", "app/db", vec![2])
        .await
        .unwrap();
    let meta = kv2::read_metadata(&client, "secret", "app/db")
        .await
        .unwrap();
    assert!(meta.versions["2"].destroyed);
    assert_ne!(meta.versions["1"].deletion_time, "");
    kv2::delete_metadata(&client, "secret", "app/db")
        .await
        .unwrap();
    let (code, _) = api_error(
        "metadata of a deleted secret",
        kv2::read_metadata(&client, "secret", "app/db").await,
    );
    assert_eq!(code, 404);

    // kv1: set, get, get_raw, list, delete.
    let mut data = HashMap::new();
    data.insert("password", "s3cr3t");
    data.insert("ttl", "30m");
    kv1::set(&client, "kv1", "app/db", &data).await.unwrap();
    let got: HashMap<String, String> = kv1::get(&client, "kv1", "app/db").await.unwrap();
    assert_eq!(got["password"], "s3cr3t");
    let raw = kv1::get_raw(&client, "kv1", "app/db").await.unwrap();
    assert_eq!(raw.lease_duration, 1800);
    assert_eq!(raw.lease_id, "");
    let listed = kv1::list(&client, "kv1", "app").await.unwrap();
    assert_eq!(listed.data.keys, ["db"]);
    let listed = kv1::list(&client, "kv1", "").await.unwrap();
    assert_eq!(listed.data.keys, ["app/"]);
    kv1::delete(&client, "kv1", "app/db").await.unwrap();
    let (code, _) = api_error(
        "a deleted kv1 secret",
        kv1::get::<HashMap<String, String>>(&client, "kv1", "app/db").await,
    );
    assert_eq!(code, 404);

    // A token holding only `secret/data/app/*` read reads there and only there.
    let (token, _) = b
        .token_with_policy(
            "vaultrs-app",
            r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
        )
        .await;
    let app = b.vaultrs_as(&token);
    let read: HashMap<String, String> = kv2::read(&app, "secret", "app/api").await.unwrap();
    assert_eq!(read["password"], "two");
    let (code, _) = api_error(
        "a write without update",
        kv2::set(&app, "secret", "app/api", &secret).await,
    );
    assert_eq!(code, 403);
    let (code, _) = api_error("a list", kv2::list(&app, "secret", "app").await);
    assert_eq!(code, 403);
}

/// hvac, unchanged, against KV: `tests/hvac/test_kv.py` mounts version 1
/// and version 2 engines and drives `secrets.kv.v1` and `secrets.kv.v2`.
#[tokio::test]
async fn hvac_drives_kv_v1_and_v2() {
    let b = Broker::start().await;
    run_hvac_script(&b, "test_kv.py", &[]);
}
