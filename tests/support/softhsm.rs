//! SoftHSM2 tokens for tests: each test gets a token of its own, in a
//! temporary directory of its own, made by `softhsm2-util` the way an
//! operator would make one.
//!
//! SoftHSM reads its configuration (where tokens live) from
//! `SOFTHSM2_CONF` once, when a process first initialises the library. So:
//!
//! - a broker *process* gets the token through its environment
//!   ([`SoftHsm::env`]);
//! - a test that uses the token *in its own process* runs its body in a
//!   child process of the test binary whose environment names the token
//!   ([`in_own_process`]), so tests stay independent and parallel-safe.
//!
//! A missing SoftHSM2 fails the test, saying what to install; nothing is
//! skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian (and most distributions) put the library.
const LIBRARY_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// Set in a child process made by [`in_own_process`]: the test to run.
const CHILD: &str = "BROKER_TEST_SOFTHSM_CHILD";
/// The child's token directory, label and PINs.
const CHILD_DIR: &str = "BROKER_TEST_SOFTHSM_DIR";
const CHILD_LABEL: &str = "BROKER_TEST_SOFTHSM_LABEL";

/// The user PIN of every test token.
pub const PIN: &str = "4711-user";
/// The security officer PIN of every test token.
pub const SO_PIN: &str = "4711-officer";

/// SoftHSM2's PKCS#11 library: `BROKER_TEST_SOFTHSM_LIB`, else where
/// Debian's `softhsm2` package puts it. Panics when absent.
pub fn library() -> PathBuf {
    if let Ok(path) = std::env::var("BROKER_TEST_SOFTHSM_LIB")
        && !path.is_empty()
    {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "BROKER_TEST_SOFTHSM_LIB names {}, which does not exist",
            path.display()
        );
        return path;
    }
    LIBRARY_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "SoftHSM2's library was not found (looked in {LIBRARY_PATHS:?}). Install Debian's \
                 `softhsm2` package (`apt-get install softhsm2`), or set BROKER_TEST_SOFTHSM_LIB"
            )
        })
}

/// A SoftHSM2 token in a directory of its own, removed on drop.
#[derive(Debug)]
pub struct SoftHsm {
    /// The directory: `softhsm2.conf` and `tokens/`.
    dir: PathBuf,
    /// Kept to remove the directory (absent in a child process, whose
    /// parent owns it).
    _owner: Option<tempfile::TempDir>,
    /// The token's label.
    pub token_label: String,
    /// The PKCS#11 library.
    pub lib: PathBuf,
}

impl SoftHsm {
    /// A new token, labelled `broker-test` (each token has a directory of
    /// its own, so labels never clash).
    pub fn new() -> Self {
        Self::with_label("broker-test")
    }

