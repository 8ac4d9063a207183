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
    // The built-ins need nothing from WASI, so they are built without it:
    // as core modules for wasm32-unknown-unknown, made into components
    // here. A wasip2 build would import WASI's cli, io and filesystem
    // interfaces through an adapter module, and a fresh instance per call
    // would pay for instantiating and linking all of that every time.
    let built = build_wasm_plugins(
        &workspace,
        &[
            "broker-plugin-postgres",
            "broker-plugin-mysql",
            "broker-plugin-pki",
        ],
        "wasm32-unknown-unknown",
    );
    std::fs::create_dir_all(&out).expect("cannot create the plugins' output directory");
    for module in built {
        let core = std::fs::read(&module)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", module.display()));
        let component = wit_component::ComponentEncoder::default()
            .module(&core)
            .and_then(|encoder| encoder.validate(true).encode())
            .unwrap_or_else(|e| panic!("cannot make {} a component: {e:#}", module.display()));
        let name = module.file_name().expect("a built plugin has a file name");
        std::fs::write(out.join(name), component)
            .unwrap_or_else(|e| panic!("cannot write the {name:?} component: {e}"));
    }
}
