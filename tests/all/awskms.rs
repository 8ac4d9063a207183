//! The `awskms` seal against a real KMS API server: moto's server mode on
//! loopback (`broker_tests::kms::LocalKms`), which checks every request's
//! SigV4 signature. The seal is driven through its library API, as the
//! broker's key hierarchy drives it, and then by a broker process whose
//! `[seal]` is `awskms`: init, auto-unseal at start, and a KMS that
//! refuses or is gone keeping it sealed with nothing written.

use std::time::{Duration, Instant};

use broker::seal::{AwsKmsConfig, AwsKmsSeal, Seal, SealError, SealKind};
use broker::storage::Backend;
use broker_tests::kms::LocalKms;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::Broker;

const ROOT_KEY_AAD: &[u8] = b"core/root-key";

fn seal(config: &AwsKmsConfig) -> AwsKmsSeal {
    AwsKmsSeal::new(config).unwrap()
}

#[tokio::test]
async fn wraps_and_unwraps_through_kms() {
    let kms = LocalKms::start();
    let seal = seal(&kms.seal_config(&kms.key_id));
    let info = seal.check().await.unwrap();
    assert_eq!(info.arn, kms.key_arn);
    assert_eq!(info.state, "Enabled");

    let root_key = [7u8; 32];
    let blob = seal.encrypt(&root_key, ROOT_KEY_AAD).await.unwrap();
    assert_eq!(blob.provider, SealKind::Awskms);
    assert_eq!(
        blob.key_id, kms.key_arn,
        "the blob names the key by its ARN"
    );
    assert!(!blob.ciphertext.windows(32).any(|w| w == root_key));
    let opened = seal.decrypt(&blob, ROOT_KEY_AAD).await.unwrap();
    assert_eq!(&opened[..], &root_key);

    // Stored as JSON (core/root-key) and read back.
    let stored = serde_json::to_vec(&blob).unwrap();
    let blob: broker::seal::WrappedBlob = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        &seal.decrypt(&blob, ROOT_KEY_AAD).await.unwrap()[..],
        &root_key
    );

    // The config may name the key by alias; the blob still names the ARN.
    kms.call(
        "CreateAlias",
        serde_json::json!({"AliasName": "alias/broker-seal", "TargetKeyId": kms.key_id}),
    );
    let by_alias = self::seal(&kms.seal_config("alias/broker-seal"));
    let blob = by_alias.encrypt(&root_key, ROOT_KEY_AAD).await.unwrap();
    assert_eq!(blob.key_id, kms.key_arn);

    // After the config moves to a new key, old blobs open with their own.
    let (new_id, new_arn) = kms.create_key();
    let moved = self::seal(&kms.seal_config(&new_id));
    assert_eq!(
        &moved.decrypt(&blob, ROOT_KEY_AAD).await.unwrap()[..],
        &root_key
    );
    assert_eq!(
        moved.encrypt(&root_key, ROOT_KEY_AAD).await.unwrap().key_id,
        new_arn
    );
}

