//! Compiles the built-in plugins to WASM components and embeds them.
// A build script reports failure by panicking.
#![allow(clippy::expect_used)]

include!("build/wasm_plugins.rs");

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let workspace = manifest
        .parent()
        .expect("broker/ lies in the workspace")
        .to_path_buf();
    // `sqlx::migrate!` embeds the migrations: rebuild when they change.
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("migrations").display()
    );
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("plugins");
    build_wasm_plugins(
        &workspace,
        &[
            "broker-plugin-postgres",
            "broker-plugin-mysql",
            "broker-plugin-pki",
            "broker-plugin-redis",
            "broker-plugin-rabbitmq",
        ],
        &out,
    );
}
