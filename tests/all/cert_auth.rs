//! Certificate auth end to end, over a real TLS listener with curl as the
//! client: a certificate issued by the broker's own PKI logs in and gets
//! its policy; no certificate, a certificate signed by a pinned leaf, and
//! a revoked certificate (on the CRL) are refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{BROKER, config_text, free_port, operator_init, sqlite_storage};

/// A broker serving TLS from an `openssl`-made certificate, killed on drop.
struct TlsBroker {
    child: Child,
    url: String,
    server_cert: String,
    root: String,
    dir: tempfile::TempDir,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsBroker {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.pem");
        let key = dir.path().join("tls.key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        let port = free_port();
        let text = config_text(dir.path(), port, &sqlite_storage(dir.path()), "").replace(
            "[storage]",
            &format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\n[storage]",
                cert.display(),
                key.display()
            ),
        );
        let config = dir.path().join("broker.toml");
        std::fs::write(&config, &text).unwrap();
        let root = operator_init(&config).unwrap();
        let child = Command::new(BROKER)
            .args(["server", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let broker = Self {
            child,
            url: format!("https://127.0.0.1:{port}/v1"),
            server_cert: cert.to_str().unwrap().to_owned(),
            root,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while broker.call(None, "GET", "sys/health", None).0 != 200 {
            assert!(Instant::now() < deadline, "the TLS broker did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// A request through curl; `client` is a (certificate, key) pair to
    /// present. The status and JSON body.
    fn call_with(
        &self,
        token: Option<&str>,
        client: Option<(&Path, &Path)>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .args(["--cacert", &self.server_cert, "-X", method]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("X-Vault-Token: {t}")]);
        }
        if let Some((cert, key)) = client {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
        }
        let out = cmd.arg(format!("{}/{path}", self.url)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let status = code.trim().parse().unwrap_or(0);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(token, None, method, path, body)
    }

    /// As root; panics unless the status is `expected`.
    fn expect(&self, expected: u16, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(Some(&self.root.clone()), method, path, body);
        assert_eq!(status, expected, "{method} {path}: {body}");
        body
    }

    /// Writes `pem` (and `key`) to files named `name` in the broker's dir.
    fn files(&self, name: &str, pem: &str, key: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = self.dir.path().join(format!("{name}.pem"));
        let k = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert, pem).unwrap();
        std::fs::write(&k, key).unwrap();
        (cert, k)
    }
}

#[test]
fn a_certificate_from_the_brokers_pki_logs_in_and_pins_and_crls_hold() {
    let b = TlsBroker::start();
    b.expect(
        204,
        "POST",
        "sys/mounts/pki",
        Some(json!({ "type": "pki" })),
    );
    let ca = b.expect(
        200,
        "POST",
        "pki/root/generate/internal",
        Some(json!({ "common_name": "Client CA", "ttl": "87600h" })),
    )["data"]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    b.expect(
        204,
        "POST",
        "pki/roles/client",
        Some(
            json!({ "allowed_domains": "example.com", "allow_subdomains": true,
            "client_flag": true, "max_ttl": "1h" }),
        ),
    );
    let issue = |cn: &str| {
        let v = b.expect(
            200,
            "POST",
            "pki/issue/client",
            Some(json!({ "common_name": cn })),
        );
        (
            v["data"]["certificate"].as_str().unwrap().to_owned(),
            v["data"]["private_key"].as_str().unwrap().to_owned(),
            v["data"]["serial_number"].as_str().unwrap().to_owned(),
        )
    };
    b.expect(
        204,
        "POST",
        "sys/auth/cert",
        Some(json!({ "type": "cert" })),
    );
    b.expect(
        204,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }\npath \"pki/cert/ca\" { capabilities = [\"read\"] }" })),
    );
    b.expect(
        204,
        "POST",
        "auth/cert/certs/clients",
        Some(json!({ "certificate": ca, "token_policies": "app",
            "allowed_common_names": "*.example.com", "token_ttl": "10m" })),
    );

