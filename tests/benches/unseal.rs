//! How long unsealing takes with each seal, in one run: the seal's own
//! part (unwrapping the root key, then opening the keyring with it) and
//! the whole unseal of a broker to a serving core (`Unsealer`: shares
//! combined for `shamir`, the auto-unseal for the others, then the core
//! opened over SQLite storage). `pkcs11` runs against a SoftHSM2 token the
//! bench makes, `awskms` against moto's KMS API server on loopback.
//!
//! Run: `BROKER_TEST_KMS_PYTHON=$PWD/tests/kms/.venv/bin/python cargo
//! bench -p broker-tests --bench unseal` (needs Debian's `softhsm2` and
//! the moto venv `.ci/run` makes). `BENCH_UNSEALS` changes the count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::core::CoreOptions;
use broker::plugin::{Catalog, Limits};
use broker::seal::{AwsKmsSeal, LocalSeal, Pkcs11Seal, Seal, SealKind};
use broker::storage::Storage;
use broker::unseal::{InitRequest, SealSetup, Unsealer};
use broker_tests::bench::{env_or, sqlite};
use broker_tests::kms::LocalKms;
use broker_tests::softhsm;

/// The median and the slowest of `times`, in milliseconds.
fn summary(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(times[times.len() / 2]), ms(times[times.len() - 1]))
}

/// Initializes fresh storage for `kind` (wrapping with `seal` when it
/// auto-unseals); the unseal shares for `shamir`.
async fn initialized(
    kind: SealKind,
    seal: Option<&dyn Seal>,
    dir: &std::path::Path,
) -> (Storage, Vec<String>) {
    let storage = sqlite(dir).await;
    let request = if kind == SealKind::Shamir {
        InitRequest {
            secret_shares: Some(5),
            secret_threshold: Some(3),
            ..Default::default()
        }
    } else {
        InitRequest {
            recovery_shares: Some(5),
            recovery_threshold: Some(3),
            ..Default::default()
        }
    };
    let init = broker::unseal::initialize(&storage, kind, seal, &request)
        .await
        .unwrap_or_else(|e| panic!("init {kind}: {e}"));
    let shares = init.keys.iter().map(|k| k.to_string()).collect();
    (storage, shares)
}

/// Times `unseals` unseals of one broker with `seal` (`None`: `shamir`,
/// unsealed with three of its shares), sealing it again after each; then
/// the seal's part alone. Prints one line.
async fn measure(
    kind: SealKind,
    seal: Option<Arc<dyn Seal>>,
    catalog: &Arc<Catalog>,
    unseals: usize,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (storage, shares) = initialized(kind, seal.as_deref(), dir.path()).await;
    let setup = SealSetup {
        kind,
        seal: seal.clone(),
        error: None,
        previous: None,
        reopen: None,
    };
    let unsealer = Unsealer::new(
        storage.clone(),
        setup,
        catalog.clone(),
        CoreOptions::default(),
        None,
    );
    let mut whole = Vec::with_capacity(unseals);
    for _ in 0..unseals {
        let started = Instant::now();
        if kind == SealKind::Shamir {
            for share in &shares[..3] {
                unsealer
                    .unseal(Some(share), false, false)
                    .await
                    .unwrap_or_else(|e| panic!("unseal {kind}: {e}"));
            }
        } else {
            let open = unsealer
                .auto_unseal()
                .await
                .unwrap_or_else(|e| panic!("unseal {kind}: {e}"));
            assert!(open, "{kind} did not unseal");
        }
        assert!(unsealer.core().is_some(), "{kind} did not unseal");
        whole.push(started.elapsed());
        unsealer.seal().await;
    }

    // The seal's part: the root key unwrapped, the keyring opened. For
    // shamir, combining the shares is that part.
    let mut part = Vec::with_capacity(unseals);
    for _ in 0..unseals {
        let started = Instant::now();
        match &seal {
            Some(seal) => {
                broker::core::keys::unseal(&storage, seal.as_ref())
                    .await
                    .unwrap_or_else(|e| panic!("{kind}: {e}"));
            }
            None => {
                let parsed: Vec<_> = shares[..3]
                    .iter()
                    .map(|s| broker::seal::shamir::parse_share(s).unwrap_or_else(|e| panic!("{e}")))
                    .collect();
                let key =
                    broker::seal::shamir::combine(&parsed, 3).unwrap_or_else(|e| panic!("{e}"));
                let shamir = broker::seal::ShamirSeal::new(key);
                broker::core::keys::unseal(&storage, &shamir)
                    .await
                    .unwrap_or_else(|e| panic!("{kind}: {e}"));
            }
        }
        part.push(started.elapsed());
    }
    let (whole_median, whole_max) = summary(whole);
    let (part_median, part_max) = summary(part);
    println!(
        "| {} | {part_median:.3} ms (max {part_max:.3}) | {whole_median:.3} ms (max {whole_max:.3}) |",
        kind.as_str()
    );
}

#[tokio::main]
async fn main() {
    // SoftHSM reads where its tokens are once per process: this runs the
    // bench again in a process whose environment names a fresh token.
    let token = softhsm::this_process_token();
    let unseals = env_or("BENCH_UNSEALS", 20);
    let catalog = Arc::new(
        Catalog::builtin(&broker_tests::runtime(Limits::default()))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    println!("unseal, median of {unseals} (an empty broker over SQLite):");
    println!("| seal | root key unwrapped + keyring opened | whole unseal to a serving core |");
    println!("| --- | --- | --- |");

    measure(SealKind::Shamir, None, &catalog, unseals).await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let local: Arc<dyn Seal> =
        Arc::new(LocalSeal::create(&dir.path().join("kms.key")).unwrap_or_else(|e| panic!("{e}")));
    measure(SealKind::Local, Some(local), &catalog, unseals).await;

    let pkcs11: Arc<dyn Seal> = Arc::new(
        Pkcs11Seal::connect(&token.seal_settings("bench-root-wrap"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    measure(SealKind::Pkcs11, Some(pkcs11), &catalog, unseals).await;

    let kms = LocalKms::start();
    let awskms: Arc<dyn Seal> =
        Arc::new(AwsKmsSeal::new(&kms.seal_config(&kms.key_id)).unwrap_or_else(|e| panic!("{e}")));
    measure(SealKind::Awskms, Some(awskms), &catalog, unseals).await;
}
