//! The built component in the broker's real host, against PostgreSQL:
//! `cargo test --features harness` (DATABASE_URL, default
//! postgresql://postgres@127.0.0.1:5432/postgres).
#![cfg(feature = "harness")]

use broker_plugin_testkit::PluginHarness;
use serde_json::json;

/// Builds the component (into its own target directory: this test's
/// cargo holds the lock on the usual one) and returns its bytes.
fn component() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = dir.join("target").join("component");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .current_dir(dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the component must build (rustup target add wasm32-wasip2)");
    std::fs::read(target.join("wasm32-wasip2/release/hello_plugin.wasm")).expect("the component")
}

#[tokio::test]
async fn issues_a_login_renews_and_revokes_it() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let harness = PluginHarness::new(component()).with_postgres(&url).unwrap();
    harness.verify_connection().await.unwrap();
    let role = json!({
        "creation_statements": ["CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}"],
    });
    let issued = harness.issue("app", role).await.unwrap();
    let username = issued.data["username"].as_str().unwrap();
    assert!(username.starts_with("v-harness-app-"), "{username}");
    harness.renew(&issued, 4_102_444_800).await.unwrap();
    harness.revoke(&issued).await.unwrap();
    // Revoking what is already gone succeeds too.
    harness.revoke(&issued).await.unwrap();
}
