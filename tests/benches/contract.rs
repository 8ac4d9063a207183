//! Contract versions and the Redis plugin, printed as figures for
//! BENCHMARKS.md, in one run:
//!
//! 1. fresh instance + `describe` for a v0.1.0 component (the fixture built
//!    before v0.2.0) and the v0.2.0 built-in PostgreSQL plugin, in
//!    alternating rounds so both see the same machine: the adapter between
//!    a version's bindings and the host must cost nothing measurable;
//! 2. Redis issue+revoke pairs/s through the Redis plugin (ACL SETUSER /
//!    ACL DELUSER via the host's `redis` capability), beside the same two
//!    commands sent straight through the `redis` crate the host uses.
//!
//! Run: `cargo bench -p broker-tests --bench contract`. Redis comes from
//! `BROKER_TEST_REDIS_ADDR` (default 127.0.0.1:6379). `BENCH_INSTANCES`,
//! `BENCH_ROUNDS`, `BENCH_PAIRS` and `BENCH_CLIENTS` change the counts.

use std::time::{Duration, Instant};

use broker::plugin::{CallContext, Limits, Plugin};
use broker_tests::bench::{drive, env_or, percentile};
use broker_tests::{builtin, connection, redis_addr, redis_target, request, runtime};
use serde_json::json;

const V0_1_0_POSTGRES: &[u8] = include_bytes!("../fixtures/v0.1.0/postgres-plugin-v0.1.0.wasm");

async fn pings(plugin: &Plugin, n: usize, into: &mut Vec<Duration>) {
    for _ in 0..n {
        let start = Instant::now();
        plugin.ping().await.unwrap_or_else(|e| panic!("{e}"));
        into.push(start.elapsed());
    }
}

fn line(name: &str, times: &mut [Duration]) -> f64 {
    times.sort();
    let mean = times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len() as f64 * 1e6;
    println!(
        "  {name:<32} p50 {:>6.1} µs   p99 {:>6.1} µs   mean {mean:>6.1} µs",
        percentile(times, 0.50),
        percentile(times, 0.99),
    );
    percentile(times, 0.50)
}

#[tokio::main]
async fn main() {
    let instances = env_or("BENCH_INSTANCES", 2000);
    let rounds = env_or("BENCH_ROUNDS", 10);
    let pairs = env_or("BENCH_PAIRS", 2000);
    let clients = env_or("BENCH_CLIENTS", 4);
    let rt = runtime(Limits::default());

    // 1. The same plugin's code under both contracts.
    let old = rt
        .load(V0_1_0_POSTGRES)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let new = builtin(&rt, "postgres").await;
    assert_eq!(old.info().api_version, "0.1.0");
    assert_eq!(new.info().api_version, "0.2.0");
    let (mut t_old, mut t_new) = (Vec::new(), Vec::new());
    pings(&old, 200, &mut Vec::new()).await;
    pings(&new, 200, &mut Vec::new()).await;
    let per_round = (instances / rounds).max(1);
    for _ in 0..rounds {
        pings(&old, per_round, &mut t_old).await;
        pings(&new, per_round, &mut t_new).await;
    }
    println!(
        "fresh instance + describe call ({} calls each, alternating in {rounds} rounds):",
        per_round * rounds
    );
    let a = line("postgres, contract v0.1.0", &mut t_old);
    let b = line("postgres, contract v0.2.0", &mut t_new);
    println!("  ratio v0.2.0/v0.1.0 (p50):        {:.3}", b / a);

    // 2. Redis pairs/s: the plugin, then the raw commands.
    let ctx = CallContext::new().with_redis("bench/redis", redis_target(None, None));
    let redis = builtin(&rt, "redis").await;
    let role = json!({ "creation_statements": ["~bench:*", "+get"] });
    let conn = connection(json!({}));
    for _ in 0..50 {
        let c = redis
            .issue(&ctx, &conn, &request("bench", role.clone(), "bench"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        redis
            .revoke(&ctx, &conn, &c.revocation)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let plugin_rate = drive(clients, pairs, move |_, _| {
        let (redis, ctx, role, conn) = (redis.clone(), ctx.clone(), role.clone(), conn.clone());
        async move {
            let cred = redis
                .issue(&ctx, &conn, &request("bench", role, "bench"))
                .await
                .map_err(|e| e.to_string())?;
            redis
                .revoke(&ctx, &conn, &cred.revocation)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
    .rate;

    // One connection per client, as each client of the plugin path shares
    // the host's.
    let (host, port) = redis_addr();
    let client =
        redis::Client::open(format!("redis://{host}:{port}/")).unwrap_or_else(|e| panic!("{e}"));
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(
            client
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let conns = std::sync::Arc::new(conns);
    let direct_rate = drive(clients, pairs, move |c, i| {
        let mut conn = conns[c].clone();
        async move {
            let name = format!("v_direct_bench_{c}_{i}_{}", std::process::id());
            // The plugin's commands: is the name free, make, delete.
            let mut run = async |args: &[&str]| {
                redis::cmd("ACL")
                    .arg(args)
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            run(&["GETUSER", &name]).await?;
            run(&[
                "SETUSER",
                &name,
                "reset",
                "on",
                ">Aa1bench0direct0password0",
                "~bench:*",
                "+get",
            ])
            .await?;
            run(&["DELUSER", &name]).await
        }
    })
    .await
    .rate;
    println!("Redis issue+revoke ({pairs} pairs, {clients} concurrent clients):");
    println!("  through the plugin:               {plugin_rate:.0} pairs/s");
    println!("  ACL GETUSER/SETUSER/DELUSER direct: {direct_rate:.0} pairs/s");
    println!(
        "  ratio plugin/direct:              {:.2}",
        plugin_rate / direct_rate
    );
}
