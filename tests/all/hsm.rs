//! Keys in an HSM, against a real SoftHSM2 token: the `pkcs11` seal (round
//! trip, refusals, the key's attributes read back from the token, the
//! errors an operator sees) and PKI roots and intermediates whose keys are
//! generated and used in the token (`…/generate/kms`), checked with
//! `openssl`.
//!
//! Every test runs in a process of its own with a token of its own
//! ([`broker_tests::softhsm::in_own_process`]): SoftHSM reads where its
//! tokens are once per process.

use broker::seal::{Pkcs11Seal, Seal, SealError, SealKind, WrappedBlob};
use broker_tests::softhsm::{PIN, SoftHsm, in_own_process};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pki::{openssl, s, write};
use crate::process::Broker;

/// A session on the token of `hsm`, opened by this test through cryptoki
/// itself, not through the broker: what it reads is the token's word.
fn own_session(hsm: &SoftHsm) -> Session {
    let ctx = Pkcs11::new(&hsm.lib).unwrap();
    // The broker's code may have initialised the library in this process.
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == hsm.token_label)
        .expect("the test token");
    let session = ctx.open_ro_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(PIN.into()))) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    session
}

/// The attributes of the one object of `class` labelled `label`.
fn attributes(session: &Session, class: ObjectClass, label: &str) -> Vec<Attribute> {
    let found = session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "one {class} labelled {label}");
    session
        .get_attributes(
            found[0],
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Value,
            ],
        )
        .unwrap()
}

/// Checks the token says the key cannot leave it.
fn assert_locked_in(session: &Session, class: ObjectClass, label: &str) {
    let attributes = attributes(session, class, label);
    let has = |a: Attribute| attributes.contains(&a);
    assert!(has(Attribute::Token(true)), "{attributes:?}");
    assert!(has(Attribute::Sensitive(true)), "{attributes:?}");
    assert!(has(Attribute::Extractable(false)), "{attributes:?}");
    assert!(has(Attribute::NeverExtractable(true)), "{attributes:?}");
    assert!(
        !attributes.iter().any(|a| matches!(a, Attribute::Value(_))),
        "the token gave out the key's value: {attributes:?}"
    );
}

