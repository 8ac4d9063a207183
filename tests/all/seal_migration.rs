//! Seal migration end to end, as README's "Seals" section tells an
//! operator to do it: name the new seal in `[seal]`, the old one in
//! `[previous_seal]`, restart. `local` → `pkcs11` (a real SoftHSM2 token)
//! migrates by itself at start; `shamir` → `awskms` (moto's KMS API)
//! migrates when the old shares are given with `migrate=true`, and they
//! become the recovery shares. Either way the leases, roles, CAs and
//! policies made before are there after, the database users still log
//! in, and the old seal is no longer needed.

use std::time::{Duration, Instant};

use broker::seal::{SealKind, WrappedBlob};
use broker::storage::Backend;
use broker_tests::kms::LocalKms;
use broker_tests::softhsm::in_own_process;
use broker_tests::{pg_connect, postgres, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::Broker;

/// What a broker holds before a migration, to be found intact after it.
struct Holdings {
    lease_id: String,
    username: String,
    password: String,
    ca_pem: String,
    role: Value,
}

/// A database mount with a role and one leased PostgreSQL user, a PKI
/// mount with a root CA, and a policy.
async fn populate(b: &Broker) -> Holdings {
    let s = postgres();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    )
    .await;
    let tag = unique("m").replace('_', "");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!(
                "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
                s.host, s.port, s.database
            ),
            "username": s.user, "password": s.password, "allowed_roles": "*",
            "username_template": format!("mig{}-{{{{random 8}}}}", &tag[tag.len() - 6..]),
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({
            "db_name": "pg", "default_ttl": "1h", "max_ttl": "24h",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"],
        })),
    )
    .await;
    let creds = b
        .expect(StatusCode::OK, "GET", "database/creds/app", None)
        .await;
    let role = b
        .expect(StatusCode::OK, "GET", "database/roles/app", None)
        .await["data"]
        .clone();

    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({"type": "pki"})),
    )
    .await;
    let root = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/root/generate/internal",
            Some(json!({"common_name": "Migrated Root", "ttl": "8760h"})),
        )
        .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/roles/web",
        Some(json!({"allowed_domains": ["example.com"], "allow_subdomains": true})),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/kept",
        Some(json!({"policy": "path \"pki/issue/web\" { capabilities = [\"update\"] }"})),
    )
    .await;
    Holdings {
        lease_id: creds["lease_id"].as_str().unwrap().to_owned(),
        username: creds["data"]["username"].as_str().unwrap().to_owned(),
        password: creds["data"]["password"].as_str().unwrap().to_owned(),
        ca_pem: root["data"]["certificate"].as_str().unwrap().to_owned(),
        role,
    }
}

