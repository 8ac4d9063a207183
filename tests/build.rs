//! Compiles the misbehaving test plugins to WASM components.
// A build script reports failure by panicking.
#![allow(clippy::expect_used)]

include!("../broker/build/wasm_plugins.rs");

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let workspace = manifest
        .parent()
        .expect("tests/ lies in the workspace")
        .to_path_buf();
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("plugins");
    build_wasm_plugins(&workspace, &["broker-test-hostile-plugin"], &out);
}
