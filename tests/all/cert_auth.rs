//! Certificate auth end to end, over a real TLS listener with curl as the
//! client: a certificate issued by the broker's own PKI logs in and gets
//! its policy; no certificate, a certificate signed by a pinned leaf, and
//! a revoked certificate (on the CRL) are refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::Broker;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mounts PKI at `pki/` with a root CA and a role `client` that issues
/// client certificates under example.com; the CA's certificate, PEM.
pub async fn client_pki(b: &Broker) -> String {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({ "type": "pki" })),
    )
    .await;
    let ca = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/root/generate/internal",
            Some(json!({ "common_name": "Client CA", "ttl": "87600h" })),
        )
        .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/roles/client",
        Some(
            json!({ "allowed_domains": "example.com", "allow_subdomains": true,
            "client_flag": true, "max_ttl": "1h" }),
        ),
    )
    .await;
    ca["data"]["certificate"].as_str().unwrap().to_owned()
}

/// A client certificate for `cn` from [`client_pki`]'s role: the
/// certificate and key, PEM, and the serial number.
pub async fn issue(b: &Broker, cn: &str) -> (String, String, String) {
    let v = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/issue/client",
            Some(json!({ "common_name": cn })),
        )
        .await;
    let field = |f: &str| v["data"][f].as_str().unwrap().to_owned();
    (
        field("certificate"),
        field("private_key"),
        field("serial_number"),
    )
}

/// Writes `pem` and `key` to `name.pem` and `name.key` in `dir`.
fn files(dir: &Path, name: &str, pem: &str, key: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&k, key).unwrap();
    (cert, k)
}

