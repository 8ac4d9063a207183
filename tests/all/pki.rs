//! The PKI engine end to end: certificates built by the sandboxed plugin,
//! signed by the host-held CA, checked with `openssl` — chains (root and
//! intermediate), SANs, key usage, validity, the CRL — and hostile requests
//! refused with a clear 400.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{Broker, first_error};

/// `openssl ARGS`: whether it succeeded, and what it printed.
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed (Debian: apt install openssl)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Writes `text` to `dir/name`; the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn mount_with_root(b: &Broker, mount: &str, key_type: &str) -> String {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(json!({ "type": "pki" })),
    )
    .await;
    let root = b
        .expect(
            StatusCode::OK,
            "POST",
            &format!("{mount}/root/generate/internal"),
            Some(
                json!({ "common_name": "Broker Test Root", "ttl": "87600h", "key_type": key_type }),
            ),
        )
        .await;
    assert!(
        root["data"].get("private_key").is_none(),
        "internal never returns the key"
    );
    root["data"]["certificate"].as_str().unwrap().to_owned()
}

async fn web_role(b: &Broker, mount: &str, extra: Value) {
    let mut role = json!({
        "allowed_domains": ["example.com"],
        "allow_subdomains": true,
        "max_ttl": "72h",
    });
    for (k, v) in extra.as_object().unwrap() {
        role[k] = v.clone();
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("{mount}/roles/web"),
        Some(role),
    )
    .await;
}

#[tokio::test]
async fn issued_chains_verify_with_openssl_and_say_what_the_role_allows() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start().await;
    let root_pem = mount_with_root(&b, "pki", "ec").await;
    let ca = write(dir.path(), "ca.pem", &root_pem);
    let served = b
        .http
        .get(format!("{}/pki/ca/pem", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        served.text().await.unwrap(),
        root_pem,
        "ca/pem serves the CA"
    );
    web_role(
        &b,
        "pki",
        json!({ "server_flag": true, "client_flag": false }),
    )
    .await;

    let issued = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/issue/web",
            Some(json!({
                "common_name": "api.example.com",
                "alt_names": "www.example.com,*.apps.example.com",
                "ip_sans": "10.0.0.5",
                "ttl": "1h",
            })),
        )
        .await;
    let data = &issued["data"];
    let cert = write(
        dir.path(),
        "leaf.pem",
        data["certificate"].as_str().unwrap(),
    );
    let key = write(
        dir.path(),
        "leaf.key",
        data["private_key"].as_str().unwrap(),
    );
    assert_eq!(data["private_key_type"], "ec");
    assert_eq!(data["issuing_ca"].as_str().unwrap(), root_pem);

    let (ok, out) = openssl(&["verify", "-CAfile", s(&ca), s(&cert)]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", s(&cert), "-noout", "-text"]);
    for expected in [
        "Subject: CN = api.example.com",
        "Issuer: CN = Broker Test Root",
        "DNS:api.example.com",
        "DNS:www.example.com",
        "DNS:*.apps.example.com",
        "IP Address:10.0.0.5",
        "TLS Web Server Authentication",
        "Digital Signature",
        "CA:FALSE",
        "prime256v1",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(!text.contains("TLS Web Client Authentication"), "{text}");
    // Valid for the hour asked, starting a little before now.
    let (_, end) = openssl(&["x509", "-in", s(&cert), "-noout", "-checkend", "3500"]);
    assert!(end.contains("will not expire"), "{end}");
    let (_, end) = openssl(&["x509", "-in", s(&cert), "-noout", "-checkend", "3700"]);
    assert!(end.contains("will expire"), "{end}");
    // The private key is the certificate's.
    let (_, a) = openssl(&["x509", "-in", s(&cert), "-noout", "-pubkey"]);
    let (_, k) = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    assert_eq!(a, k);
    // The stored copy and the serial.
    let serial = data["serial_number"].as_str().unwrap();
    let stored = b
        .expect(StatusCode::OK, "GET", &format!("pki/cert/{serial}"), None)
        .await;
    assert_eq!(stored["data"]["certificate"], data["certificate"]);

    // Other key types verify too.
    for (key_type, bits, marker) in [("rsa", 2048, "rsaEncryption"), ("ed25519", 0, "ED25519")] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            "pki/roles/k",
            Some(
                json!({ "allowed_domains": "example.com", "allow_subdomains": true,
                "key_type": key_type, "key_bits": bits }),
            ),
        )
        .await;
        let issued = b
            .expect(
                StatusCode::OK,
                "POST",
                "pki/issue/k",
                Some(json!({ "common_name": "k.example.com", "ttl": "10m" })),
            )
            .await;
        let cert = write(
            dir.path(),
            "k.pem",
            issued["data"]["certificate"].as_str().unwrap(),
        );
        let (ok, out) = openssl(&["verify", "-CAfile", s(&ca), s(&cert)]);
        assert!(ok, "{key_type}: {out}");
        let (_, text) = openssl(&["x509", "-in", s(&cert), "-noout", "-text"]);
        assert!(text.contains(marker), "{key_type}: {text}");
    }
}

