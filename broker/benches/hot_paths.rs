//! Criterion micro-benchmarks of the broker's hot paths: the barrier's seal
//! and open, a fresh plugin instance plus a call, and one audit entry.
//!
//! Run: `cargo bench -p broker --bench hot_paths` (figures in BENCHMARKS.md).

use std::sync::Arc;

use broker::audit::{
    AuditAuth, AuditPolicy, AuditRequest, AuditResponse, Auditor, DeviceConfig, DeviceOptions,
};
use broker::barrier::{Barrier, Keyring, SealedStorage};
use broker::plugin::{Catalog, PluginRuntime, RuntimeConfig};
use broker::storage::{SqliteBackend, Storage};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn barrier(c: &mut Criterion) {
    let barrier = Barrier::new(Keyring::generate().unwrap_or_else(|e| panic!("{e}")));
    // About what a lease's sealed data weighs.
    let plain = vec![0x5a_u8; 512];
    let key = "lease/database/creds/app/0123456789abcdef0123456789abcdef";
    let sealed = barrier.seal(key, &plain).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("barrier");
    group.bench_function("seal 512 B", |b| {
        b.iter(|| barrier.seal(std::hint::black_box(key), &plain))
    });
    group.bench_function("open 512 B", |b| {
        b.iter(|| barrier.open(std::hint::black_box(key), &sealed))
    });
    group.finish();
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn plugin_instance(c: &mut Criterion) {
    let rt = tokio_runtime();
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let catalog = rt
        .block_on(Catalog::builtin(&runtime))
        .unwrap_or_else(|e| panic!("{e}"));
    let plugin = catalog
        .get("postgres")
        .unwrap_or_else(|| panic!("no postgres plugin"));
    c.bench_function("plugin: fresh instance + describe", |b| {
        b.iter(|| rt.block_on(plugin.ping()).unwrap_or_else(|e| panic!("{e}")))
    });
}

fn audit_append(c: &mut Criterion) {
    let rt = tokio_runtime();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let storage: Storage = Arc::new(
        rt.block_on(SqliteBackend::open(&dir.path().join("broker.db")))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let keyring = Keyring::generate().unwrap_or_else(|e| panic!("{e}"));
    let store = SealedStorage::new(storage, Arc::new(Barrier::new(keyring)));
    let device = DeviceConfig {
        kind: "file".into(),
        description: String::new(),
        options: DeviceOptions {
            file_path: dir.path().join("audit.log").display().to_string(),
            log_raw: false,
            hmac_accessor: true,
            fsync: false,
        },
        from_config: true,
    };
    let auditor = rt
        .block_on(Auditor::open(
            store,
            AuditPolicy::default(),
            vec![("file".into(), device)],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = AuditAuth {
        client_token: zeroize::Zeroizing::new("brk.0123456789abcdef0123456789abcdef".into()),
        accessor: String::new(),
        display_name: "root".into(),
        policies: vec!["root".into()],
        token_ttl: 0,
    };
    let request = AuditRequest {
        id: "6a2f1c4e-0000-4000-8000-000000000000".into(),
        operation: "read",
        path: "database/creds/app".into(),
        mount_type: Some("database".into()),
        mount_accessor: Some("database_1234abcd".into()),
        remote: "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        data: serde_json::Map::new(),
    };
    let response = AuditResponse {
        status: 200,
        data: Some(
            json!({ "username": "v-root-app-Xk2mQ9aLp0Zr", "password": "Aa1-bench-password-0123" }),
        ),
        lease_id: Some("database/creds/app/0123456789abcdef0123456789abcdef".into()),
        lease_duration: 3600,
        error: None,
        credential: false,
    };
    let mut group = c.benchmark_group("audit");
    group.bench_function("request entry (file device, no fsync)", |b| {
        b.iter(|| rt.block_on(auditor.log_request(Some(&auth), &request)))
    });
    group.bench_function("response entry (file device, no fsync)", |b| {
        b.iter(|| rt.block_on(auditor.log_response(Some(&auth), &request, &response)))
    });
    group.finish();
}

criterion_group!(benches, barrier, plugin_instance, audit_append);
criterion_main!(benches);
