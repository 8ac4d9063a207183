//! JWT auth end to end: a test issuer serves its OIDC discovery document
//! and JWKS over loopback and signs tokens. A good token logs in and its
//! token reads only what its policy grants; every bad token (wrong
//! audience, issuer, subject or bound claim, expired, not yet valid, an
//! unknown key, a tampered signature, `alg: none`, HS256 keyed with the
//! public key, hostile shapes) gets the same answer; a rotated key is
//! picked up within the refresh limit; lockout counts per role and
//! identity; disabling the method revokes its tokens. Claim fixtures
//! shaped like GitHub Actions, GitLab CI and Kubernetes tokens log in with
//! the roles the README recommends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_users_with_prefix, setup_tagged};
use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// The one answer every refused login gets.
const REFUSAL: &str = "invalid JWT or role";

/// Lockout settings that let a test make many failures.
const LENIENT: &str =
    "[auth.lockout]\nthreshold = 1000\nduration = \"3s\"\ncounter_reset = \"1m\"\n";

/// A signing key of the test issuer, with its public forms.
struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// SubjectPublicKeyInfo PEM.
    pem: String,
}

impl TestKey {
    fn rsa(kid: &str) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let public = key.to_public_key();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
            pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    fn ec(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = key.public_key_raw();
        assert_eq!(point.len(), 65);
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
            pem: key.public_key_pem(),
        }
    }

    fn ed(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&key.serialize_der()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(key.public_key_raw()),
            }),
            pem: key.public_key_pem(),
        }
    }

    /// A JWT of `claims` signed by this key, naming its kid.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// A JWT of raw header and payload text, signed by this key.
    fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{input}.{signature}")
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// The test issuer: `/.well-known/openid-configuration` and `/jwks` on
/// 127.0.0.1, its key set switchable, its JWKS fetches counted.
struct Issuer {
    base: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Issuer {
    async fn start(keys: Value) -> Self {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({
            "issuer": base,
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        });
        let (k, f) = (keys.clone(), fetches.clone());
        let elsewhere = discovery.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            // A document served below the base that names the base: its
            // issuer is not the URL it was found at.
            .route(
                "/elsewhere/.well-known/openid-configuration",
                get(move || async move { axum::Json(elsewhere) }),
            )
            .route(
                "/jwks",
                get(move || {
                    let (k, f) = (k.clone(), f.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        axum::Json(k.lock().unwrap().clone())
                    }
                }),
            );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            keys,
            fetches,
            task,
        }
    }

    fn set(&self, keys: Value) {
        *self.keys.lock().unwrap() = keys;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// A fixture's claims, dated now.
fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/jwt/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut claims: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let t = now();
    claims["iat"] = json!(t);
    claims["nbf"] = json!(t - 5);
    claims["exp"] = json!(t + 300);
    claims
}

/// `claims` with `changes` laid over it (`null` removes a claim).
fn with(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            out.as_object_mut().unwrap().remove(k);
        } else {
            out[k] = v.clone();
        }
    }
    out
}

async fn enable(b: &Broker, mount: &str, kind: &str, config: Value) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("sys/auth/{mount}"),
        Some(json!({ "type": kind })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("auth/{mount}/config"),
        Some(config),
    )
    .await;
}

async fn role(b: &Broker, mount: &str, name: &str, body: Value) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        &format!("auth/{mount}/role/{name}"),
        Some(body),
    )
    .await;
}

async fn login(b: &Broker, mount: &str, role: &str, jwt: &str) -> (StatusCode, Value) {
    b.call_as(
        "",
        "POST",
        &format!("auth/{mount}/login"),
        Some(json!({ "role": role, "jwt": jwt })),
    )
    .await
}

fn assert_refused(answer: &(StatusCode, Value), what: &str) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{what}: {}", answer.1);
    assert_eq!(first_error(&answer.1), REFUSAL, "{what}");
}

/// The GitHub Actions role the README recommends, with the issuer served
/// from here: the README's `oidc_discovery_url` is GitHub's; here
/// `jwks_url` and `bound_issuer` stand in for it.
fn github_role() -> Value {
    json!({
        "role_type": "jwt",
        "user_claim": "repository",
        "bound_audiences": ["https://github.com/octo-org"],
        "bound_claims_type": "glob",
        "bound_claims": {
            "repository": "octo-org/octo-repo",
            "ref": "refs/heads/main",
            "job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/*",
        },
        "claim_mappings": {
            "repository": "repository", "ref": "ref", "run_id": "run_id", "actor": "actor",
        },
        "token_policies": ["deploy"],
        "token_ttl": "10m",
    })
}