/// Mounts a PKI engine at `mount` and has it make an intermediate's key;
/// the `intermediate/generate/internal` response (its CSR in `data.csr`).
async fn intermediate_csr(b: &Broker, mount: &str) -> Value {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(json!({ "type": "pki" })),
    )
    .await;
    b.expect(
        StatusCode::OK,
        "POST",
        &format!("{mount}/intermediate/generate/internal"),
        Some(json!({ "common_name": "Broker Test Intermediate" })),
    )
    .await
}

#[tokio::test]
async fn an_intermediate_chain_verifies_and_the_crl_lists_revoked_serials() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start().await;
    let root_pem = mount_with_root(&b, "pki", "ec").await;
    let csr = intermediate_csr(&b, "pki_int").await;
    let signed = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/root/sign-intermediate",
            Some(json!({ "csr": csr["data"]["csr"], "ttl": "43800h" })),
        )
        .await;
    let int_pem = signed["data"]["certificate"].as_str().unwrap().to_owned();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki_int/intermediate/set-signed",
        Some(json!({ "certificate": format!("{int_pem}{root_pem}") })),
    )
    .await;
    web_role(&b, "pki_int", json!({ "generate_lease": true })).await;
    let root = write(dir.path(), "root.pem", &root_pem);
    let int = write(dir.path(), "int.pem", &int_pem);

    let mut serials = Vec::new();
    let mut certs = Vec::new();
    let mut leases = Vec::new();
    for i in 0..3 {
        let issued = b
            .expect(
                StatusCode::OK,
                "POST",
                "pki_int/issue/web",
                Some(json!({ "common_name": format!("s{i}.example.com"), "ttl": "2h" })),
            )
            .await;
        assert_eq!(issued["data"]["ca_chain"][0].as_str().unwrap(), int_pem);
        let cert = write(
            dir.path(),
            &format!("s{i}.pem"),
            issued["data"]["certificate"].as_str().unwrap(),
        );
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            s(&root),
            "-untrusted",
            s(&int),
            s(&cert),
        ]);
        assert!(ok, "{out}");
        serials.push(issued["data"]["serial_number"].as_str().unwrap().to_owned());
        leases.push(issued["lease_id"].as_str().unwrap().to_owned());
        certs.push(cert);
    }
    assert!(leases[0].starts_with("pki_int/issue/web/"), "{}", leases[0]);

    // One revoked by serial, one by revoking its lease.
    b.expect(
        StatusCode::OK,
        "POST",
        "pki_int/revoke",
        Some(json!({ "serial_number": serials[0] })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": leases[1] })),
    )
    .await;
    let crl_pem = b
        .http
        .get(format!("{}/pki_int/crl/pem", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let crl = write(dir.path(), "crl.pem", &crl_pem);
    let (ok, text) = openssl(&["crl", "-in", s(&crl), "-CAfile", s(&int), "-noout", "-text"]);
    assert!(ok && text.contains("verify OK"), "{text}");
    let listed = text.to_ascii_uppercase();
    for revoked in &serials[..2] {
        let hex = revoked.replace(':', "").to_ascii_uppercase();
        assert!(listed.contains(&hex), "{revoked} not on the CRL:\n{text}");
    }
    assert!(!listed.contains(&serials[2].replace(':', "").to_ascii_uppercase()));
    // openssl refuses the revoked certificates against that CRL.
    let chain = write(dir.path(), "chain.pem", &format!("{int_pem}{root_pem}"));
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        s(&crl),
        "-CAfile",
        s(&chain),
        s(&certs[1]),
    ]);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        s(&crl),
        "-CAfile",
        s(&chain),
        s(&certs[2]),
    ]);
    assert!(ok, "{out}");
    let der = b
        .http
        .get(format!("{}/pki_int/crl", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(der.headers()["content-type"], "application/pkix-crl");
}

#[tokio::test]
async fn sign_takes_a_csr_and_refuses_a_forged_one() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start().await;
    let root_pem = mount_with_root(&b, "pki", "ec").await;
    web_role(&b, "pki", json!({})).await;
    let key = dir.path().join("svc.key");
    let csr = dir.path().join("svc.csr");
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        "/CN=svc.example.com",
        "-addext",
        "subjectAltName=DNS:svc.example.com,DNS:alt.example.com",
    ]);
    assert!(ok, "{out}");
    let csr_pem = std::fs::read_to_string(&csr).unwrap();
    let signed = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/sign/web",
            Some(json!({ "csr": csr_pem, "ttl": "1h" })),
        )
        .await;
    assert!(signed["data"].get("private_key").is_none());
    let cert = write(
        dir.path(),
        "svc.pem",
        signed["data"]["certificate"].as_str().unwrap(),
    );
    let ca = write(dir.path(), "ca.pem", &root_pem);
    let (ok, out) = openssl(&["verify", "-CAfile", s(&ca), s(&cert)]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", s(&cert), "-noout", "-text"]);
    assert!(text.contains("DNS:alt.example.com"), "{text}");
    let (_, a) = openssl(&["x509", "-in", s(&cert), "-noout", "-pubkey"]);
    let (_, k) = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    assert_eq!(a, k, "the certificate is for the CSR's key");

    // A CSR whose signature does not match its content.
    let der = dir.path().join("svc.der");
    openssl(&["req", "-in", s(&csr), "-outform", "DER", "-out", s(&der)]);
    let mut bytes = std::fs::read(&der).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x55;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bytes));
    let (status, body) = b
        .call("POST", "pki/sign/web", Some(json!({ "csr": forged })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("signature"), "{body}");
    // A CSR asking for a name outside the role.
    let (ok, _) = openssl(&[
        "req",
        "-new",
        "-key",
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        "/CN=evil.example.net",
    ]);
    assert!(ok);
    let (status, body) = b
        .call(
            "POST",
            "pki/sign/web",
            Some(json!({ "csr": std::fs::read_to_string(&csr).unwrap() })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn hostile_requests_get_a_clear_400() {
    let b = Broker::start().await;
    mount_with_root(&b, "pki", "ec").await;
    web_role(
        &b,
        "pki",
        json!({ "allowed_uri_sans": "spiffe://example/*" }),
    )
    .await;
    let long_cn = format!("{}.example.com", "a".repeat(60));
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "common_name": "api.example.net" }), "not allowed"),
        (
            json!({ "common_name": "example.com.evil.net" }),
            "not allowed",
        ),
        (json!({ "common_name": "badexample.com" }), "not allowed"),
        (json!({ "common_name": "*.com" }), "not allowed"),
        (json!({ "common_name": "*" }), "wildcard"),
        (json!({ "common_name": "a.*.example.com" }), "wildcard"),
        (json!({ "common_name": "f*o.example.com" }), "wildcard"),
        (json!({ "common_name": "10.0.0.1" }), "ip_sans"),
        (
            json!({ "common_name": "a.example.com", "alt_names": "127.1" }),
            "IP address",
        ),
        (
            json!({ "common_name": "a.example.com", "alt_names": "https://a.example.com" }),
            "uri_sans",
        ),
        (json!({ "common_name": "a\u{0}b.example.com" }), "control"),
        (json!({ "common_name": "аpi.example.com" }), "xn--"),
        (json!({ "common_name": long_cn }), "64"),
        (
            json!({ "common_name": "a.example.com", "uri_sans": "spiffe://evil/x" }),
            "allowed_uri_sans",
        ),
        (
            json!({ "common_name": "a.example.com", "ip_sans": "not-an-ip" }),
            "not an IP",
        ),
        (
            json!({ "common_name": "a.example.com", "ttl": "100h" }),
            "max_ttl",
        ),
        (
            json!({ "common_name": "a.example.com", "ttl": "soon" }),
            "invalid duration",
        ),
        (json!({}), "common_name is required"),
    ];
    for (request, expected) in cases {
        let (status, body) = b.call("POST", "pki/issue/web", Some(request.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert!(
            first_error(&body).contains(expected),
            "{request}: expected {expected:?} in {body}"
        );
    }
    // Past the CA's own expiry, even within the role's max_ttl.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/short",
        Some(json!({ "type": "pki" })),
    )
    .await;
    b.expect(
        StatusCode::OK,
        "POST",
        "short/root/generate/internal",
        Some(json!({ "common_name": "Short Root", "ttl": "2h" })),
    )
    .await;
    web_role(&b, "short", json!({})).await;
    let (status, body) = b
        .call(
            "POST",
            "short/issue/web",
            Some(json!({ "common_name": "a.example.com", "ttl": "3h" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("outlive"), "{body}");
    // Unknown role, no CA, a second root.
    let (status, _) = b
        .call(
            "POST",
            "pki/issue/nope",
            Some(json!({ "common_name": "a.example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = b
        .call(
            "POST",
            "pki/root/generate/internal",
            Some(json!({ "common_name": "Again" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("already has a CA"), "{body}");
}

#[tokio::test]
async fn tidy_drops_expired_certificates_and_their_crl_entries() {
    let b = Broker::start().await;
    mount_with_root(&b, "pki", "ec").await;
    web_role(&b, "pki", json!({})).await;
    let brief = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/issue/web",
            Some(json!({ "common_name": "brief.example.com", "ttl": "1s" })),
        )
        .await;
    let lasting = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/issue/web",
            Some(json!({ "common_name": "lasting.example.com", "ttl": "1h" })),
        )
        .await;
    let brief_serial = brief["data"]["serial_number"].as_str().unwrap().to_owned();
    let lasting_serial = lasting["data"]["serial_number"]
        .as_str()
        .unwrap()
        .to_owned();
    for serial in [&brief_serial, &lasting_serial] {
        b.expect(
            StatusCode::OK,
            "POST",
            "pki/revoke",
            Some(json!({ "serial_number": serial })),
        )
        .await;
    }
    // A leased, unstored certificate reaches the CRL through its lease: the
    // serial's record still tells tidy when it expires.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/roles/leased",
        Some(
            json!({ "allowed_domains": ["example.com"], "allow_subdomains": true,
            "generate_lease": true, "no_store": true }),
        ),
    )
    .await;
    let leased = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/issue/leased",
            Some(json!({ "common_name": "leased.example.com", "ttl": "1s" })),
        )
        .await;
    let lease_id = leased["lease_id"].as_str().unwrap();
    assert!(!lease_id.is_empty(), "{leased}");
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease_id })),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let tidied = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/tidy",
            Some(json!({ "safety_buffer": "0s" })),
        )
        .await;
    assert_eq!(tidied["data"]["certs_removed"], 1, "{tidied}");
    assert_eq!(tidied["data"]["revoked_removed"], 2, "{tidied}");
    let (status, _) = b
        .call("GET", &format!("pki/cert/{brief_serial}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let kept = b
        .expect(
            StatusCode::OK,
            "GET",
            &format!("pki/cert/{lasting_serial}"),
            None,
        )
        .await;
    assert!(kept["data"]["revocation_time"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn ca_names_and_key_sizes_are_bounded_when_written() {
    let b = Broker::start().await;
    mount_with_root(&b, "pki", "ec").await;
    let huge_cn = "C".repeat(10_000);
    // A root or an intermediate named past X.509's 64-character bound.
    for path in ["root/generate/internal", "intermediate/generate/internal"] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            "sys/mounts/pki_long",
            Some(json!({ "type": "pki" })),
        )
        .await;
        let body = b
            .expect(
                StatusCode::BAD_REQUEST,
                "POST",
                &format!("pki_long/{path}"),
                Some(json!({ "common_name": huge_cn })),
            )
            .await;
        assert!(first_error(&body).contains("64"), "{body}");
        b.expect(
            StatusCode::NO_CONTENT,
            "DELETE",
            "sys/mounts/pki_long",
            None,
        )
        .await;
    }
    // sign-intermediate: neither a long common_name nor a CSR whose own
    // subject is too long.
    let csr = intermediate_csr(&b, "pki_int").await;
    let body = b
        .expect(
            StatusCode::BAD_REQUEST,
            "POST",
            "pki/root/sign-intermediate",
            Some(json!({ "csr": csr["data"]["csr"], "common_name": huge_cn })),
        )
        .await;
    assert!(first_error(&body).contains("64"), "{body}");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, huge_cn.as_str());
    let key = rcgen::KeyPair::generate().unwrap();
    let long_csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let body = b
        .expect(
            StatusCode::BAD_REQUEST,
            "POST",
            "pki/root/sign-intermediate",
            Some(json!({ "csr": long_csr })),
        )
        .await;
    assert!(first_error(&body).contains("64"), "{body}");
    // The same CSR with a common name that replaces its subject is signed.
    b.expect(
        StatusCode::OK,
        "POST",
        "pki/root/sign-intermediate",
        Some(json!({ "csr": long_csr, "common_name": "Short Intermediate" })),
    )
    .await;

    // key_bits: a negative, fractional or nonsense size is refused at
    // write time, naming the field; Vault's string form is taken.
    for bad in [json!(-1), json!(2048.5), json!("lots"), json!(1_000_000)] {
        let body = b
            .expect(
                StatusCode::BAD_REQUEST,
                "POST",
                "pki/roles/web",
                Some(
                    json!({ "allowed_domains": "example.com", "key_type": "rsa", "key_bits": bad }),
                ),
            )
            .await;
        assert!(first_error(&body).contains("key_bits"), "{bad}: {body}");
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/roles/web",
        Some(json!({ "allowed_domains": "example.com", "allow_subdomains": true, "key_type": "rsa", "key_bits": "2048" })),
    )
    .await;
    let role = b.expect(StatusCode::OK, "GET", "pki/roles/web", None).await;
    assert_eq!(role["data"]["key_bits"], 2048);
    b.expect(
        StatusCode::OK,
        "POST",
        "pki/issue/web",
        Some(json!({ "common_name": "a.example.com" })),
    )
    .await;
}

#[tokio::test]
async fn crl_settings_are_checked_and_set_the_crls_lifetime() {
    let b = Broker::start().await;
    mount_with_root(&b, "pki", "ec").await;
    let defaults = b
        .expect(StatusCode::OK, "GET", "pki/config/crl", None)
        .await;
    assert_eq!(
        defaults["data"],
        json!({"expiry": "72h", "auto_rebuild": false, "auto_rebuild_grace_period": "12h", "disable": false})
    );
    for (body, says) in [
        (
            json!({"expiry": "1h", "auto_rebuild_grace_period": "2h"}),
            "less than expiry",
        ),
        (json!({"expiry": "0s"}), "more than zero"),
        (json!({"expiry": "soon"}), "expiry"),
        (json!({"auto_rebuild": "yes"}), "auto_rebuild"),
        (json!({"disable": true}), "not supported"),
    ] {
        let (code, answer) = b.call("POST", "pki/config/crl", Some(body.clone())).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
    // Nothing refused was kept.
    let kept = b
        .expect(StatusCode::OK, "GET", "pki/config/crl", None)
        .await;
    assert_eq!(kept["data"], defaults["data"]);

    // A CRL signed from now on lasts `expiry`.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "pki/config/crl",
        Some(json!({"expiry": "2h", "auto_rebuild_grace_period": "30m"})),
    )
    .await;
    b.expect(StatusCode::OK, "POST", "pki/tidy", Some(json!({})))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let pem = reqwest::get(format!("{}/pki/crl/pem", b.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file = write(dir.path(), "crl.pem", &pem);
    let (ok, out) = openssl(&[
        "crl",
        "-noout",
        "-lastupdate",
        "-nextupdate",
        "-in",
        s(&file),
    ]);
    assert!(ok, "{out}");
    // openssl writes `Dec  1 10:50:00 2026 GMT`; date(1) reads it back.
    let at = |field: &str| -> i64 {
        let when = out
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in {out}"));
        let date = Command::new("date")
            .args(["-u", "+%s", "-d", when.trim()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&date.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{when}: {e}"))
    };
    let lifetime = at("nextUpdate=") - at("lastUpdate=");
    assert_eq!(lifetime, 7200, "{out}");
}
