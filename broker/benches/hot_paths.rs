//! Criterion micro-benchmarks of the broker's hot paths: the barrier's seal
//! and open, a fresh plugin instance plus a call, policy evaluation, and
//! one audit entry.
//!
//! Run: `cargo bench -p broker --bench hot_paths` (figures in BENCHMARKS.md).

use std::sync::Arc;

use broker::audit::{
    AuditAuth, AuditPolicy, AuditRequest, AuditResponse, Auditor, DeviceConfig, DeviceOptions,
};
use broker::barrier::{Barrier, Keyring, SealedStorage};
use broker::plugin::{Catalog, PluginRuntime, RuntimeConfig};
use broker::policy::{Acl, Capability, DEFAULT_POLICY, Policy};
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
            None,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = AuditAuth {
        client_token: zeroize::Zeroizing::new("brk.0123456789abcdef0123456789abcdef".into()),
        accessor: String::new(),
        display_name: "root".into(),
        policies: vec!["root".into()],
        token_ttl: 0,
        token_type: "service",
    };
    let request = AuditRequest {
        id: "6a2f1c4e-0000-4000-8000-000000000000".into(),
        operation: "read",
        path: "database/creds/app".into(),
        mount_type: Some("database".into()),
        mount_accessor: Some("database_1234abcd".into()),
        remote: "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        data: serde_json::Map::new(),
        clear_fields: vec!["lease_id"].into(),
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
        ..AuditResponse::default()
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

/// An application's policy as operators write them: its database role, its
/// certificates, its own KV tree, and a `+` rule across environments.
const APP_POLICY: &str = r#"
path "database/creds/app" { capabilities = ["read"] }
path "pki/issue/app" { capabilities = ["update"] }
path "secret/data/app/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/app/*" { capabilities = ["list", "read"] }
path "secret/data/+/shared/*" { capabilities = ["read"] }
path "secret/data/app/admin/*" { capabilities = ["deny"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

fn parse(name: &str, text: &str) -> Policy {
    Policy::parse(name, text).unwrap_or_else(|e| panic!("{e}"))
}

/// A policy set with `apps` applications' rules in it: an exact, a glob and
/// a `+` rule each.
fn many_apps(apps: usize) -> Policy {
    let mut text = String::new();
    for i in 0..apps {
        text.push_str(&format!(
            "path \"database/creds/app-{i}\" {{ capabilities = [\"read\"] }}\n\
             path \"secret/data/app-{i}/*\" {{ capabilities = [\"read\"] }}\n\
             path \"secret/metadata/+/app-{i}\" {{ capabilities = [\"list\"] }}\n"
        ));
    }
    parse("many", &text)
}

fn policy_evaluation(c: &mut Criterion) {
    let default = parse("default", DEFAULT_POLICY);
    let app = parse("app", APP_POLICY);
    let acl = Acl::new([&default, &app]);
    let many = many_apps(1000);
    let large = Acl::new([&default, &many]);
    let mut group = c.benchmark_group("policy");
    let cases = [
        ("exact", "database/creds/app", Capability::Read),
        ("glob", "secret/data/app/config/db", Capability::Read),
        ("plus", "secret/data/web/shared/tls", Capability::Read),
        ("denied", "secret/data/app/admin/root", Capability::Read),
        ("no match", "database/creds/admin", Capability::Read),
    ];
    for (case, path, capability) in cases {
        group.bench_function(format!("allows: {case} (2 policies, 15 rules)"), |b| {
            b.iter(|| acl.allows(std::hint::black_box(path), capability))
        });
    }
    let cases = [
        ("exact", "database/creds/app-500", Capability::Read),
        ("glob", "secret/data/app-500/config", Capability::Read),
        ("plus", "secret/metadata/prod/app-500", Capability::List),
        ("no match", "secret/metadata/prod/other", Capability::List),
    ];
    for (case, path, capability) in cases {
        group.bench_function(format!("allows: {case} (3007 rules)"), |b| {
            b.iter(|| large.allows(std::hint::black_box(path), capability))
        });
    }
    group.bench_function("parse + build ACL (2 policies, 15 rules)", |b| {
        b.iter(|| {
            let default = parse("default", DEFAULT_POLICY);
            let app = parse("app", std::hint::black_box(APP_POLICY));
            Acl::new([&default, &app])
        })
    });
    group.bench_function("build ACL (2 policies, 15 rules)", |b| {
        b.iter(|| Acl::new([&default, &app]))
    });
    group.finish();
}

criterion_group!(
    benches,
    barrier,
    plugin_instance,
    policy_evaluation,
    audit_append
);
criterion_main!(benches);
