//! Certificates per second (ECDSA P-256) through the HTTP API, beside the
//! raw rate of the same work — key generation plus signing — straight
//! through rcgen and ring in the same run, and their ratio; then the same
//! issuance with the CA key in a SoftHSM2 token (`root/generate/kms`)
//! against the CA key in memory, in the same run, and the token's bare
//! signing rate.
//!
//! Run: `cargo bench -p broker-tests --bench pki` (needs Debian's
//! `softhsm2`; the bench makes its own token). `BENCH_CERTS` and
//! `BENCH_CLIENTS` change the counts.

use std::time::Instant;

use broker::core::CoreOptions;
use broker_tests::bench::{InProcess, env_or};
use broker_tests::softhsm;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;

/// What one issuance does, without the broker: a P-256 key pair, a leaf
/// certificate with two SANs, signed by a P-256 CA.
fn raw_certificate(issuer: &Issuer<'_, KeyPair>) {
    let key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap_or_else(|e| panic!("{e}"));
    let params = CertificateParams::new(vec![
        "bench.example.com".to_owned(),
        "www.bench.example.com".to_owned(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let cert = params
        .signed_by(&key, issuer)
        .unwrap_or_else(|e| panic!("{e}"));
    std::hint::black_box((cert.pem(), key.serialize_pem()));
}

/// Issues `certs` certificates from `mount`'s `role` with `clients`
/// concurrent clients; certificates per second.
async fn issue_rate(
    broker: &InProcess,
    http: &reqwest::Client,
    mount: &str,
    role: &str,
    certs: usize,
    clients: usize,
) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token) = (http.clone(), broker.base.clone(), broker.token.clone());
        let url = format!("{base}/{mount}/issue/{role}");
        let count = certs / clients + usize::from(c < certs % clients);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                http.post(&url)
                    .header("X-Vault-Token", &token)
                    .json(&json!({ "common_name": "bench.example.com",
                        "alt_names": "www.bench.example.com", "ttl": "1h" }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok::<_, reqwest::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    certs as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    // SoftHSM reads where its tokens are once per process: this runs the
    // bench again in a process whose environment names a fresh token.
    let token = softhsm::this_process_token();
    let certs = env_or("BENCH_CERTS", 2000);
    let clients = env_or("BENCH_CLIENTS", 4);

    let hsm = broker::hsm::Hsm::connect_async(token.settings())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let broker = InProcess::start(CoreOptions {
        hsm: Some(std::sync::Arc::new(broker::hsm::HsmConnection::ready(
            hsm.clone(),
        ))),
        ..CoreOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    broker
        .post(&http, "sys/mounts/pki", json!({ "type": "pki" }))
        .await;
    broker
        .post(
            &http,
            "pki/root/generate/internal",
            json!({ "common_name": "Bench Root", "key_type": "ec" }),
        )
        .await;
    let mut api_rates = Vec::new();
    for (role, no_store) in [("web", false), ("nostore", true)] {
        broker
            .post(
                &http,
                &format!("pki/roles/{role}"),
                json!({ "allowed_domains": "example.com", "allow_subdomains": true,
                    "key_type": "ec", "no_store": no_store }),
            )
            .await;
        api_rates.push(issue_rate(&broker, &http, "pki", role, certs, clients).await);
    }

    // The same work on as many threads, straight through the library.
    let ca_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap_or_else(|e| panic!("{e}"));
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = std::sync::Arc::new(Issuer::new(ca_params, ca_key));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let issuer = issuer.clone();
            let count = certs / clients + usize::from(c < certs % clients);
            std::thread::spawn(move || {
                for _ in 0..count {
                    raw_certificate(&issuer);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap_or_else(|_| panic!("a raw thread panicked"));
    }
    let raw_rate = certs as f64 / started.elapsed().as_secs_f64();

    // The CA key in the token against the CA key in memory: two mounts,
    // the same role and requests, one after the other in this run.
    broker
        .post(&http, "sys/mounts/pki_hsm", json!({ "type": "pki" }))
        .await;
    broker
        .post(
            &http,
            "pki_hsm/root/generate/kms",
            json!({ "common_name": "Bench HSM Root", "key_type": "ec",
                "managed_key_name": "bench-root" }),
        )
        .await;
    broker
        .post(
            &http,
            "pki_hsm/roles/web",
            json!({ "allowed_domains": "example.com", "allow_subdomains": true,
                "key_type": "ec" }),
        )
        .await;
    let memory_rate = issue_rate(&broker, &http, "pki", "web", certs, clients).await;
    let hsm_rate = issue_rate(&broker, &http, "pki_hsm", "web", certs, clients).await;

    // The token's own rate: P-256 signatures through the broker's HSM key.
    let key = broker::pki::managed::ManagedKey::generate(
        hsm.clone(),
        "bench-raw",
        broker::plugin::KeyType::EcP256,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let key = std::sync::Arc::new(key);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let key = key.clone();
            let count = certs / clients + usize::from(c < certs % clients);
            std::thread::spawn(move || {
                for i in 0..count {
                    key.sign_message(format!("tbs {i}").as_bytes())
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join()
            .unwrap_or_else(|_| panic!("a signing thread panicked"));
    }
    let sign_rate = certs as f64 / started.elapsed().as_secs_f64();

    println!("ECDSA P-256 certificates ({certs}, {clients} concurrent clients):");
    println!(
        "  through the HTTP API, stored (the default):    {:.0} certs/s",
        api_rates[0]
    );
    println!(
        "  through the HTTP API, no_store role:           {:.0} certs/s",
        api_rates[1]
    );
    println!("  key generation + signing, rcgen/ring directly: {raw_rate:.0} certs/s");
    println!(
        "  ratio API/raw:                                 {:.3} stored, {:.3} no_store",
        api_rates[0] / raw_rate,
        api_rates[1] / raw_rate
    );
    println!("CA key in SoftHSM2 against in memory (stored role, same run):");
    println!("  CA key in memory (root/generate/internal):     {memory_rate:.0} certs/s");
    println!("  CA key in SoftHSM2 (root/generate/kms):        {hsm_rate:.0} certs/s");
    println!(
        "  ratio HSM/memory:                              {:.3}",
        hsm_rate / memory_rate
    );
    println!("  SoftHSM2 P-256 signatures alone (checked):     {sign_rate:.0} signatures/s");
}