/// Everything [`populate`] made is there and works: the lease is known and
/// renews, its user logs in, the role reads the same, the CA is the same
/// and still signs (its key opened), the policy grants what it did.
async fn assert_intact(b: &Broker, held: &Holdings) {
    let lookup = b
        .expect(
            StatusCode::OK,
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": held.lease_id})),
        )
        .await;
    assert_eq!(lookup["data"]["id"], held.lease_id.as_str(), "{lookup}");
    b.expect(
        StatusCode::OK,
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": held.lease_id, "increment": "2h"})),
    )
    .await;
    pg_connect(postgres(), &held.username, &held.password)
        .await
        .unwrap_or_else(|e| panic!("the leased user no longer logs in: {e}"));
    let role = b
        .expect(StatusCode::OK, "GET", "database/roles/app", None)
        .await;
    assert_eq!(role["data"], held.role);

    let ca = b.expect(StatusCode::OK, "GET", "pki/cert/ca", None).await;
    assert_eq!(
        ca["data"]["certificate"].as_str().map(str::trim),
        Some(held.ca_pem.trim()),
        "the same CA"
    );
    let (token, _) = b
        .token_with_policy(
            "issuer",
            "path \"pki/issue/web\" { capabilities = [\"update\"] }",
        )
        .await;
    let (code, leaf) = b
        .call_as(
            &token,
            "POST",
            "pki/issue/web",
            Some(json!({"common_name": "app.example.com", "ttl": "1h"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{leaf}");
    assert_eq!(
        leaf["data"]["issuing_ca"].as_str().map(str::trim),
        Some(held.ca_pem.trim())
    );
    b.expect(StatusCode::OK, "GET", "sys/policies/acl/kept", None)
        .await;
}

/// After revocation the lease's user is gone from PostgreSQL.
async fn revoke_and_check_gone(b: &Broker, held: &Holdings) {
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({"lease_id": held.lease_id})),
    )
    .await;
    assert!(
        pg_connect(postgres(), &held.username, &held.password)
            .await
            .is_err(),
        "the revoked user is gone"
    );
}

/// The stored root key's wrapping, read from the stopped broker's storage.
async fn stored_root_key(b: &Broker) -> WrappedBlob {
    let storage = broker::storage::SqliteBackend::open(&b.dir().join("broker.db"))
        .await
        .unwrap();
    let raw = storage
        .get("core/root-key")
        .await
        .unwrap()
        .expect("a root key");
    serde_json::from_slice(&raw).unwrap()
}

/// Waits (up to 20 s) for the broker to unseal itself.
async fn until_unsealed(b: &Broker) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
        if status["sealed"] == false {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "did not unseal itself: {status}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Gives `keys` to `sys/unseal` (with `migrate`); the last status.
async fn unseal(b: &Broker, keys: &[String], migrate: bool) -> Value {
    let mut status = Value::Null;
    for key in keys {
        let (code, body) = b
            .call_as(
                "",
                "PUT",
                "sys/unseal",
                Some(json!({"key": key, "migrate": migrate})),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{body}\n{}", b.log());
        status = body;
    }
    status
}

/// `[seal]` of `config` replaced by `seal`, with `previous` appended.
fn reseal(config: &str, seal: &str, previous: &str) -> String {
    let start = config.find("[seal]").expect("a [seal] section");
    let end = config[start + 1..]
        .find("\n[")
        .map_or(config.len(), |i| start + 1 + i + 1);
    format!(
        "{}{seal}\n{}\n{previous}\n",
        &config[..start],
        &config[end..]
    )
}

#[test]
fn local_to_pkcs11_keeps_leases_roles_and_cas_and_the_key_file_can_go() {
    in_own_process(
        "seal_migration::local_to_pkcs11_keeps_leases_roles_and_cas_and_the_key_file_can_go",
        |hsm| async move {
            // A broker on the `local` seal, initialized over the API: it
            // unseals itself and hands out recovery shares.
            let key_file = tempfile::tempdir().unwrap();
            let key_path = key_file.path().join("kms.key");
            let local = format!(
                "[seal]\ntype = \"local\"\nkey_file = \"{}\"\n",
                key_path.display()
            );
            let mut b = Broker::start_uninitialized(&local, "").await;
            let (code, init) = b
                .call_as(
                    "",
                    "PUT",
                    "sys/init",
                    Some(json!({"recovery_shares": 3, "recovery_threshold": 2})),
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{init}\n{}", b.log());
            b.token = init["root_token"].as_str().unwrap().to_owned();
            let recovery = strings(&init["recovery_keys"]);
            until_unsealed(&b).await;
            let held = populate(&b).await;
            b.stop().await;
            assert_eq!(stored_root_key(&b).await.provider, SealKind::Local);

            // [seal] becomes pkcs11 (the broker process inherits this
            // process's SOFTHSM2_CONF), [previous_seal] the key file.
            let config = std::fs::read_to_string(&b.config).unwrap();
            let previous = local.replace("[seal]", "[previous_seal]");
            std::fs::write(
                &b.config,
                reseal(&config, &hsm.seal_toml("root-wrap"), &previous),
            )
            .unwrap();
            b.restart_sealed().await;
            let status = until_unsealed(&b).await;
            assert_eq!(status["type"], "pkcs11", "{status}");
            assert_eq!(status["migration"], false, "{status}");
            assert!(b.log().contains("seal migrated"), "{}", b.log());
            assert_intact(&b, &held).await;
            b.stop().await;
            let blob = stored_root_key(&b).await;
            assert_eq!(
                (blob.provider, blob.key_id.as_str()),
                (SealKind::Pkcs11, "root-wrap")
            );

            // The old seal gone: no [previous_seal], no key file. The
            // broker still unseals itself, and everything is there.
            std::fs::write(&b.config, reseal(&config, &hsm.seal_toml("root-wrap"), "")).unwrap();
            std::fs::remove_file(&key_path).unwrap();
            b.restart_sealed().await;
            until_unsealed(&b).await;
            assert_intact(&b, &held).await;

            // The recovery shares made under `local` still unseal it after
            // an operator seals it.
            b.expect(StatusCode::NO_CONTENT, "PUT", "sys/seal", None)
                .await;
            let status = unseal(&b, &recovery[..2], false).await;
            assert_eq!(status["sealed"], false, "{status}");
            assert_intact(&b, &held).await;
            revoke_and_check_gone(&b, &held).await;
        },
    );
}

#[tokio::test]
async fn shamir_to_awskms_with_the_old_shares_which_become_the_recovery_shares() {
    let kms = LocalKms::start();
    let mut b = Broker::start_uninitialized("", "").await;
    let (code, init) = b
        .call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{init}");
    b.token = init["root_token"].as_str().unwrap().to_owned();
    let shares = strings(&init["keys"]);
    unseal(&b, &shares[..2], false).await;
    let held = populate(&b).await;
    b.stop().await;

    let config = std::fs::read_to_string(&b.config).unwrap();
    let migrating = format!(
        "{config}\n{}\n[previous_seal]\ntype = \"shamir\"\n",
        kms.seal_toml(&kms.key_id)
    );
    std::fs::write(&b.config, &migrating).unwrap();
    b.restart_sealed().await;
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(
        (&status["type"], &status["sealed"], &status["migration"]),
        (&json!("awskms"), &json!(true), &json!(true)),
        "{status}"
    );
    // Shares without migrate=true are refused, and change nothing.
    let (code, body) = b
        .call_as("", "PUT", "sys/unseal", Some(json!({"key": shares[0]})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("migrate=true"), "{body}");
    let status = unseal(&b, &shares[1..], true).await;
    assert_eq!(status["sealed"], false, "{status}");
    assert_eq!(status["migration"], false, "{status}");
    assert_intact(&b, &held).await;
    b.stop().await;
    let blob = stored_root_key(&b).await;
    assert_eq!(
        (blob.provider, blob.key_id.as_str()),
        (SealKind::Awskms, kms.key_arn.as_str())
    );

    // Without [previous_seal], a restart unseals through KMS alone.
    std::fs::write(
        &b.config,
        format!("{config}\n{}\n", kms.seal_toml(&kms.key_id)),
    )
    .unwrap();
    b.restart_sealed().await;
    until_unsealed(&b).await;
    assert_intact(&b, &held).await;
    let (_, status) = b.call_as("", "GET", "sys/seal-status", None).await;
    assert_eq!(
        (&status["recovery_seal"], &status["t"], &status["n"]),
        (&json!(true), &json!(2), &json!(3)),
        "the old split is now the recovery split: {status}"
    );

    // Sealed by an operator, the old shares (now recovery shares) unseal.
    b.expect(StatusCode::NO_CONTENT, "PUT", "sys/seal", None)
        .await;
    let status = unseal(&b, &shares[..2], false).await;
    assert_eq!(status["sealed"], false, "{status}");
    assert_intact(&b, &held).await;
    revoke_and_check_gone(&b, &held).await;
}
