//! Hostile plugins are stopped with a clear error within their deadline,
//! and the broker keeps serving other calls meanwhile.

use std::time::{Duration, Instant};

use broker::plugin::{CallContext, FailureKind, Limits, Plugin, PluginError, PluginRuntime};
use broker_tests::{HOSTILE_WASM, connection, request, runtime};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        deadline: DEADLINE,
        ..Limits::default()
    }
}

async fn hostile(rt: &PluginRuntime) -> Plugin {
    rt.load(HOSTILE_WASM)
        .await
        .unwrap_or_else(|e| panic!("cannot load the hostile plugin: {e}"))
}

async fn behave(
    plugin: &Plugin,
    what: &str,
) -> (Result<broker::plugin::Credential, PluginError>, Duration) {
    let start = Instant::now();
    let result = plugin
        .issue(
            &CallContext::new(),
            &connection(json!({})),
            &request("r", json!({ "behave": what }), "t"),
        )
        .await;
    (result, start.elapsed())
}

/// Generous bound: the deadline plus scheduling slack on a loaded 2-core machine.
fn within_deadline(elapsed: Duration) -> bool {
    elapsed < DEADLINE * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_is_stopped_at_its_deadline() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let (result, elapsed) = behave(&p, "loop").await;
    assert!(
        matches!(result, Err(PluginError::Deadline(d)) if d == DEADLINE),
        "{result:?}"
    );
    assert!(
        elapsed >= DEADLINE && within_deadline(elapsed),
        "stopped after {elapsed:?}"
    );
    // The runtime still serves the same plugin afterwards.
    assert!(behave(&p, "ok").await.0.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let (result, elapsed) = behave(&p, "alloc").await;
    assert!(
        matches!(result, Err(PluginError::MemoryLimit(n)) if n == 64 << 20),
        "{result:?}"
    );
    assert!(within_deadline(elapsed));
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("memory limit"), "{message}");
    assert!(behave(&p, "ok").await.0.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_as_a_trap() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let (result, _) = behave(&p, "panic").await;
    match result {
        Err(PluginError::Trap(m)) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(behave(&p, "ok").await.0.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_output_is_refused() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let (result, elapsed) = behave(&p, "big-output").await;
    match result {
        Err(PluginError::OutputTooLarge { size, limit }) => {
            assert!(size > 10 * 1024 * 1024, "{size}");
            assert_eq!(limit, 1 << 20);
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
    assert!(within_deadline(elapsed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_filesystem_no_network_no_environment() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;

    let (file, _) = behave(&p, "open-file").await;
    match file {
        Err(PluginError::Failed {
            kind: FailureKind::InvalidRequest,
            message,
        }) => {
            assert!(message.starts_with("open failed"), "{message}");
            assert!(
                !message.contains("root:"),
                "file contents leaked: {message}"
            );
        }
        other => panic!("opening /etc/passwd must fail inside the sandbox, got {other:?}"),
    }

    let (socket, _) = behave(&p, "connect").await;
    match socket {
        Err(PluginError::Failed {
            kind: FailureKind::InvalidRequest,
            message,
        }) => {
            assert!(message.starts_with("connect failed"), "{message}")
        }
        other => panic!("a TCP connection must fail inside the sandbox, got {other:?}"),
    }

    assert!(std::env::vars().count() > 0);
    let (env, _) = behave(&p, "env").await;
    let env = env.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        env.data["env"],
        json!([]),
        "the guest saw host environment variables"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_refused_without_a_configured_connection() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let (result, _) = behave(&p, "sql-other").await;
    match result {
        Err(PluginError::Failed {
            kind: FailureKind::InvalidConfig,
            message,
        }) => {
            assert!(message.contains("no database connection"), "{message}")
        }
        other => panic!("expected a denied sql.open, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_declaring_postgres_cannot_open_a_mysql_mount() {
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let s = broker_tests::mysql();
    let ctx = CallContext::new().with_sql(
        "hostile/mysql",
        broker_tests::mysql_target(s, &s.user, &s.password),
    );
    let result = p
        .issue(
            &ctx,
            &connection(json!({})),
            &request("r", json!({ "behave": "sql-other" }), "t"),
        )
        .await;
    match result {
        Err(PluginError::Failed {
            kind: FailureKind::InvalidConfig,
            message,
        }) => {
            assert!(message.contains("dialect"), "{message}")
        }
        other => panic!("expected a denied sql.open, got {other:?}"),
    }
}

/// On a single-threaded runtime, a guest spinning in a loop must still
/// yield: other plugins' calls complete while it runs.
#[tokio::test(flavor = "current_thread")]
async fn other_calls_are_served_while_a_plugin_loops() {
    let rt = runtime(Limits {
        deadline: Duration::from_secs(3),
        ..Limits::default()
    });
    let looping = hostile(&rt).await;
    let other = hostile(&rt).await;
    let spin = tokio::spawn(async move { behave(&looping, "loop").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut served = 0;
    for _ in 0..20 {
        let (r, _) = behave(&other, "ok").await;
        assert!(r.is_ok(), "{r:?}");
        served += 1;
    }
    assert!(
        !spin.is_finished(),
        "the looping call ended before the others were served"
    );
    assert_eq!(served, 20);
    let (result, _) = spin.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(result, Err(PluginError::Deadline(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn garbage_is_not_loaded() {
    let rt = runtime(limits());
    match rt.load(b"\0asm not really").await {
        Err(PluginError::Load(m)) => assert!(m.contains("not a valid component"), "{m}"),
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[tokio::test]
async fn builtins_describe_themselves_with_vault_aliases() {
    let rt = runtime(limits());
    let pg = broker_tests::builtin(&rt, "postgresql-database-plugin").await;
    assert_eq!(pg.info().name, "postgres");
    assert_eq!(pg.info().api_version, "0.2.0");
    assert_eq!(
        pg.info().capabilities,
        vec![broker::plugin::HostCapability::SqlPostgres]
    );
    serde_json::from_str::<serde_json::Value>(&pg.info().role_schema)
        .unwrap_or_else(|e| panic!("{e}"));
    for alias in [
        "mysql-database-plugin",
        "mysql-aurora-database-plugin",
        "mysql-rds-database-plugin",
        "mysql-legacy-database-plugin",
    ] {
        assert_eq!(broker_tests::builtin(&rt, alias).await.info().name, "mysql");
    }
    for (alias, name) in [
        ("redis-database-plugin", "redis"),
        ("rabbitmq-database-plugin", "rabbitmq"),
    ] {
        assert_eq!(broker_tests::builtin(&rt, alias).await.info().name, name);
    }
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = || broker::plugin::RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        limits: limits(),
    };
    let cached = || {
        std::fs::read_dir(dir.path().join("cache"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                    .collect()
            })
            .unwrap_or_else(|_| Vec::<std::path::PathBuf>::new())
    };
    let rt = PluginRuntime::new(config()).unwrap();
    let first = hostile(&rt).await;
    let files = cached();
    assert_eq!(files.len(), 1, "one artifact per component: {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&first.info().sha256),
        "keyed by the component's SHA-256: {name}"
    );

    // A second runtime loads the artifact instead of compiling again.
    let rt = PluginRuntime::new(config()).unwrap();
    assert!(behave(&hostile(&rt).await, "ok").await.0.is_ok());
    assert_eq!(cached().len(), 1);

    // A damaged artifact is discarded and rebuilt, not trusted.
    std::fs::write(&files[0], b"garbage").unwrap();
    let rt = PluginRuntime::new(config()).unwrap();
    assert!(behave(&hostile(&rt).await, "ok").await.0.is_ok());
    assert!(
        std::fs::read(&files[0]).unwrap().len() > 1000,
        "the artifact was rewritten"
    );
}

/// A `tracing` writer into a buffer the test reads.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_secret_a_plugin_logs_is_masked() {
    use tracing_subscriber::util::SubscriberInitExt;

    let captured = Captured::default();
    let writer = captured.clone();
    let _logging = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .finish()
        .set_default();
    // Callsite interest is cached process-wide: make this thread's
    // subscriber count even if another test's logged first.
    tracing::callsite::rebuild_interest_cache();
    let rt = runtime(limits());
    let p = hostile(&rt).await;
    let credential = behave(&p, "log-secret").await.0.unwrap();
    let password = credential.data["password"].as_str().unwrap();
    assert!(password.len() >= 20, "{credential:?}");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains(r#"CREATE USER "v-hostile" PASSWORD '[redacted]'"#),
        "the line is written, masked: {log}"
    );
    assert!(
        !log.contains(password),
        "the password reached the log: {log}"
    );
}
