// Shared by the build scripts of `broker` (built-in plugins) and
// `broker-tests` (test fixtures): builds workspace crates for a wasm target
// with a nested cargo and returns where each `.wasm` file landed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (cdylib crates of this workspace) for `target`
/// (`wasm32-wasip2`, whose linker makes components; or
/// `wasm32-unknown-unknown`, which makes core modules) with the `plugin`
/// profile, and returns the path of each `<crate_name>.wasm`, in order.
pub fn build_wasm_plugins(workspace: &Path, packages: &[&str], target: &str) -> Vec<PathBuf> {
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
        .args(["build", "--profile", "plugin", "--target", target])
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
            "building the wasm plugins failed ({status}); is the {target} target installed? \
             (`rustup target add {target}`; rust-toolchain.toml lists it)"
        );
    }
    packages
        .iter()
        .map(|p| {
            target_dir
                .join(target)
                .join("plugin")
                .join(format!("{}.wasm", p.replace('-', "_")))
        })
        .collect()
}

/// Copies `built` files into `out`, keeping their names.
pub fn copy_into(built: &[PathBuf], out: &Path) {
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    for file in built {
        let name = file.file_name().unwrap_or_else(|| panic!("{} has no file name", file.display()));
        std::fs::copy(file, out.join(name))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", file.display()));
    }
}