#[test]
fn the_seal_wraps_in_the_token_with_a_key_that_cannot_leave() {
    in_own_process(
        "hsm::the_seal_wraps_in_the_token_with_a_key_that_cannot_leave",
        |hsm| async move {
            let seal = Pkcs11Seal::connect(&hsm.seal_settings("root-wrap"))
                .await
                .unwrap();
            assert_eq!(seal.kind(), SealKind::Pkcs11);
            let root_key = [7u8; 32];
            let blob = seal.encrypt(&root_key, b"core/root-key").await.unwrap();
            assert_eq!(blob.provider, SealKind::Pkcs11);
            assert_eq!(blob.key_id, "root-wrap", "the key id is the key's label");
            assert_eq!(blob.ciphertext.len(), 12 + 32 + 16, "IV, ciphertext, tag");
            assert!(
                !blob.ciphertext.windows(8).any(|w| w == [7u8; 8]),
                "the root key is not in the blob"
            );
            let again = seal.encrypt(&root_key, b"core/root-key").await.unwrap();
            assert_ne!(again.ciphertext[..12], blob.ciphertext[..12], "fresh IVs");
            assert_eq!(
                &*seal.decrypt(&blob, b"core/root-key").await.unwrap(),
                &root_key
            );

            // Refusals: other associated data, an altered blob, another provider.
            let refused = seal.decrypt(&blob, b"core/other").await.unwrap_err();
            assert!(matches!(refused, SealError::Unwrap { .. }), "{refused}");
            let mut altered = blob.clone();
            altered.ciphertext[20] ^= 1;
            let refused = seal.decrypt(&altered, b"core/root-key").await.unwrap_err();
            assert!(matches!(refused, SealError::Unwrap { .. }), "{refused}");
            let mut short = blob.clone();
            short.ciphertext.truncate(20);
            assert!(matches!(
                seal.decrypt(&short, b"core/root-key").await,
                Err(SealError::Unwrap { .. })
            ));
            let local = WrappedBlob {
                provider: SealKind::Local,
                ..blob.clone()
            };
            assert!(matches!(
                seal.decrypt(&local, b"core/root-key").await,
                Err(SealError::Mismatch { .. })
            ));

            // The token, asked on its own, says the key cannot leave it.
            let session = own_session(&hsm);
            assert_locked_in(&session, ObjectClass::SECRET_KEY, "root-wrap");

            // A new key label wraps new blobs; the old key still opens old ones.
            let rotated = Pkcs11Seal::new(seal.hsm().await.unwrap(), "root-wrap-2", true).unwrap();
            let newer = rotated.encrypt(&root_key, b"core/root-key").await.unwrap();
            assert_eq!(newer.key_id, "root-wrap-2");
            assert_eq!(
                &*rotated.decrypt(&blob, b"core/root-key").await.unwrap(),
                &root_key
            );
            assert_eq!(
                &*seal.decrypt(&newer, b"core/root-key").await.unwrap(),
                &root_key
            );

            // A missing key: named, and never made by an unwrap or when
            // generate_key is off.
            let mut elsewhere = blob.clone();
            elsewhere.key_id = "absent-key".into();
            let e = seal
                .decrypt(&elsewhere, b"core/root-key")
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "pkcs11 seal unavailable: no AES key labelled 'absent-key' in token 'broker-test'"
            );
            let fixed = Pkcs11Seal::new(seal.hsm().await.unwrap(), "absent-key", false).unwrap();
            let e = fixed
                .encrypt(&root_key, b"core/root-key")
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("no AES key labelled 'absent-key'"), "{e}");
            let found = session
                .find_objects(&[Attribute::Label(b"absent-key".to_vec())])
                .unwrap();
            assert!(found.is_empty(), "no key was made");

            // Many wraps at once make one key, not one each.
            let fresh = std::sync::Arc::new(
                Pkcs11Seal::new(seal.hsm().await.unwrap(), "made-once", true).unwrap(),
            );
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let fresh = fresh.clone();
                tasks.push(tokio::spawn(async move {
                    fresh.encrypt(&[1u8; 32], b"aad").await.unwrap()
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let made = session
                .find_objects(&[Attribute::Label(b"made-once".to_vec())])
                .unwrap();
            assert_eq!(made.len(), 1);
        },
    );
}

#[test]
fn a_wrong_pin_an_unknown_token_or_no_library_keep_the_seal_closed_and_say_why() {
    in_own_process(
        "hsm::a_wrong_pin_an_unknown_token_or_no_library_keep_the_seal_closed_and_say_why",
        |hsm| async move {
            let mut settings = hsm.seal_settings("root-wrap");
            settings.pin = Some(broker::hsm::Pin::new("0000-wrong"));
            let e = Pkcs11Seal::connect(&settings).await.unwrap_err();
            assert!(matches!(e, SealError::Unavailable { .. }), "{e}");
            assert_eq!(
                e.to_string(),
                "pkcs11 seal unavailable: login to token 'broker-test' failed: the PIN is incorrect"
            );

            let mut settings = hsm.seal_settings("root-wrap");
            settings.token_label = Some("no-such-token".into());
            let e = Pkcs11Seal::connect(&settings)
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "pkcs11 seal unavailable: no token 'no-such-token' in {} (tokens: 'broker-test')",
                    hsm.lib.display()
                )
            );

            let mut settings = hsm.seal_settings("root-wrap");
            settings.lib = "/nonexistent/libsofthsm2.so".into();
            let e = Pkcs11Seal::connect(&settings)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("pkcs11 seal unavailable: cannot load /nonexistent/libsofthsm2.so: "),
                "{e}"
            );

            // No PIN in the settings, none in the environment.
            assert!(std::env::var(broker::hsm::PIN_ENV).is_err());
            let mut settings = hsm.seal_settings("root-wrap");
            settings.pin = None;
            let e = Pkcs11Seal::connect(&settings)
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("no PIN"), "{e}");
            assert!(e.contains("BROKER_PKCS11_PIN"), "{e}");

            // None of it wrote anything: the token holds no object.
            let session = own_session(&hsm);
            assert!(session.find_objects(&[]).unwrap().is_empty());
        },
    );
}

/// Issues a leaf from `mount`'s `web` role; its PEM.
async fn issue(b: &Broker, mount: &str, cn: &str) -> Value {
    b.expect(
        StatusCode::OK,
        "POST",
        &format!("{mount}/issue/web"),
        Some(json!({ "common_name": cn, "ttl": "1h" })),
    )
    .await
}

async fn web_role(b: &Broker, mount: &str) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("{mount}/roles/web"),
        Some(json!({ "allowed_domains": ["example.com"], "allow_subdomains": true })),
    )
    .await;
}

