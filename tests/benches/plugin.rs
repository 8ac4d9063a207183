//! The plugin sandbox's costs, printed as figures for BENCHMARKS.md:
//!
//! 1. the fixed cost of a fresh instance plus a trivial export call
//!    (`describe`), p50/p99/p99.9 in µs;
//! 2. issue+revoke throughput through the PostgreSQL plugin against a real
//!    PostgreSQL, beside the very same statements sent straight through
//!    tokio-postgres in the same run, and their ratio.
//!
//! Run: `cargo bench -p broker-tests --bench plugin`. PostgreSQL comes from
//! `BROKER_TEST_POSTGRES_URL` or a throwaway cluster, as in the tests.
//! `BENCH_INSTANCES`, `BENCH_PAIRS` and `BENCH_CLIENTS` change the counts;
//! `BENCH_PLUGIN_FILE` (a component's `.wasm`) takes the fresh-instance
//! figure on that plugin instead of the built-in PostgreSQL one.

use std::sync::Arc;
use std::time::Instant;

use broker::plugin::{CallContext, Limits};
use broker_tests::bench::{env_or, percentile};
use broker_tests::{builtin, connection, pg_connect, pg_target, postgres, request, runtime};
use serde_json::json;

const CREATE: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

/// The statements the plugin runs for one issue and its default revoke,
/// sent directly: the baseline the plugin path is compared with.
async fn direct_issue_revoke(
    client: &mut tokio_postgres::Client,
    n: u64,
) -> Result<(), tokio_postgres::Error> {
    let name = format!("v-direct-bench-{n}-{}", std::process::id());
    let password = "Aa1bench0direct0password0";
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '{password}' VALID UNTIL '2100-01-01 00:00:00+00';"
    ))
    .await?;
    tx.commit().await?;
    let exists = client
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await?;
    assert_eq!(exists.len(), 1);
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("ALTER ROLE \"{name}\" NOLOGIN"))
        .await?;
    tx.commit().await?;
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await?;
    let tx = client.transaction().await?;
    for s in [
        format!("REASSIGN OWNED BY \"{name}\" TO CURRENT_USER"),
        format!("DROP OWNED BY \"{name}\""),
        format!("DROP ROLE IF EXISTS \"{name}\""),
    ] {
        tx.batch_execute(&s).await?;
    }
    tx.commit().await
}

#[tokio::main]
async fn main() {
    let instances = env_or("BENCH_INSTANCES", 5000);
    let pairs = env_or("BENCH_PAIRS", 400);
    let clients = env_or("BENCH_CLIENTS", 4);
    let rt = runtime(Limits::default());
    let plugin = builtin(&rt, "postgres").await;
    // Another component for the instance figure, e.g. a wasip2 build.
    let instanced = match std::env::var_os("BENCH_PLUGIN_FILE") {
        Some(path) => {
            let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            rt.load(&wasm)
                .await
                .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        }
        None => plugin.clone(),
    };

    // 1. Fresh instance + trivial call.
    for _ in 0..200 {
        instanced.ping().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let mut times = Vec::with_capacity(instances);
    for _ in 0..instances {
        let start = Instant::now();
        instanced.ping().await.unwrap_or_else(|e| panic!("{e}"));
        times.push(start.elapsed());
    }
    times.sort();
    println!("fresh instance + describe call ({instances} calls, one at a time):");
    println!(
        "  p50 {:.1} µs   p99 {:.1} µs   p99.9 {:.1} µs",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 0.999)
    );

    // 2. Issue + revoke through the plugin vs the same statements directly.
    let s = postgres();
    let target = pg_target(s, &s.user, &s.password)
        .as_ref()
        .clone()
        .with_max_open_connections(clients);
    let ctx = CallContext::new().with_sql("bench/postgres", Arc::new(target));
    let role = json!({ "creation_statements": CREATE });
    let conn = connection(json!({}));

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (plugin, ctx, role, conn) = (plugin.clone(), ctx.clone(), role.clone(), conn.clone());
        let count = pairs / clients + usize::from(c < pairs % clients);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                let cred = plugin
                    .issue(&ctx, &conn, &request("bench", role.clone(), "bench"))
                    .await?;
                plugin.revoke(&ctx, &conn, &cred.revocation).await?;
            }
            Ok::<_, broker::plugin::PluginError>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let plugin_rate = pairs as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let count = pairs / clients + usize::from(c < pairs % clients);
        tasks.push(tokio::spawn(async move {
            let mut client = pg_connect(s, &s.user, &s.password).await?;
            for i in 0..count {
                direct_issue_revoke(&mut client, (c * 1_000_000 + i) as u64).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let direct_rate = pairs as f64 / started.elapsed().as_secs_f64();

    println!("PostgreSQL issue+revoke ({pairs} pairs, {clients} concurrent clients):");
    println!("  through the plugin:          {plugin_rate:.0} pairs/s");
    println!("  same statements, direct:     {direct_rate:.0} pairs/s");
    println!(
        "  ratio plugin/direct:         {:.2}",
        plugin_rate / direct_rate
    );
}