#[tokio::test]
async fn another_context_or_an_altered_blob_does_not_open() {
    let kms = LocalKms::start();
    let seal = seal(&kms.seal_config(&kms.key_id));
    let blob = seal.encrypt(&[1u8; 32], ROOT_KEY_AAD).await.unwrap();

    let e = seal.decrypt(&blob, b"core/keyring").await.unwrap_err();
    assert!(matches!(e, SealError::Unwrap { .. }), "{e:?}");
    let e = seal.decrypt(&blob, b"").await.unwrap_err();
    assert!(matches!(e, SealError::Unwrap { .. }), "{e:?}");

    let mut altered = blob.clone();
    let last = altered.ciphertext.len() - 1;
    altered.ciphertext[last] ^= 1;
    let e = seal.decrypt(&altered, ROOT_KEY_AAD).await.unwrap_err();
    assert!(matches!(e, SealError::Unwrap { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "awskms seal: the stored root key does not open with this key (wrong key, or altered)"
    );
}

#[tokio::test]
async fn an_unreachable_kms_is_named_quickly() {
    let kms = LocalKms::start();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = kms.seal_config(&kms.key_id);
    config.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let seal = seal(&config);
    let blob = self::seal(&kms.seal_config(&kms.key_id))
        .encrypt(&[2u8; 32], ROOT_KEY_AAD)
        .await
        .unwrap();

    let started = Instant::now();
    let errors = [
        seal.encrypt(&[2u8; 32], ROOT_KEY_AAD).await.unwrap_err(),
        seal.decrypt(&blob, ROOT_KEY_AAD).await.unwrap_err(),
        seal.check().await.unwrap_err(),
    ];
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for e in errors {
        assert!(matches!(e, SealError::Unavailable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "awskms seal unavailable: cannot reach the KMS at http://127.0.0.1:{port}/: "
            )) && text.to_lowercase().contains("refused"),
            "{text}"
        );
        assert!(!text.contains(&kms.secret_access_key), "{text}");
    }
}

#[tokio::test]
async fn kms_error_answers_are_refusals_naming_the_exception() {
    let kms = LocalKms::start();
    let unknown = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let seal = seal(&kms.seal_config(unknown));
    let e = seal.encrypt(&[3u8; 32], ROOT_KEY_AAD).await.unwrap_err();
    assert!(matches!(e, SealError::Refused { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("awskms seal refused: NotFoundException: "),
        "{e}"
    );
    let e = seal.check().await.unwrap_err();
    assert!(e.to_string().contains("NotFoundException"), "{e}");

    // A wrong secret: moto recomputes the signature and refuses it.
    let mut config = kms.seal_config(&kms.key_id);
    config.secret_key = Some("not-the-secret".to_owned().into());
    let e = self::seal(&config)
        .encrypt(&[3u8; 32], ROOT_KEY_AAD)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("awskms seal refused: SignatureDoesNotMatch: "),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-secret"));

    // A user IAM allows to encrypt but not to decrypt.
    let blob = self::seal(&kms.seal_config(&kms.key_id))
        .encrypt(&[3u8; 32], ROOT_KEY_AAD)
        .await
        .unwrap();
    let (id, secret) = kms.user_allowed("encrypt-only", &["kms:Encrypt"]);
    let mut config = kms.seal_config(&kms.key_id);
    config.access_key = Some(id);
    config.secret_key = Some(secret.into());
    let limited = self::seal(&config);
    limited.encrypt(&[3u8; 32], ROOT_KEY_AAD).await.unwrap();
    let e = limited.decrypt(&blob, ROOT_KEY_AAD).await.unwrap_err();
    assert!(matches!(e, SealError::Refused { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("awskms seal refused: AccessDenied")
            && e.to_string().contains("kms:Decrypt"),
        "{e}"
    );
}

#[tokio::test]
async fn a_disabled_key_refuses_until_enabled() {
    let kms = LocalKms::start();
    let seal = seal(&kms.seal_config(&kms.key_id));
    let root_key = [4u8; 32];
    let blob = seal.encrypt(&root_key, ROOT_KEY_AAD).await.unwrap();

    kms.call("DisableKey", serde_json::json!({"KeyId": kms.key_id}));
    let e = seal.decrypt(&blob, ROOT_KEY_AAD).await.unwrap_err();
    assert!(matches!(e, SealError::Refused { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("awskms seal refused: DisabledException: "),
        "{e}"
    );
    let e = seal.encrypt(&root_key, ROOT_KEY_AAD).await.unwrap_err();
    assert!(e.to_string().contains("DisabledException"), "{e}");
    let e = seal.check().await.unwrap_err();
    assert!(e.to_string().contains("is Disabled, not Enabled"), "{e}");

    kms.call("EnableKey", serde_json::json!({"KeyId": kms.key_id}));
    assert_eq!(
        &seal.decrypt(&blob, ROOT_KEY_AAD).await.unwrap()[..],
        &root_key
    );

    kms.call(
        "ScheduleKeyDeletion",
        serde_json::json!({"KeyId": kms.key_id, "PendingWindowInDays": 7}),
    );
    let e = seal.decrypt(&blob, ROOT_KEY_AAD).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("awskms seal refused: KMSInvalidStateException: "),
        "{e}"
    );
}

/// The key records in a stopped broker's storage (`core/…`), as stored.
async fn key_records(b: &Broker) -> Vec<(String, Option<Vec<u8>>)> {
    let storage = broker::storage::SqliteBackend::open(&b.dir().join("broker.db"))
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in ["core/seal-config", "core/root-key", "core/keyring"] {
        out.push((key.to_owned(), storage.get(key).await.unwrap()));
    }
    out
}

/// Waits (up to 20 s) for the broker to unseal itself.
async fn until_unsealed(b: &Broker) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
        if status["sealed"] == false {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "did not unseal itself: {status}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a sealed broker tells a request, and that it is sealed.
async fn sealed_because(b: &Broker) -> String {
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(status["sealed"], true, "{status}");
    let (code, body) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    body.to_string()
}

#[tokio::test]
async fn a_broker_sealed_by_kms_initializes_and_unseals_itself_at_start() {
    let kms = LocalKms::start();
    let mut b = Broker::start_uninitialized(&kms.seal_toml(&kms.key_id), "").await;
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(
        (
            &status["type"],
            &status["initialized"],
            &status["recovery_seal"]
        ),
        (&json!("awskms"), &json!(false), &json!(true)),
        "{status}"
    );

    let (code, init) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"recovery_shares": 3, "recovery_threshold": 2})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{init}\n{}", b.log());
    assert_eq!(
        init["recovery_keys"].as_array().map(Vec::len),
        Some(3),
        "{init}"
    );
    b.token = init["root_token"].as_str().unwrap().to_owned();
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(
        status["sealed"], false,
        "init unseals an auto-unseal broker: {status}"
    );
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/kept",
        Some(json!({"policy": "path \"x\" { capabilities = [\"read\"] }"})),
    )
    .await;

    // The root key is stored wrapped by KMS, naming the key's ARN.
    b.stop().await;
    let records = key_records(&b).await;
    let blob: broker::seal::WrappedBlob =
        serde_json::from_slice(records[1].1.as_ref().unwrap()).unwrap();
    assert_eq!(blob.provider, SealKind::Awskms);
    assert_eq!(blob.key_id, kms.key_arn);

    // A restart unseals through KMS with no operator.
    b.restart_sealed().await;
    until_unsealed(&b).await;
    b.expect(StatusCode::OK, "GET", "sys/policies/acl/kept", None)
        .await;
    assert!(!b.log().contains(&kms.secret_access_key), "{}", b.log());
}

#[tokio::test]
async fn a_kms_that_refuses_or_is_gone_keeps_the_broker_sealed_and_nothing_is_written() {
    let kms = LocalKms::start();
    // Init against a disabled key: refused, named, and nothing stored.
    kms.call("DisableKey", json!({"KeyId": kms.key_id}));
    let mut b = Broker::start_uninitialized(&kms.seal_toml(&kms.key_id), "").await;
    let (code, body) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"recovery_shares": 1, "recovery_threshold": 1})),
        )
        .await;
    assert!(
        code.is_client_error() || code.is_server_error(),
        "{code} {body}"
    );
    assert!(
        body.to_string()
            .contains("awskms seal refused: DisabledException"),
        "{body}"
    );
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(status["initialized"], false, "{status}");
    b.stop().await;
    assert!(
        key_records(&b).await.iter().all(|(_, v)| v.is_none()),
        "a refused init writes no key record"
    );

    kms.call("EnableKey", json!({"KeyId": kms.key_id}));
    b.restart_sealed().await;
    let (code, init) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"recovery_shares": 1, "recovery_threshold": 1})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{init}");
    b.token = init["root_token"].as_str().unwrap().to_owned();
    b.stop().await;
    let stored = key_records(&b).await;

    // The key disabled: the broker starts, sealed, saying why.
    kms.call("DisableKey", json!({"KeyId": kms.key_id}));
    b.restart_sealed().await;
    let why = sealed_because(&b).await;
    assert!(
        why.contains("awskms seal refused: DisabledException"),
        "{why}"
    );
    b.stop().await;
    assert_eq!(
        key_records(&b).await,
        stored,
        "nothing written while sealed"
    );

    // The KMS unreachable (the endpoint a closed port): the same, quickly.
    let config = std::fs::read_to_string(&b.config).unwrap();
    let closed = crate::process::free_port();
    std::fs::write(
        &b.config,
        config.replace(&kms.endpoint, &format!("http://127.0.0.1:{closed}/")),
    )
    .unwrap();
    kms.call("EnableKey", json!({"KeyId": kms.key_id}));
    let started = Instant::now();
    b.restart_sealed().await;
    let why = sealed_because(&b).await;
    assert!(
        why.contains(&format!(
            "awskms seal unavailable: cannot reach the KMS at http://127.0.0.1:{closed}/"
        )),
        "{why}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    b.stop().await;
    assert_eq!(
        key_records(&b).await,
        stored,
        "nothing written while sealed"
    );

    // The KMS back: the broker unseals itself at start.
    std::fs::write(&b.config, config).unwrap();
    b.restart_sealed().await;
    until_unsealed(&b).await;
    let (code, body): (StatusCode, Value) = b.call("GET", "sys/mounts", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}