#[tokio::test]
async fn a_github_actions_token_logs_in_reads_its_creds_and_nothing_else() {
    let key = TestKey::rsa("gh-1");
    let issuer = Issuer::start(jwks(&[&key])).await;
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/deploy",
        Some(json!({ "policy": "path \"database/creds/app\" { capabilities = [\"read\"] }" })),
    )
    .await;
    enable(
        &b,
        "jwt",
        "jwt",
        json!({
            "jwks_url": format!("{}/jwks", issuer.base),
            "bound_issuer": "https://token.actions.githubusercontent.com",
        }),
    )
    .await;
    role(&b, "jwt", "deploy", github_role()).await;
    let read = b
        .expect(StatusCode::OK, "GET", "auth/jwt/role/deploy", None)
        .await;
    assert_eq!(read["data"]["bound_claims_type"], json!("glob"));
    assert_eq!(read["data"]["token_policies"], json!(["deploy"]));
    assert_eq!(
        b.expect(StatusCode::OK, "LIST", "auth/jwt/role", None)
            .await["data"]["keys"],
        json!(["deploy"])
    );

    let claims = fixture("github_actions");
    let jwt = key.sign(&claims);
    let (status, body) = login(&b, "jwt", "deploy", &jwt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["policies"], json!(["default", "deploy"]));
    assert_eq!(body["auth"]["lease_duration"], json!(600));

    // The same job under `broker exec --auth jwt` (the token from a file,
    // as a CI runner writes it), and `broker login -method=jwt`.
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("oidc-token");
    std::fs::write(&jwt_file, &jwt).unwrap();
    let out = std::process::Command::new(crate::process::BROKER)
        .args([
            "exec",
            "--auth",
            "jwt",
            "--secret",
            "DB=database/creds/app",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "test -n \"$DB_USERNAME\" && test -n \"$DB_PASSWORD\" && echo has-creds",
        ])
        .env_remove("BROKER_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env("HOME", dir.path())
        .env("BROKER_ADDR", b.base.trim_end_matches("/v1"))
        .env("BROKER_JWT_FILE", &jwt_file)
        .env("BROKER_JWT_ROLE", "deploy")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "has-creds");
    let out = std::process::Command::new(crate::process::BROKER)
        .args([
            "login",
            "-method=jwt",
            "-no-store",
            "-field=token",
            "role=deploy",
        ])
        .arg(format!("jwt=@{}", jwt_file.display()))
        .env("HOME", dir.path())
        .env("BROKER_ADDR", b.base.trim_end_matches("/v1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_token = String::from_utf8(out.stdout).unwrap();
    let (status, cli_creds) = b
        .call_as(&cli_token, "GET", "database/creds/app", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{cli_creds}");
    // Gone again, for the counts below (exec revoked its own at exit).
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke",
        Some(json!({"lease_id": cli_creds["lease_id"]})),
    )
    .await;
    let meta = &body["auth"]["metadata"];
    assert_eq!(meta["role"], json!("deploy"));
    assert_eq!(meta["alias_name"], json!("octo-org/octo-repo"));
    assert_eq!(meta["repository"], json!("octo-org/octo-repo"));
    assert_eq!(meta["ref"], json!("refs/heads/main"));
    assert_eq!(meta["actor"], json!("octocat"));
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();

    let (status, creds) = b.call_as(&token, "GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);
    for (method, path) in [
        ("GET", "database/roles/app"),
        ("GET", "auth/jwt/role/deploy"),
        ("GET", "auth/jwt/config"),
        ("POST", "auth/jwt/role/deploy"),
        ("GET", "sys/auth"),
    ] {
        let (status, _) = b.call_as(&token, method, path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let me = b
        .call_as(&token, "GET", "auth/token/lookup-self", None)
        .await
        .1;
    assert_eq!(me["data"]["path"], json!("auth/jwt/login"));
    assert_eq!(me["data"]["display_name"], json!("jwt-octo-org/octo-repo"));

    // Another repository's token, a tag, another workflow: refused.
    for (what, changes) in [
        (
            "another repository",
            json!({ "repository": "octo-org/other" }),
        ),
        ("a tag", json!({ "ref": "refs/tags/v1" })),
        (
            "another workflow",
            json!({ "job_workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main" }),
        ),
    ] {
        assert_refused(
            &login(&b, "jwt", "deploy", &key.sign(&with(&claims, changes))).await,
            what,
        );
    }
    // The token never reaches the log.
    assert!(!b.log().contains(&jwt));

    // Disabling the method revokes its tokens, and so their database users.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/auth/jwt", None)
        .await;
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
    assert_eq!(
        b.call_as(&token, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_alike() {
    let key = TestKey::ec("ec-1");
    let stranger = TestKey::ec("stranger");
    let rsa = TestKey::rsa("rsa-1");
    let issuer = Issuer::start(jwks(&[&key, &rsa])).await;
    let b = Broker::start_with(None, LENIENT).await;
    enable(
        &b,
        "jwt",
        "jwt",
        json!({
            "jwks_url": format!("{}/jwks", issuer.base),
            "bound_issuer": "https://issuer.example",
        }),
    )
    .await;
    role(
        &b,
        "jwt",
        "app",
        json!({
            "bound_audiences": "broker",
            "bound_subject": "app-1",
            "bound_claims": { "team": ["payments", "billing"] },
            "token_policies": "default",
        }),
    )
    .await;
    let t = now();
    let good = json!({
        "iss": "https://issuer.example", "aud": ["other", "broker"], "sub": "app-1",
        "team": "billing", "iat": t, "nbf": t, "exp": t + 300,
    });
    let (status, body) = login(&b, "jwt", "app", &key.sign(&good)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The RSA key of the same set serves too.
    assert_eq!(
        login(&b, "jwt", "app", &rsa.sign(&good)).await.0,
        StatusCode::OK
    );

    let good_jwt = key.sign(&good);
    let (h, rest) = good_jwt.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{h}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(with(&good, json!({ "sub": "admin" })).to_string())
    );
    let none = |sig: &str| {
        format!(
            "{}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(good.to_string())
        )
    };
    let hs256 = |secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rsa.kid.clone());
        jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(secret)).unwrap()
    };
    let deep = format!(
        r#"{{"iss":"https://issuer.example","aud":"broker","sub":"app-1","team":"billing","exp":{},"deep":{}{}}}"#,
        t + 300,
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let mut huge = good.clone();
    huge["pad"] = json!("x".repeat(20 * 1024));
    let forged_kid = TestKey {
        kid: key.kid.clone(),
        ..TestKey::ec("unused")
    };

    let cases: Vec<(&str, String)> = vec![
        (
            "wrong audience",
            key.sign(&with(&good, json!({ "aud": "someone-else" }))),
        ),
        (
            "no audience",
            key.sign(&with(&good, json!({ "aud": null }))),
        ),
        (
            "non-string audience",
            key.sign(&with(&good, json!({ "aud": ["broker", 1] }))),
        ),
        (
            "nested audience",
            key.sign(&with(&good, json!({ "aud": [["broker"]] }))),
        ),
        (
            "wrong issuer",
            key.sign(&with(&good, json!({ "iss": "https://evil.example" }))),
        ),
        ("no issuer", key.sign(&with(&good, json!({ "iss": null })))),
        (
            "wrong subject",
            key.sign(&with(&good, json!({ "sub": "app-2" }))),
        ),
        (
            "wrong bound claim",
            key.sign(&with(&good, json!({ "team": "marketing" }))),
        ),
        (
            "missing bound claim",
            key.sign(&with(&good, json!({ "team": null }))),
        ),
        (
            "expired",
            key.sign(&with(&good, json!({ "exp": t - 3600 }))),
        ),
        ("no exp", key.sign(&with(&good, json!({ "exp": null })))),
        (
            "exp as text",
            key.sign(&with(&good, json!({ "exp": (t + 300).to_string() }))),
        ),
        (
            "not yet valid",
            key.sign(&with(&good, json!({ "nbf": t + 3600 }))),
        ),
        (
            "nbf as text",
            key.sign(&with(&good, json!({ "nbf": (t + 3600).to_string() }))),
        ),
        (
            "issued in the future",
            key.sign(&with(&good, json!({ "iat": t + 3600 }))),
        ),
        ("unknown key", stranger.sign(&good)),
        ("a known kid, another key", forged_kid.sign(&good)),
        ("tampered", tampered),
        ("alg none, empty signature", none("")),
        ("alg none, some signature", none("AAAA")),
        (
            "HS256 keyed with the public key PEM",
            hs256(rsa.pem.as_bytes()),
        ),
        (
            "HS256 keyed with the JWK",
            hs256(rsa.jwk.to_string().as_bytes()),
        ),
        ("not three parts", "abc.def".to_owned()),
        ("four parts", format!("{good_jwt}.x")),
        ("not a JWT at all", "hello".to_owned()),
        ("empty", String::new()),
        ("huge", key.sign(&huge)),
        (
            "deeply nested claims",
            key.sign_raw(r#"{"alg":"ES256","kid":"ec-1"}"#, &deep),
        ),
        (
            "claims not an object",
            key.sign_raw(r#"{"alg":"ES256","kid":"ec-1"}"#, "[1,2]"),
        ),
    ];
    for (what, jwt) in &cases {
        assert_refused(&login(&b, "jwt", "app", jwt).await, what);
    }
    // A role that does not exist, and a login with no role: the same.
    assert_refused(&login(&b, "jwt", "nope", &good_jwt).await, "no such role");
    assert_refused(
        &b.call_as(
            "",
            "POST",
            "auth/jwt/login",
            Some(json!({ "jwt": good_jwt })),
        )
        .await,
        "no role",
    );
    // The good token still logs in.
    assert_eq!(login(&b, "jwt", "app", &good_jwt).await.0, StatusCode::OK);
    let log = b.log();
    for (_, jwt) in cases.iter().filter(|(_, j)| j.len() > 20) {
        assert!(!log.contains(jwt.as_str()), "a token reached the log");
    }
}

#[tokio::test]
async fn pem_keys_and_the_algorithms_a_mount_accepts() {
    let rsa = TestKey::rsa("r");
    let ed = TestKey::ed("e");
    let b = Broker::start_with(None, LENIENT).await;
    enable(
        &b,
        "jwt",
        "jwt",
        json!({ "jwt_validation_pubkeys": [rsa.pem, ed.pem] }),
    )
    .await;
    role(
        &b,
        "jwt",
        "svc",
        json!({ "bound_audiences": ["broker"], "token_policies": ["default"] }),
    )
    .await;
    let t = now();
    let claims = json!({ "sub": "svc-1", "aud": "broker", "iat": t, "exp": t + 60 });
    assert_eq!(
        login(&b, "jwt", "svc", &rsa.sign(&claims)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        login(&b, "jwt", "svc", &ed.sign(&claims)).await.0,
        StatusCode::OK
    );
    // The classic confusion: HMAC keyed with the configured public key.
    for secret in [
        rsa.pem.as_bytes(),
        rsa.pem.trim().as_bytes(),
        ed.pem.as_bytes(),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let jwt = jsonwebtoken::encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert_refused(&login(&b, "jwt", "svc", &jwt).await, "HMAC with the PEM");
        }
    }
    // A mount may narrow its algorithms, never to none or HMAC.
    for bad in ["none", "HS256", "RS1"] {
        let (status, body) = b
            .call(
                "POST",
                "auth/jwt/config",
                Some(json!({ "jwt_validation_pubkeys": [rsa.pem], "jwt_supported_algs": [bad] })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/jwt/config",
        Some(json!({ "jwt_validation_pubkeys": [rsa.pem, ed.pem], "jwt_supported_algs": "EdDSA" })),
    )
    .await;
    assert_refused(
        &login(&b, "jwt", "svc", &rsa.sign(&claims)).await,
        "RS256 no longer accepted",
    );
    // Configured keys are parsed once and kept; replacing them takes
    // effect at once.
    let other = TestKey::ed("o");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/jwt/config",
        Some(json!({ "jwt_validation_pubkeys": [other.pem] })),
    )
    .await;
    assert_refused(
        &login(&b, "jwt", "svc", &ed.sign(&claims)).await,
        "a key no longer configured",
    );
    assert_eq!(
        login(&b, "jwt", "svc", &other.sign(&claims)).await.0,
        StatusCode::OK
    );
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/jwt/config",
        Some(json!({ "jwt_validation_pubkeys": [rsa.pem, ed.pem], "jwt_supported_algs": "EdDSA" })),
    )
    .await;
    assert_eq!(
        login(&b, "jwt", "svc", &ed.sign(&claims)).await.0,
        StatusCode::OK
    );
    // Bad configs and roles are refused with reasons.
    for (what, body) in [
        ("no source", json!({})),
        (
            "two sources",
            json!({ "jwt_validation_pubkeys": [rsa.pem], "jwks_url": "https://x.example/jwks" }),
        ),
        (
            "not a key",
            json!({ "jwt_validation_pubkeys": ["not a key"] }),
        ),
        (
            "a bad CA",
            json!({ "jwks_url": "https://x.example/jwks", "jwks_ca_pem": "nope" }),
        ),
        ("not http", json!({ "jwks_url": "file:///etc/passwd" })),
        (
            "unreachable",
            json!({ "jwks_url": "http://127.0.0.1:1/jwks" }),
        ),
    ] {
        let (status, body) = b.call("POST", "auth/jwt/config", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    }
    for (what, body) in [
        ("no bound", json!({ "token_policies": ["default"] })),
        (
            "oidc roles",
            json!({ "role_type": "oidc", "bound_audiences": "x" }),
        ),
        (
            "bad claims type",
            json!({ "bound_audiences": "x", "bound_claims_type": "regex" }),
        ),
        (
            "bad bound claims",
            json!({ "bound_audiences": "x", "bound_claims": { "a": 1 } }),
        ),
        (
            "reserved mapping",
            json!({ "bound_audiences": "x", "claim_mappings": { "a": "role" } }),
        ),
        (
            "bad leeway",
            json!({ "bound_audiences": "x", "expiration_leeway": -5 }),
        ),
        (
            "root policy",
            json!({ "bound_audiences": "x", "token_policies": "root" }),
        ),
    ] {
        let (status, body) = b.call("POST", "auth/jwt/role/bad", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    }
    assert_eq!(
        b.call("GET", "auth/jwt/role/bad", None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_within_the_refresh_limit() {
    let old = TestKey::rsa("2024");
    let new = TestKey::ec("2025");
    let issuer = Issuer::start(jwks(&[&old])).await;
    let b = Broker::start_with(None, LENIENT).await;
    enable(
        &b,
        "jwt",
        "jwt",
        json!({ "oidc_discovery_url": issuer.base }),
    )
    .await;
    let configured = std::time::Instant::now();
    role(
        &b,
        "jwt",
        "app",
        json!({ "bound_subject": "app-1", "token_policies": "default" }),
    )
    .await;
    let t = now();
    let claims = json!({ "iss": issuer.base, "sub": "app-1", "iat": t, "exp": t + 300 });
    assert_eq!(
        login(&b, "jwt", "app", &old.sign(&claims)).await.0,
        StatusCode::OK
    );
    // The discovered issuer is bound.
    assert_refused(
        &login(
            &b,
            "jwt",
            "app",
            &old.sign(&with(&claims, json!({ "iss": "https://other" }))),
        )
        .await,
        "another issuer",
    );
    let fetched = issuer.fetches();
    assert_eq!(
        fetched, 1,
        "the config write fetched the keys; logins used the cache"
    );

    // The issuer rotates. Within the refresh limit, tokens naming unknown
    // key ids do not make the broker fetch again, however many.
    issuer.set(jwks(&[&new]));
    for i in 0..20 {
        let stranger = TestKey {
            kid: format!("made-up-{i}"),
            ..TestKey::ec("x")
        };
        assert_refused(
            &login(&b, "jwt", "app", &stranger.sign(&claims)).await,
            "unknown kid",
        );
    }
    assert_refused(
        &login(&b, "jwt", "app", &new.sign(&claims)).await,
        "too soon",
    );
    assert!(
        configured.elapsed() < Duration::from_secs(10),
        "the test ran too slowly to show the limit"
    );
    assert_eq!(issuer.fetches(), fetched);

    // Once the limit has passed, the new key's kid brings the new set.
    tokio::time::sleep(
        Duration::from_secs(10).saturating_sub(configured.elapsed()) + Duration::from_millis(500),
    )
    .await;
    let (status, body) = login(&b, "jwt", "app", &new.sign(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.fetches(), fetched + 1);
    // The old key is gone with its set.
    assert_refused(
        &login(&b, "jwt", "app", &old.sign(&claims)).await,
        "the retired key",
    );

    // The `oidc` type is the same method.
    enable(
        &b,
        "oidc",
        "oidc",
        json!({ "oidc_discovery_url": issuer.base }),
    )
    .await;
    role(
        &b,
        "oidc",
        "app",
        json!({ "bound_subject": "app-1", "token_policies": "default" }),
    )
    .await;
    let (status, body) = login(&b, "oidc", "app", &new.sign(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["metadata"]["role"], json!("app"));
    // A discovery document that names another issuer is refused.
    let (status, body) = b
        .call(
            "POST",
            "auth/oidc/config",
            Some(json!({ "oidc_discovery_url": format!("{}/elsewhere", issuer.base) })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn failures_lock_a_role_and_identity_only() {
    let key = TestKey::ed("k");
    let other = TestKey::ed("k");
    let issuer = Issuer::start(jwks(&[&key])).await;
    let b = Broker::start_with(
        None,
        "[auth.lockout]\nthreshold = 3\nduration = \"3s\"\ncounter_reset = \"1m\"\n",
    )
    .await;
    enable(
        &b,
        "jwt",
        "jwt",
        json!({ "jwks_url": format!("{}/jwks", issuer.base) }),
    )
    .await;
    role(
        &b,
        "jwt",
        "app",
        json!({ "bound_claims": { "sub": "app-*" }, "bound_claims_type": "glob", "token_policies": "default" }),
    )
    .await;
    let t = now();
    let claims = |sub: &str| json!({ "sub": sub, "iat": t, "exp": t + 300 });
    // Three forged tokens naming app-1.
    for _ in 0..3 {
        assert_refused(
            &login(&b, "jwt", "app", &other.sign(&claims("app-1"))).await,
            "forged",
        );
    }
    // app-1 is locked, even with a good token, and told nothing more.
    assert_refused(
        &login(&b, "jwt", "app", &key.sign(&claims("app-1"))).await,
        "locked",
    );
    // Another identity of the role is not.
    assert_eq!(
        login(&b, "jwt", "app", &key.sign(&claims("app-2"))).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, body) = login(&b, "jwt", "app", &key.sign(&claims("app-1"))).await;
    assert_eq!(status, StatusCode::OK, "the lock lifts: {body}");
}

#[tokio::test]
async fn gitlab_ci_and_kubernetes_tokens_log_in_with_the_recommended_roles() {
    let key = TestKey::rsa("cluster-and-ci");
    let issuer = Issuer::start(jwks(&[&key])).await;
    let b = Broker::start_with(None, LENIENT).await;

    // GitLab CI, as the README recommends (its issuer is gitlab.com).
    enable(
        &b,
        "gitlab",
        "jwt",
        json!({ "jwks_url": format!("{}/jwks", issuer.base), "bound_issuer": "https://gitlab.com" }),
    )
    .await;
    role(
        &b,
        "gitlab",
        "deploy",
        json!({
            "role_type": "jwt",
            "user_claim": "user_login",
            "bound_audiences": "https://broker.example.com",
            "bound_claims": {
                "project_path": "mygroup/myproject",
                "ref_type": "branch",
                "ref": "main",
                "ref_protected": "true",
            },
            "claim_mappings": {
                "project_path": "project_path", "namespace_path": "namespace_path",
                "pipeline_id": "pipeline_id", "ref": "ref",
            },
            "token_policies": "default",
            "token_ttl": "15m",
        }),
    )
    .await;
    let gitlab = fixture("gitlab_ci");
    let (status, body) = login(&b, "gitlab", "deploy", &key.sign(&gitlab)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let meta = &body["auth"]["metadata"];
    assert_eq!(meta["alias_name"], json!("sample-user"));
    assert_eq!(meta["project_path"], json!("mygroup/myproject"));
    assert_eq!(meta["namespace_path"], json!("mygroup"));
    assert_eq!(meta["pipeline_id"], json!("574"));
    for (what, changes) in [
        (
            "a tag pipeline",
            json!({ "ref_type": "tag", "ref": "v1.0.0" }),
        ),
        ("an unprotected branch", json!({ "ref_protected": "false" })),
        (
            "another project",
            json!({ "project_path": "mygroup/other" }),
        ),
        ("another audience", json!({ "aud": "https://gitlab.com" })),
    ] {
        assert_refused(
            &login(&b, "gitlab", "deploy", &key.sign(&with(&gitlab, changes))).await,
            what,
        );
    }

    // Kubernetes projected service-account tokens, as the README
    // recommends (its issuer is the cluster's).
    enable(
        &b,
        "kubernetes",
        "jwt",
        json!({
            "jwks_url": format!("{}/jwks", issuer.base),
            "bound_issuer": "https://kubernetes.default.svc.cluster.local",
        }),
    )
    .await;
    role(
        &b,
        "kubernetes",
        "runner",
        json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": "https://broker.example.com",
            "bound_subject": "system:serviceaccount:ci:runner",
            "claim_mappings": {
                "/kubernetes.io/namespace": "namespace",
                "/kubernetes.io/serviceaccount/name": "service_account",
                "/kubernetes.io/pod/name": "pod",
            },
            "token_policies": "default",
            "token_ttl": "1h",
        }),
    )
    .await;
    let k8s = fixture("kubernetes");
    let (status, body) = login(&b, "kubernetes", "runner", &key.sign(&k8s)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let meta = &body["auth"]["metadata"];
    assert_eq!(meta["alias_name"], json!("system:serviceaccount:ci:runner"));
    assert_eq!(meta["namespace"], json!("ci"));
    assert_eq!(meta["service_account"], json!("runner"));
    assert_eq!(meta["pod"], json!("runner-7d9f8b6c5-x2v4q"));
    assert_eq!(body["auth"]["lease_duration"], json!(3600));
    for (what, changes) in [
        (
            "another service account",
            json!({ "sub": "system:serviceaccount:ci:default" }),
        ),
        (
            "the API server's audience only",
            json!({ "aud": ["https://kubernetes.default.svc.cluster.local"] }),
        ),
        (
            "another cluster",
            json!({ "iss": "https://other-cluster.example" }),
        ),
    ] {
        assert_refused(
            &login(&b, "kubernetes", "runner", &key.sign(&with(&k8s, changes))).await,
            what,
        );
    }
    // Bound by namespace instead, through a JSON pointer.
    role(
        &b,
        "kubernetes",
        "ci-namespace",
        json!({
            "bound_audiences": "https://broker.example.com",
            "bound_claims": { "/kubernetes.io/namespace": ["ci", "ci-staging"] },
            "token_policies": "default",
        }),
    )
    .await;
    assert_eq!(
        login(&b, "kubernetes", "ci-namespace", &key.sign(&k8s))
            .await
            .0,
        StatusCode::OK
    );
    let mut elsewhere = k8s.clone();
    elsewhere["kubernetes.io"]["namespace"] = json!("prod");
    assert_refused(
        &login(&b, "kubernetes", "ci-namespace", &key.sign(&elsewhere)).await,
        "prod",
    );
}

/// vaultrs, unchanged, logs in with a JWT (its `oidc::login` posts to the
/// JWT login path) and the token it gets holds the role's policy only.
#[tokio::test]
async fn vaultrs_logs_in_with_a_jwt() {
    let key = TestKey::ec("k");
    let b = Broker::start().await;
    enable(
        &b,
        "jwt",
        "jwt",
        json!({ "jwt_validation_pubkeys": [key.pem] }),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/ci",
        Some(json!({ "policy": "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }" })),
    )
    .await;
    role(
        &b,
        "jwt",
        "ci",
        json!({ "bound_audiences": ["broker"], "user_claim": "sub",
            "token_policies": ["ci"], "token_ttl": "5m" }),
    )
    .await;
    let t = now();
    let jwt = key.sign(&json!({ "sub": "job-7", "aud": "broker", "iat": t, "exp": t + 60 }));
    let anonymous = b.vaultrs_as("");
    let auth = vaultrs::auth::oidc::login(&anonymous, "jwt", &jwt, Some("ci".into()))
        .await
        .unwrap();
    assert_eq!(auth.policies, vec!["ci".to_owned(), "default".to_owned()]);
    assert_eq!(auth.lease_duration, 300);
    let client = b.vaultrs_as(&auth.client_token);
    let me = vaultrs::token::lookup_self(&client).await.unwrap();
    assert_eq!(me.path, "auth/jwt/login");
    assert!(vaultrs::sys::mount::list(&client).await.is_err());
    // A token for another audience: refused through the client too.
    let other = key.sign(&json!({ "sub": "job-7", "aud": "elsewhere", "iat": t, "exp": t + 60 }));
    assert!(
        vaultrs::auth::oidc::login(&anonymous, "jwt", &other, Some("ci".into()))
            .await
            .is_err()
    );
}