    /// A new token labelled `label`.
    pub fn with_label(label: &str) -> Self {
        let lib = library();
        let owner = tempfile::Builder::new()
            .prefix("broker-test-softhsm-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let dir = owner.path().to_owned();
        std::fs::create_dir(dir.join("tokens"))
            .unwrap_or_else(|e| panic!("cannot create the token directory: {e}"));
        std::fs::write(
            dir.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write softhsm2.conf: {e}"));
        let hsm = Self {
            dir,
            _owner: Some(owner),
            token_label: label.to_owned(),
            lib,
        };
        hsm.add_token(label);
        hsm
    }

    /// Makes another token, labelled `label`, beside the first.
    pub fn add_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run softhsm2-util ({e}): install Debian's `softhsm2` package \
                     (`apt-get install softhsm2`)"
                )
            });
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The configuration file SoftHSM must read.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// The environment a process needs to see this token.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "SOFTHSM2_CONF".into(),
            self.conf().to_string_lossy().into_owned(),
        )]
    }

    /// `[seal] type = "pkcs11"` for this token, the PIN in the file.
    pub fn seal_toml(&self, key_label: &str) -> String {
        format!(
            "[seal]\ntype = \"pkcs11\"\nlib = \"{}\"\ntoken_label = \"{}\"\npin = \"{PIN}\"\nkey_label = \"{key_label}\"\n",
            self.lib.display(),
            self.token_label
        )
    }

    /// `[hsm]` for this token, the PIN in the file.
    pub fn hsm_toml(&self) -> String {
        format!(
            "[hsm]\nlib = \"{}\"\ntoken_label = \"{}\"\npin = \"{PIN}\"\n",
            self.lib.display(),
            self.token_label
        )
    }

    /// The broker's settings for this token.
    pub fn settings(&self) -> broker::hsm::HsmSettings {
        broker::hsm::HsmSettings {
            lib: self.lib.clone(),
            token_label: Some(self.token_label.clone()),
            slot: None,
            pin: Some(broker::hsm::Pin::new(PIN)),
        }
    }

    /// The seal's settings for this token and `key_label`.
    pub fn seal_settings(&self, key_label: &str) -> broker::seal::Pkcs11SealSettings {
        broker::seal::Pkcs11SealSettings {
            lib: self.lib.clone(),
            token_label: Some(self.token_label.clone()),
            slot: None,
            pin: Some(broker::hsm::Pin::new(PIN)),
            key_label: key_label.to_owned(),
            generate_key: true,
        }
    }

    /// The directory holding the token's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for SoftHsm {
    fn default() -> Self {
        Self::new()
    }
}

/// This process's token, for a program (a benchmark) rather than a test:
/// unless this process was started by this function, makes a token, runs
/// this program again with `SOFTHSM2_CONF` naming it, and exits with its
/// status.
pub fn this_process_token() -> SoftHsm {
    if let (Ok(dir), Ok(label)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_LABEL))
        && std::env::var(CHILD).as_deref() == Ok("program")
    {
        return SoftHsm {
            dir: PathBuf::from(dir),
            _owner: None,
            token_label: label,
            lib: library(),
        };
    }
    let hsm = SoftHsm::new();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no current exe: {e}"));
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD, "program")
        .env(CHILD_DIR, hsm.dir())
        .env(CHILD_LABEL, &hsm.token_label)
        .env("SOFTHSM2_CONF", hsm.conf())
        .status()
        .unwrap_or_else(|e| panic!("cannot run this program again: {e}"));
    drop(hsm);
    std::process::exit(status.code().unwrap_or(1));
}

/// Runs `body` with a fresh token in a child process of this test binary
/// whose `SOFTHSM2_CONF` names it. `test` is the test's path within the
/// binary (`hsm::seal_round_trip`), which the child runs alone; the parent
/// fails with the child's output if the child fails or runs no test.
///
/// Call it from a plain `#[test]` (the body gets a Tokio runtime of its
/// own).
pub fn in_own_process<F>(test: &str, body: impl FnOnce(SoftHsm) -> F)
where
    F: std::future::Future<Output = ()>,
{
    if std::env::var(CHILD).as_deref() == Ok(test) {
        let dir = PathBuf::from(
            std::env::var(CHILD_DIR).unwrap_or_else(|_| panic!("{CHILD_DIR} is not set")),
        );
        let hsm = SoftHsm {
            dir,
            _owner: None,
            token_label: std::env::var(CHILD_LABEL)
                .unwrap_or_else(|_| panic!("{CHILD_LABEL} is not set")),
            lib: library(),
        };
        assert_eq!(
            std::env::var("SOFTHSM2_CONF").ok().map(PathBuf::from),
            Some(hsm.conf()),
            "the child's SOFTHSM2_CONF names its token"
        );
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start a Tokio runtime: {e}"))
            .block_on(body(hsm));
        return;
    }
    let hsm = SoftHsm::new();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no current exe: {e}"));
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env(CHILD_DIR, hsm.dir())
        .env(CHILD_LABEL, &hsm.token_label)
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the test's child process: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in its own process ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