#[test]
fn a_root_and_an_intermediate_with_keys_in_the_hsm_issue_certificates_openssl_accepts() {
    in_own_process(
        "hsm::a_root_and_an_intermediate_with_keys_in_the_hsm_issue_certificates_openssl_accepts",
        |hsm| async move {
            let dir = tempfile::tempdir().unwrap();
            // The broker process inherits SOFTHSM2_CONF from this one.
            let b = Broker::start_with(None, &hsm.hsm_toml()).await;
            for mount in ["pki", "pki_int"] {
                b.expect(
                    StatusCode::NO_CONTENT,
                    "POST",
                    &format!("sys/mounts/{mount}"),
                    Some(json!({ "type": "pki" })),
                )
                .await;
            }
            let root = b
                .expect(
                    StatusCode::OK,
                    "POST",
                    "pki/root/generate/kms",
                    Some(json!({
                        "common_name": "HSM Root",
                        "ttl": "8760h",
                        "managed_key_name": "ca-root",
                        "key_type": "ec",
                    })),
                )
                .await;
            let data = root["data"].as_object().unwrap();
            assert!(!data.contains_key("private_key"), "{data:?}");
            assert_eq!(data["managed_key_name"], "ca-root");
            let root_pem = data["certificate"].as_str().unwrap().to_owned();
            let root_file = write(dir.path(), "root.pem", &root_pem);
            let (ok, out) = openssl(&["verify", "-CAfile", s(&root_file), s(&root_file)]);
            assert!(ok, "the self-signed root verifies: {out}");

            // The same label again is refused; nothing is replaced.
            b.expect(
                StatusCode::NO_CONTENT,
                "POST",
                "sys/mounts/other",
                Some(json!({ "type": "pki" })),
            )
            .await;
            let (status, body) = b
                .call(
                    "POST",
                    "other/root/generate/kms",
                    Some(json!({ "common_name": "Again", "managed_key_name": "ca-root" })),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(
                body.to_string().contains(
                    "a private key labelled 'ca-root' already exists in token 'broker-test'"
                ),
                "{body}"
            );
            let (status, body) = b
                .call(
                    "POST",
                    "other/root/generate/kms",
                    Some(json!({ "common_name": "Ed", "managed_key_name": "ed", "key_type": "ed25519" })),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let (status, body) = b
                .call(
                    "POST",
                    "other/root/generate/kms",
                    Some(json!({ "common_name": "No name" })),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(
                body.to_string().contains("managed_key_name is required"),
                "{body}"
            );

            // Leaves from the root verify.
            web_role(&b, "pki").await;
            let leaf = issue(&b, "pki", "api.example.com").await;
            let leaf_file = write(
                dir.path(),
                "leaf.pem",
                leaf["data"]["certificate"].as_str().unwrap(),
            );
            let (ok, out) = openssl(&["verify", "-CAfile", s(&root_file), s(&leaf_file)]);
            assert!(ok, "{out}");

            // An RSA intermediate in the HSM, signed by the HSM root.
            let csr = b
                .expect(
                    StatusCode::OK,
                    "POST",
                    "pki_int/intermediate/generate/kms",
                    Some(json!({
                        "common_name": "HSM Intermediate",
                        "managed_key_name": "ca-int",
                        "key_type": "rsa",
                        "key_bits": 2048,
                    })),
                )
                .await;
            assert!(csr["data"].get("private_key").is_none());
            let signed = b
                .expect(
                    StatusCode::OK,
                    "POST",
                    "pki/root/sign-intermediate",
                    Some(json!({ "csr": csr["data"]["csr"], "ttl": "4380h" })),
                )
                .await;
            let int_pem = signed["data"]["certificate"].as_str().unwrap().to_owned();
            b.expect(
                StatusCode::NO_CONTENT,
                "POST",
                "pki_int/intermediate/set-signed",
                Some(json!({ "certificate": format!("{int_pem}{root_pem}") })),
            )
            .await;
            let int_file = write(dir.path(), "int.pem", &int_pem);
            web_role(&b, "pki_int").await;
            let leaf = issue(&b, "pki_int", "svc.example.com").await;
            let serial = leaf["data"]["serial_number"].as_str().unwrap().to_owned();
            let leaf_file = write(
                dir.path(),
                "int-leaf.pem",
                leaf["data"]["certificate"].as_str().unwrap(),
            );
            let (ok, out) = openssl(&[
                "verify",
                "-CAfile",
                s(&root_file),
                "-untrusted",
                s(&int_file),
                s(&leaf_file),
            ]);
            assert!(ok, "{out}");
            let (_, text) = openssl(&["x509", "-in", s(&int_file), "-noout", "-text"]);
            assert!(text.contains("Public-Key: (2048 bit)"), "{text}");

            // The intermediate's CRL, signed in the HSM, lists a revoked serial.
            b.expect(
                StatusCode::OK,
                "POST",
                "pki_int/revoke",
                Some(json!({ "serial_number": serial })),
            )
            .await;
            let crl_pem = b
                .http
                .get(format!("{}/pki_int/crl/pem", b.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let crl = write(dir.path(), "crl.pem", &crl_pem);
            let (ok, text) = openssl(&[
                "crl",
                "-in",
                s(&crl),
                "-CAfile",
                s(&int_file),
                "-noout",
                "-text",
            ]);
            assert!(ok && text.contains("verify OK"), "{text}");
            assert!(
                text.to_ascii_uppercase()
                    .contains(&serial.replace(':', "").to_ascii_uppercase()),
                "{text}"
            );

            // The token, asked on its own: both private keys are locked in.
            let session = own_session(&hsm);
            assert_locked_in(&session, ObjectClass::PRIVATE_KEY, "ca-root");
            assert_locked_in(&session, ObjectClass::PRIVATE_KEY, "ca-int");
        },
    );
}

#[tokio::test]
async fn kms_without_an_hsm_is_a_clear_400() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({ "type": "pki" })),
    )
    .await;
    for path in ["pki/root/generate/kms", "pki/intermediate/generate/kms"] {
        let (status, body) = b
            .call(
                "POST",
                path,
                Some(json!({ "common_name": "X", "managed_key_name": "k" })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body.to_string().contains("type kms needs an HSM"),
            "{path}: {body}"
        );
    }
}
