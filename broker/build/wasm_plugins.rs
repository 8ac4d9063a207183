// Shared by the build scripts of `broker` (built-in plugins) and
// `broker-tests` (test fixtures): builds workspace crates as wasm32-wasip2
// components with a nested cargo and copies the `.wasm` files to `out`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (cdylib crates of this workspace) for wasm32-wasip2 with
/// the `plugin` profile and copies each `<crate_name>.wasm` into `out`.
pub fn build_wasm_plugins(workspace: &Path, packages: &[&str], out: &Path) {
    for dir in ["wit", "sdk", "plugins", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    // The guest's link flags (its stack size) live there.
    println!("cargo:rerun-if-changed={}", workspace.join(".cargo/config.toml").display());

    // The nested build needs its own target directory: the outer cargo holds
    // the lock on its own for as long as this script runs.
    let outer_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let target_dir = outer_target.join("wasm-plugins");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // Settings meant for the host build must not leak into the guest build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key.starts_with("RUSTC") || key == "RUSTFLAGS" {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo for the wasm plugins: {e}"));
    if !status.success() {
        panic!(
            "building the wasm plugins failed ({status}); is the wasm32-wasip2 target installed? \
             (`rustup target add wasm32-wasip2`; rust-toolchain.toml lists it)"
        );
    }
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    for p in packages {
        let file = format!("{}.wasm", p.replace('-', "_"));
        let built = target_dir.join("wasm32-wasip2/plugin").join(&file);
        std::fs::copy(&built, out.join(&file))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    }
}
