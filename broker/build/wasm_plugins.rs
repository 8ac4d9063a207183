// Shared by the build scripts of `broker` (built-in plugins) and
// `broker-tests` (test fixtures): builds workspace crates as wasm32-wasip2
// components with a nested cargo and copies the `.wasm` files to `out`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the plugins are compiled for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Stops the build with the fix when the toolchain lacks `target`'s
/// standard library. rust-toolchain.toml lists the target, but rustup adds
/// listed targets only when it installs a toolchain, never to one already
/// installed; without this check the nested build fails much later with
/// "can't find crate for `core`", which tells a new user nothing.
fn require_target(target: &str) {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
    else {
        // No rustc to ask: the nested build reports that itself.
        return;
    };
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let installed = out.status.success()
        && std::fs::read_dir(&libdir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
        });
    if !installed {
        let message = format!(
            "the {target} target is not installed for this Rust toolchain, and the built-in \
             plugins are compiled for it. Run once:\n\n    rustup target add {target}\n\n\
             (rust-toolchain.toml lists the target, but rustup adds listed targets only when it \
             installs a toolchain, not to one installed before.)"
        );
        println!("cargo:warning={}", message.replace('\n', " "));
        panic!("\n\n{message}\n");
    }
}

/// Builds `packages` (cdylib crates of this workspace) for wasm32-wasip2 with
/// the `plugin` profile and copies each `<crate_name>.wasm` into `out`.
pub fn build_wasm_plugins(workspace: &Path, packages: &[&str], out: &Path) {
    require_target(WASM_TARGET);
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
        .args(["build", "--profile", "plugin", "--target", WASM_TARGET])
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
            "building the wasm plugins failed ({status}); the nested cargo's output above says why"
        );
    }
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    for p in packages {
        let file = format!("{}.wasm", p.replace('-', "_"));
        let built = target_dir.join(WASM_TARGET).join("plugin").join(&file);
        std::fs::copy(&built, out.join(&file))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    }
}