/// `POST auth/cert/login` through curl, presenting `client` (certificate
/// and key files) when given; the status and JSON body.
fn curl_login(b: &Broker, client: Option<(&Path, &Path)>, body: Value) -> (u16, Value) {
    let server = b.tls_cert.as_ref().expect("a TLS broker");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(server)
        .args(["-X", "POST", "-H", "Content-Type: application/json"])
        .args(["-d", &body.to_string()]);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd
        .arg(format!("{}/auth/cert/login", b.base))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let status = code.trim().parse().unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_certificate_from_the_brokers_pki_logs_in_and_pins_and_crls_hold() {
    let b = Broker::start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ca = client_pki(&b).await;
    let ok = StatusCode::NO_CONTENT;
    b.expect(ok, "POST", "sys/auth/cert", Some(json!({ "type": "cert" })))
        .await;
    b.expect(
        ok,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }\npath \"pki/cert/ca\" { capabilities = [\"read\"] }" })),
    )
    .await;
    b.expect(
        ok,
        "POST",
        "auth/cert/certs/clients",
        Some(json!({ "certificate": ca, "token_policies": "app",
            "allowed_common_names": "*.example.com", "token_ttl": "10m" })),
    )
    .await;

    // A certificate the broker issued logs in.
    let (app_pem, app_key, app_serial) = issue(&b, "app.example.com").await;
    let (app_cert, app_key) = files(dir, "app", &app_pem, &app_key);
    let (status, body) = curl_login(&b, Some((&app_cert, &app_key)), json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(
        body["auth"]["metadata"]["common_name"],
        json!("app.example.com")
    );
    assert_eq!(body["auth"]["metadata"]["cert_name"], json!("clients"));
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, me) = b
        .call_as(&token, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["path"], json!("auth/cert/login"));
    let (status, _) = b.call_as(&token, "GET", "sys/mounts", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The same through `broker login -method=cert`, as Vault's CLI:
    // the client certificate from BROKER_CLIENT_CERT and BROKER_CLIENT_KEY.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(crate::process::BROKER)
        .args(["login", "-method=cert", "-no-store", "-field=token"])
        .env_clear()
        .env("HOME", home.path())
        .env("BROKER_ADDR", b.base.trim_end_matches("/v1"))
        .env("BROKER_CACERT", b.tls_cert.as_ref().unwrap())
        .env("BROKER_CLIENT_CERT", &app_cert)
        .env("BROKER_CLIENT_KEY", &app_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_token = String::from_utf8(out.stdout).unwrap();
    let (status, me) = b
        .call_as(&cli_token, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me["data"]["meta"]["common_name"],
        json!("app.example.com"),
        "{me}"
    );

    // The agent with `method = "cert"`: its token in a plain sink and in
    // a wrapped one, whose single-use token unwraps to the same.
    let config = home.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[broker]\naddress = \"{}\"\nca_cert = \"{}\"\n\n[auto_auth]\nmethod = \"cert\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n\n\
             [[sink]]\npath = \"{}/token\"\n\n[[sink]]\npath = \"{}/wrapped\"\nwrap_ttl = \"5m\"\n",
            b.base.trim_end_matches("/v1"),
            b.tls_cert.as_ref().unwrap().display(),
            app_cert.display(),
            app_key.display(),
            home.path().display(),
            home.path().display(),
        ),
    )
    .unwrap();
    let out = Command::new(crate::process::BROKER)
        .args(["agent", "--exit-after-auth", "--config"])
        .arg(&config)
        .env_remove("BROKER_TOKEN")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sink = std::fs::read_to_string(home.path().join("token")).unwrap();
    let (status, me) = b
        .call_as(&sink, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["meta"]["common_name"], json!("app.example.com"));
    let wrapped = std::fs::read_to_string(home.path().join("wrapped")).unwrap();
    assert_ne!(wrapped, sink);
    let (status, unwrapped) = b
        .call_as(&wrapped, "POST", "sys/wrapping/unwrap", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{unwrapped}");
    assert_eq!(unwrapped["data"]["token"], json!(sink));

    // No certificate: refused, with the one answer every refusal gets.
    let (status, none) = curl_login(&b, None, json!({}));
    assert_eq!(status, 400, "{none}");
    let refusal = none["errors"][0].as_str().unwrap().to_owned();

    // A pinned leaf logs in as itself; a certificate it signed does not.
    let (pin_pem, pin_key, _) = issue(&b, "pinned.example.com").await;
    let (pin_cert, pin_key) = files(dir, "pinned", &pin_pem, &pin_key);
    b.expect(
        ok,
        "POST",
        "auth/cert/certs/pinned",
        Some(json!({ "certificate": pin_pem, "token_policies": "app" })),
    )
    .await;
    let (status, body) = curl_login(&b, Some((&pin_cert, &pin_key)), json!({ "name": "pinned" }));
    assert_eq!(status, 200, "{body}");
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
        let (status, body) = curl_login(&b, Some((&chain, &child_key)), name);
        assert_eq!(status, 400, "signed by a pinned leaf: {body}");
        assert_eq!(body["errors"][0], json!(refusal));
    }

    // Revoked on the broker's CRL, once the CRL is given to the method.
    b.expect(
        StatusCode::OK,
        "POST",
        "pki/revoke",
        Some(json!({ "serial_number": app_serial })),
    )
    .await;
    let crl = b.expect(StatusCode::OK, "GET", "pki/crl/pem", None).await;
    let crl = crl.as_str().unwrap_or_default().to_owned();
    assert!(crl.contains("BEGIN X509 CRL"), "{crl}");
    b.expect(
        ok,
        "POST",
        "auth/cert/crls/pki",
        Some(json!({ "crl": crl })),
    )
    .await;
    let (status, body) = curl_login(&b, Some((&app_cert, &app_key)), json!({}));
    assert_eq!(status, 400, "revoked: {body}");
    // Another certificate of the same CA still logs in.
    let (other_pem, other_key, _) = issue(&b, "other.example.com").await;
    let (other_cert, other_key) = files(dir, "other", &other_pem, &other_key);
    let (status, body) = curl_login(&b, Some((&other_cert, &other_key)), json!({}));
    assert_eq!(status, 200, "{body}");
    // And one outside the allowed names does not.
    b.expect(
        ok,
        "POST",
        "auth/cert/certs/clients",
        Some(json!({ "allowed_common_names": "web-*.example.com" })),
    )
    .await;
    let (status, _) = curl_login(&b, Some((&other_cert, &other_key)), json!({}));
    assert_eq!(status, 400);
}
