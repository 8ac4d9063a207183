//! Released contract versions keep working: a plugin built against
//! `broker:plugin@0.1.0` before v0.2.0 existed (its artifact is kept in
//! `tests/fixtures/v0.1.0/`, never rebuilt) loads and issues and revokes
//! real PostgreSQL users; v0.2.0 plugins are granted what they import.

use broker::plugin::{CallContext, HostCapability, Limits};
use broker_tests::{
    builtin, connection, pg_admin, pg_connect, pg_target, postgres, request, runtime, unique,
};
use serde_json::json;

/// The PostgreSQL plugin as built from commit 4a0ed84 against contract
/// v0.1.0, and its SHA-256: the file must never change.
pub const V0_1_0_POSTGRES: &[u8] = include_bytes!("../fixtures/v0.1.0/postgres-plugin-v0.1.0.wasm");
pub const V0_1_0_POSTGRES_SHA256: &str =
    "3201ec5950d779c829bb07f560d4c4f0a2d6db3cc21bac97f8304aea7db36bb4";

const CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

#[test]
fn the_fixture_is_the_artifact_built_then() {
    assert_eq!(
        broker::plugin::sha256_hex(V0_1_0_POSTGRES),
        V0_1_0_POSTGRES_SHA256
    );
}

#[tokio::test]
async fn a_v0_1_0_plugin_built_before_v0_2_0_issues_and_revokes() {
    let rt = runtime(Limits::default());
    let plugin = rt
        .load(V0_1_0_POSTGRES)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let info = plugin.info();
    assert_eq!(info.api_version, "0.1.0");
    assert_eq!(
        info.capabilities,
        [HostCapability::SqlPostgres],
        "declared, as v0.1.0 does"
    );
    let s = postgres();
    let ctx = CallContext::new().with_sql(&unique("v010"), pg_target(s, &s.user, &s.password));
    let cred = plugin
        .issue(
            &ctx,
            &connection(json!({})),
            &request("old", json!({ "creation_statements": [CREATE] }), "token"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let user = cred.data["username"].as_str().unwrap().to_owned();
    let password = cred.data["password"].as_str().unwrap().to_owned();
    let client = pg_connect(s, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("the v0.1.0 plugin's login must work: {e}"));
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);
    plugin
        .renew(
            &ctx,
            &connection(json!({})),
            &cred.revocation,
            broker_tests::now() + 7200,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    plugin
        .revoke(&ctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gone = pg_admin()
        .await
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap();
    assert!(gone.is_empty(), "{user} is still there");
}

#[tokio::test]
async fn v0_2_0_plugins_are_granted_exactly_what_they_import() {
    let rt = runtime(Limits::default());
    for (name, granted) in [
        ("postgres", vec![HostCapability::SqlPostgres]),
        ("mysql", vec![HostCapability::SqlMysql]),
        ("pki", vec![HostCapability::Signer]),
        ("redis", vec![HostCapability::Redis]),
        ("rabbitmq", vec![HostCapability::Http]),
    ] {
        let p = builtin(&rt, name).await;
        assert_eq!(p.info().api_version, "0.2.0", "{name}");
        assert_eq!(p.info().capabilities, granted, "{name}");
    }
}

#[tokio::test]
async fn a_plugin_not_granted_redis_cannot_reach_a_mounts_redis() {
    // The postgres plugin never imports redis: given a Redis server anyway,
    // it has no way to call it, and its SQL is refused without a database.
    let rt = runtime(Limits::default());
    let p = builtin(&rt, "postgres").await;
    let ctx = CallContext::new().with_redis(&unique("r"), broker_tests::redis_target(None, None));
    let e = p
        .issue(
            &ctx,
            &connection(json!({})),
            &request("r", json!({ "creation_statements": [CREATE] }), "t"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no database connection"), "{e}");
}
