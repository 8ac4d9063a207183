//! A local KMS API server for the awskms seal tests: moto's server mode on
//! a free loopback port, run by `tests/kms/local_kms.py`, killed on drop.
//!
//! Why moto: it is on PyPI (installed by `.ci/run` into `tests/kms/.venv`
//! from `tests/kms/requirements.txt`, as hvac is), runs as a plain HTTP
//! server speaking the KMS JSON API, keeps real AES-GCM ciphertexts bound to
//! the encryption context, and checks each request's SigV4 signature
//! against the IAM access keys it holds once its first unchecked calls
//! (spent by `bootstrap` on creating the test user) are used up. So a
//! request the broker signs wrongly is refused here, as AWS would refuse it.
//! moto does not refuse `Encrypt`/`Decrypt` under a disabled key; the
//! launcher adds that check (see its docstring).
//!
//! The Python comes from `BROKER_TEST_KMS_PYTHON`, else the venv; a missing
//! moto fails the test with how to install it, never skips it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `tests/kms/`.
fn kms_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kms")
}

/// The Python with moto at the pinned version. Panics, saying how to get
/// one, if there is none.
fn kms_python() -> PathBuf {
    let dir = kms_dir();
    let setup = format!(
        "set it up with:\n  python3 -m venv {venv}\n  {venv}/bin/pip install -r {req}\n\
         or point BROKER_TEST_KMS_PYTHON at a Python that has it",
        venv = dir.join(".venv").display(),
        req = dir.join("requirements.txt").display(),
    );
    let python = match std::env::var_os("BROKER_TEST_KMS_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dir.join(".venv/bin/python"),
    };
    let pinned = std::fs::read_to_string(dir.join("requirements.txt"))
        .unwrap_or_else(|e| panic!("cannot read tests/kms/requirements.txt: {e}"))
        .lines()
        .find_map(|l| l.trim().strip_prefix("moto[server]==").map(str::to_owned))
        .unwrap_or_else(|| panic!("tests/kms/requirements.txt pins moto[server]==VERSION"));
    let out = Command::new(&python)
        .args([
            "-c",
            "from importlib.metadata import version; import moto.server, boto3; print(version('moto'))",
        ])
        .output();
    let found = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => panic!(
            "moto is not importable with {}:\n{}\n{setup}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "no Python at {} ({e}): the awskms tests need moto's KMS server;\n{setup}",
            python.display()
        ),
    };
    assert_eq!(
        found,
        pinned,
        "{} has moto {found}, tests/kms/requirements.txt pins {pinned};\n{setup}",
        python.display()
    );
    python
}

/// A running moto server with a user allowed everything, its access key,
/// and one symmetric key.
#[derive(Debug)]
pub struct LocalKms {
    /// `http://127.0.0.1:PORT/`.
    pub endpoint: String,
    /// The test user's access key id.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: String,
    /// The key created at start: its id.
    pub key_id: String,
    /// And its ARN.
    pub key_arn: String,
    /// The region everything lives in.
    pub region: String,
    python: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl LocalKms {
    /// Starts one and bootstraps it; panics with the server's log if it
    /// does not come up within 60 s.
    pub fn start() -> Self {
        let python = kms_python();
        let dir = tempfile::Builder::new()
            .prefix("broker-test-kms-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let log = std::fs::File::create(dir.path().join("moto.log"))
            .unwrap_or_else(|e| panic!("cannot create the moto log: {e}"));
        let port = crate::free_port();
        let child = Command::new(&python)
            .arg(kms_dir().join("local_kms.py"))
            .args(["serve", "--port", &port.to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("moto log: {e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python.display()));
        crate::watchdog(child.id());
        let mut kms = Self {
            endpoint: format!("http://127.0.0.1:{port}/"),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            key_id: String::new(),
            key_arn: String::new(),
            region: "us-east-1".into(),
            python,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = kms.child.try_wait() {
                panic!("moto exited ({status}):\n{}", kms.log());
            }
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {port} within 60 s:\n{}",
                kms.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let boot = kms.script(&["bootstrap", "--endpoint", &kms.endpoint], false);
        let field = |name: &str| {
            boot[name]
                .as_str()
                .unwrap_or_else(|| panic!("bootstrap printed no {name}: {boot}"))
                .to_owned()
        };
        kms.access_key_id = field("access_key_id");
        kms.secret_access_key = field("secret_access_key");
        kms.key_id = field("key_id");
        kms.key_arn = field("key_arn");
        kms
    }

    /// Runs `local_kms.py` with `args`, signed as the test user when
    /// `signed`; returns the JSON it printed.
    fn script(&self, args: &[&str], signed: bool) -> serde_json::Value {
        let mut command = Command::new(&self.python);
        command
            .arg(kms_dir().join("local_kms.py"))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
        if signed {
            command
                .env("AWS_ACCESS_KEY_ID", &self.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key);
        }
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run local_kms.py {args:?}: {e}"));
        assert!(
            out.status.success(),
            "local_kms.py {args:?} failed ({}):\n{}{}\nmoto log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "local_kms.py {args:?} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// One call with boto3 as the test user: a KMS operation
    /// (`"DisableKey"`) or an IAM one (`"iam:CreateUser"`). An error answer
    /// comes back as `{"error": {"Code": …, "Message": …}}`.
    pub fn call(&self, operation: &str, params: serde_json::Value) -> serde_json::Value {
        self.script(
            &[
                "call",
                "--endpoint",
                &self.endpoint,
                operation,
                &params.to_string(),
            ],
            true,
        )
    }

    /// Creates another symmetric key; returns its (id, ARN).
    pub fn create_key(&self) -> (String, String) {
        let made = self.call("CreateKey", serde_json::json!({}));
        let meta = &made["KeyMetadata"];
        match (meta["KeyId"].as_str(), meta["Arn"].as_str()) {
            (Some(id), Some(arn)) => (id.to_owned(), arn.to_owned()),
            _ => panic!("CreateKey answered {made}"),
        }
    }

    /// A user whose IAM policy allows only `actions` (e.g. `["kms:Encrypt"]`);
    /// returns its (access key id, secret access key).
    pub fn user_allowed(&self, name: &str, actions: &[&str]) -> (String, String) {
        self.call("iam:CreateUser", serde_json::json!({ "UserName": name }));
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }],
        });
        self.call(
            "iam:PutUserPolicy",
            serde_json::json!({
                "UserName": name,
                "PolicyName": "only",
                "PolicyDocument": policy.to_string(),
            }),
        );
        let made = self.call(
            "iam:CreateAccessKey",
            serde_json::json!({ "UserName": name }),
        );
        let key = &made["AccessKey"];
        match (key["AccessKeyId"].as_str(), key["SecretAccessKey"].as_str()) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => panic!("CreateAccessKey answered {made}"),
        }
    }

    /// The `[seal]` settings for a broker using `key_id` on this server.
    pub fn seal_config(&self, key_id: &str) -> broker::seal::AwsKmsConfig {
        broker::seal::AwsKmsConfig {
            region: Some(self.region.clone()),
            kms_key_id: key_id.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            access_key: Some(self.access_key_id.clone()),
            secret_key: Some(self.secret_access_key.clone().into()),
            session_token: None,
        }
    }

    /// The same as a config file's `[seal]` section.
    pub fn seal_toml(&self, key_id: &str) -> String {
        format!(
            "[seal]\ntype = \"awskms\"\nregion = \"{}\"\nkms_key_id = \"{key_id}\"\n\
             endpoint = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
            self.region, self.endpoint, self.access_key_id, self.secret_access_key
        )
    }

    /// moto's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }
}

impl Drop for LocalKms {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
