//! The authoring kit: `broker plugin new` makes a crate that builds; the
//! example third-party plugin (`examples/hello-plugin`, outside the
//! workspace, exactly what `broker plugin new` makes) is built to a
//! component here, registered by SHA-256 in a broker process, and issues
//! and revokes real PostgreSQL logins, through the API and through the
//! SDK's test kit.

use std::path::{Path, PathBuf};
use std::process::Command;

use broker_plugin_testkit::PluginHarness;
use reqwest::StatusCode;
use serde_json::json;

use crate::process::Broker;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn example() -> PathBuf {
    workspace().join("examples/hello-plugin")
}

#[test]
fn the_example_is_what_plugin_new_makes() {
    for (path, text) in
        broker::cli::plugin_new::files("hello-plugin", Path::new("../../sdk")).unwrap()
    {
        let committed = std::fs::read_to_string(example().join(path))
            .unwrap_or_else(|e| panic!("examples/hello-plugin/{path}: {e}"));
        assert_eq!(
            committed, text,
            "examples/hello-plugin/{path} differs from what `broker plugin new` makes: make it again"
        );
    }
}

#[test]
fn plugin_new_makes_a_crate_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_broker-under-test"))
            .args(["plugin", "new", name, "--path"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = run("my-plugin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cargo build --release --target wasm32-wasip2"),
        "{stdout}"
    );
    let manifest = std::fs::read_to_string(dir.path().join("my-plugin/Cargo.toml")).unwrap();
    let sdk = std::fs::canonicalize(workspace().join("sdk")).unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}\"", sdk.display())),
        "{manifest}"
    );
    let lib = std::fs::read_to_string(dir.path().join("my-plugin/src/lib.rs")).unwrap();
    assert!(
        lib.contains("pub struct MyPlugin;") && lib.contains("Info::new(\"my-plugin\""),
        "{lib}"
    );

    let again = run("my-plugin");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = run("My_Plugin");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lower-case letters"));
}

/// Builds the example to a component, as its author would, in a target
/// directory of its own (this test's cargo may hold the workspace's).
fn build_example() -> Vec<u8> {
    let target = workspace().join("target/example-plugin");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(example())
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target);
    // The outer cargo's settings are not the plugin author's.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "examples/hello-plugin must build to a component:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(target.join("wasm32-wasip2/release/hello_plugin.wasm")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugin_is_registered_by_sha256_and_issues() {
    let wasm = tokio::task::spawn_blocking(build_example).await.unwrap();
    let sha256 = broker::plugin::sha256_hex(&wasm);

    // Through the SDK's test kit, in the real host.
    let s = broker_tests::postgres();
    let url = format!(
        "postgresql://{}:{}@{}:{}/{}",
        s.user, s.password, s.host, s.port, s.database
    );
    let harness = PluginHarness::new(wasm.clone())
        .with_postgres(&url)
        .unwrap();
    harness.verify_connection().await.unwrap();
    let role = json!({
        "creation_statements": ["CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}"],
    });
    let issued = harness.issue("app", role.clone()).await.unwrap();
    let user = issued.data["username"].as_str().unwrap().to_owned();
    let password = issued.data["password"].as_str().unwrap().to_owned();
    broker_tests::pg_connect(s, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("the harness's login must work: {e}"));
    harness.revoke(&issued).await.unwrap();
    assert!(broker_tests::pg_connect(s, &user, &password).await.is_err());

    // Through a broker process: registered by its SHA-256, then used.
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hello_plugin.wasm"), &wasm).unwrap();
    let broker = Broker::start_with_plugin_dir(plugins.path()).await;
    let (status, body) = broker
        .call(
            "PUT",
            "sys/plugins/catalog/database/hello-plugin",
            Some(json!({ "sha256": sha256, "command": "hello_plugin.wasm", "version": "v0.1.0" })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    broker
        .call(
            "POST",
            "sys/mounts/database",
            Some(json!({ "type": "database" })),
        )
        .await;
    let (status, body) = broker
        .call(
            "POST",
            "database/config/main",
            Some(json!({
                "plugin_name": "hello-plugin",
                "connection_url": format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
                    s.host, s.port, s.database
                ),
                "username": s.user,
                "password": s.password,
                "allowed_roles": "*",
            })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let mut role = role;
    role["db_name"] = json!("main");
    let (status, body) = broker.call("POST", "database/roles/app", Some(role)).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, creds) = broker.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    let user = creds["data"]["username"].as_str().unwrap();
    let password = creds["data"]["password"].as_str().unwrap();
    broker_tests::pg_connect(s, user, password)
        .await
        .unwrap_or_else(|e| panic!("the registered plugin's login must work: {e}"));
    let (status, _) = broker
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({ "lease_id": creds["lease_id"] })),
        )
        .await;
    assert!(status.is_success());
    assert!(broker_tests::pg_connect(s, user, password).await.is_err());
}
