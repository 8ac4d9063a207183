//! The `awskms` seal against a real KMS API server: moto's server mode on
//! loopback (`broker_tests::kms::LocalKms`), which checks every request's
//! SigV4 signature. The seal is driven through its library API here, as
//! the broker's key hierarchy drives it.

use std::time::{Duration, Instant};

use broker::seal::{AwsKmsConfig, AwsKmsSeal, Seal, SealError, SealKind};
use broker_tests::kms::LocalKms;

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
