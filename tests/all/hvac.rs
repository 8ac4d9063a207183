//! Running the hvac scripts in `tests/hvac/`: hvac, Python's Vault
//! client, used unchanged against a broker the Rust test started.

use std::path::PathBuf;
use std::process::Command;

use crate::process::Broker;

/// `tests/hvac/`, from this package's directory (the workspace's `tests/`).
fn hvac_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hvac")
}

/// The Python that has hvac: `BROKER_TEST_HVAC_PYTHON`, else the venv
/// `tests/hvac/.venv`. Panics with how to get one: a missing hvac fails the
/// test, never skips it.
fn hvac_python() -> PathBuf {
    let dir = hvac_dir();
    let setup = format!(
        "set it up with:\n  python3 -m venv {venv}\n  {venv}/bin/pip install -r {req}\n\
         or point BROKER_TEST_HVAC_PYTHON at a Python that has it",
        venv = dir.join(".venv").display(),
        req = dir.join("requirements.txt").display(),
    );
    let python = match std::env::var_os("BROKER_TEST_HVAC_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dir.join(".venv/bin/python"),
    };
    let pinned = std::fs::read_to_string(dir.join("requirements.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("hvac==").map(str::to_owned))
        .expect("tests/hvac/requirements.txt pins hvac==VERSION");
    let out = Command::new(&python)
        .args([
            "-c",
            "from importlib.metadata import version; import hvac; print(version('hvac'))",
        ])
        .output();
    let found = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => panic!(
            "hvac is not importable with {}:\n{}\n{setup}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "no Python at {} ({e}): this test needs hvac;\n{setup}",
            python.display()
        ),
    };
    assert_eq!(
        found,
        pinned,
        "{} has hvac {found}, tests/hvac/requirements.txt pins {pinned};\n{setup}",
        python.display()
    );
    python
}

/// Runs `tests/hvac/<script>` with the Python [`hvac_python`] finds,
/// against `b` (`VAULT_ADDR`, and its root token as `VAULT_TOKEN`) with
/// `env` added; fails the test, with the script's output and the broker's
/// log, unless the script passes every check. Returns what it printed.
pub fn run_hvac_script(b: &Broker, script: &str, env: &[(&str, &str)]) -> String {
    let python = hvac_python();
    let out = Command::new(&python)
        .arg(hvac_dir().join(script))
        .env("VAULT_ADDR", b.base.trim_end_matches("/v1"))
        .env("VAULT_TOKEN", &b.token)
        .env_remove("VAULT_NAMESPACE")
        .env_remove("VAULT_CACERT")
        .envs(b.tls_cert.iter().map(|c| ("VAULT_CACERT", c)))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run tests/hvac/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/hvac/{script} failed ({}):\n{stdout}\n{stderr}\nbroker log:\n{}",
        out.status,
        b.log()
    );
    assert!(
        stdout.contains("ok: every check passed"),
        "{stdout}\n{stderr}"
    );
    stdout.into_owned()
}