    // A certificate the broker issued logs in.
    let (app_pem, app_key, app_serial) = issue("app.example.com");
    let (app_cert, app_key) = b.files("app", &app_pem, &app_key);
    let (status, body) = b.call_with(
        None,
        Some((&app_cert, &app_key)),
        "POST",
        "auth/cert/login",
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(
        body["auth"]["metadata"]["common_name"],
        json!("app.example.com")
    );
    assert_eq!(body["auth"]["metadata"]["cert_name"], json!("clients"));
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, me) = b.call(Some(&token), "GET", "auth/token/lookup-self", None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["path"], json!("auth/cert/login"));
    assert_eq!(b.call(Some(&token), "GET", "sys/mounts", None).0, 403);

    // No certificate: refused, with the one answer every refusal gets.
    let (status, none) = b.call(None, "POST", "auth/cert/login", None);
    assert_eq!(status, 400, "{none}");
    let refusal = none["errors"][0].as_str().unwrap().to_owned();

    // A pinned leaf logs in as itself; a certificate it signed does not.
    let (pin_pem, pin_key, _) = issue("pinned.example.com");
    let (pin_cert, pin_key) = b.files("pinned", &pin_pem, &pin_key);
    b.expect(
        204,
        "POST",
        "auth/cert/certs/pinned",
        Some(json!({ "certificate": pin_pem, "token_policies": "app" })),
    );
    let (status, body) = b.call_with(
        None,
        Some((&pin_cert, &pin_key)),
        "POST",
        "auth/cert/login",
        Some(json!({ "name": "pinned" })),
    );
    assert_eq!(status, 200, "{body}");
    let dir = b.dir.path();
    let child_key = dir.join("child.key");
    let child_csr = dir.join("child.csr");
    let child_cert = dir.join("child.pem");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=child.example.com",
        "-keyout",
        child_key.to_str().unwrap(),
        "-out",
        child_csr.to_str().unwrap(),
    ]);
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "extendedKeyUsage = clientAuth\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        child_csr.to_str().unwrap(),
        "-CA",
        pin_cert.to_str().unwrap(),
        "-CAkey",
        pin_key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        child_cert.to_str().unwrap(),
    ]);
    // The chain the client sends: the child, then the pinned leaf.
    let chain = dir.join("child-chain.pem");
    std::fs::write(
        &chain,
        format!(
            "{}{}",
            std::fs::read_to_string(&child_cert).unwrap(),
            pin_pem
        ),
    )
    .unwrap();
    for name in [json!({ "name": "pinned" }), json!({})] {
        let (status, body) = b.call_with(
            None,
            Some((&chain, &child_key)),
            "POST",
            "auth/cert/login",
            Some(name),
        );
        assert_eq!(status, 400, "signed by a pinned leaf: {body}");
        assert_eq!(body["errors"][0], json!(refusal));
    }

    // Revoked on the broker's CRL, once the CRL is given to the method.
    b.expect(
        200,
        "POST",
        "pki/revoke",
        Some(json!({ "serial_number": app_serial })),
    );
    let (status, crl) = {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--cacert",
                &b.server_cert,
                &format!("{}/pki/crl/pem", b.url),
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(status && crl.contains("BEGIN X509 CRL"), "{crl}");
    b.expect(
        204,
        "POST",
        "auth/cert/crls/pki",
        Some(json!({ "crl": crl })),
    );
    let (status, body) = b.call_with(
        None,
        Some((&app_cert, &app_key)),
        "POST",
        "auth/cert/login",
        None,
    );
    assert_eq!(status, 400, "revoked: {body}");
    // Another certificate of the same CA still logs in.
    let (other_pem, other_key, _) = issue("other.example.com");
    let (other_cert, other_key) = b.files("other", &other_pem, &other_key);
    let (status, body) = b.call_with(
        None,
        Some((&other_cert, &other_key)),
        "POST",
        "auth/cert/login",
        None,
    );
    assert_eq!(status, 200, "{body}");
    // And one outside the allowed names does not.
    b.expect(
        204,
        "POST",
        "auth/cert/certs/clients",
        Some(json!({ "allowed_common_names": "web-*.example.com" })),
    );
    let (status, _) = b.call_with(
        None,
        Some((&other_cert, &other_key)),
        "POST",
        "auth/cert/login",
        None,
    );
    assert_eq!(status, 400);
}
