//! A hostile contract v0.2.0 plugin points the new `http` and `redis`
//! capabilities where they must not go: another port, another host, a
//! redirect off the origin, an oversized response, its own
//! `Authorization`, `CONFIG SET`, `EVAL`, `SHUTDOWN`. The host refuses
//! each, logs and counts it, nothing reaches the other origin, Redis keeps
//! running unchanged, and other plugins keep working.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use broker::egress::HttpTarget;
use broker::plugin::{CallContext, FailureKind, HostCapability, Limits, PluginError};
use broker_tests::{
    HOSTILE_WASM, builtin, connection, redis_cli, redis_target, request, runtime, unique,
};
use serde_json::json;

/// Serves `app` on a free loopback port; its port.
async fn serve(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The mount's service and another origin that counts what reaches it.
async fn services() -> (u16, u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let other = serve(axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "you should not be here" }
    }))
    .await;
    let app = axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/redirect-away",
            get(move || async move {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("http://127.0.0.1:{other}/steal"))],
                )
            }),
        )
        .route(
            "/redirect-home",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }),
        )
        .route("/big", get(|| async { vec![b'x'; 2 << 20] }))
        .route(
            "/auth",
            get(|headers: HeaderMap| async move {
                // admin:s3cret-admin, added by the host.
                let expected = "Basic YWRtaW46czNjcmV0LWFkbWlu";
                match headers.get(header::AUTHORIZATION) {
                    Some(v) if v == expected => StatusCode::OK.into_response(),
                    _ => StatusCode::UNAUTHORIZED.into_response(),
                }
            }),
        );
    let port = serve(app).await;
    (port, other, hits)
}

fn refused(result: Result<broker::plugin::Credential, PluginError>, what: &str) -> String {
    match result {
        Err(PluginError::Failed { kind, message }) => {
            assert!(
                matches!(
                    kind,
                    FailureKind::InvalidConfig | FailureKind::InvalidRequest
                ),
                "{what}: {kind:?} {message}"
            );
            message
        }
        other => panic!("{what}: expected the host to refuse, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_every_escape_and_other_plugins_are_unaffected() {
    let rt = runtime(Limits::default());
    let hostile = rt.load(HOSTILE_WASM).await.unwrap();
    assert_eq!(hostile.info().api_version, "0.2.0");
    // Granted by its imports: it calls sql, redis and http.
    for c in [
        HostCapability::Http,
        HostCapability::Redis,
        HostCapability::SqlPostgres,
    ] {
        assert!(
            hostile.info().capabilities.contains(&c),
            "{:?}",
            hostile.info()
        );
    }
    let (port, other, other_hits) = services().await;
    let target = Arc::new(HttpTarget {
        base_url: format!("http://127.0.0.1:{port}/"),
        username: Some("admin".into()),
        password: Some(zeroize::Zeroizing::new("s3cret-admin".into())),
        ca_cert: None,
    });
    let ctx = CallContext::new()
        .with_http(&unique("http"), target)
        .with_redis(&unique("redis"), redis_target(None, None));
    let call = |behave: &str, target: String| {
        let (p, ctx) = (hostile.clone(), ctx.clone());
        let role = json!({ "behave": behave, "target": target });
        async move {
            p.issue(&ctx, &connection(json!({})), &request("r", role, "t"))
                .await
        }
    };
    let dir_before = redis_cli(&["CONFIG", "GET", "dir"]);

    for (behave, target, says) in [
        (
            "http",
            format!("http://127.0.0.1:{other}/"),
            "requests may go only to",
        ),
        (
            "http",
            format!("http://localhost:{port}/ok"),
            "requests may go only to",
        ),
        (
            "http",
            format!("https://127.0.0.1:{port}/ok"),
            "requests may go only to",
        ),
        (
            "http",
            "//127.0.0.1:1/x".to_owned(),
            "an absolute URL on its origin",
        ),
        (
            "http",
            "/redirect-away".to_owned(),
            "redirect to another origin refused",
        ),
        ("http", "/big".to_owned(), "larger than"),
        (
            "http-authorization",
            "/ok".to_owned(),
            "may not set the Authorization header",
        ),
        (
            "redis-config-set",
            String::new(),
            "does not let plugins run CONFIG",
        ),
        ("redis-eval", String::new(), "does not let plugins run EVAL"),
        (
            "redis-shutdown",
            String::new(),
            "does not let plugins run SHUTDOWN",
        ),
    ] {
        let message = refused(
            call(behave, target.clone()).await,
            &format!("{behave} {target}"),
        );
        assert!(message.contains(says), "{behave} {target}: {message}");
        assert!(!message.contains("s3cret-admin"), "{message}");
    }
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a request reached the other origin"
    );

    // What the host allows still works: a redirect within the origin, and
    // its own credential, which the plugin never saw.
    for path in ["/redirect-home", "/auth", "/ok"] {
        let ok = call("http", path.to_owned())
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(ok.data["status"], 200, "{path}: {:?}", ok.data);
    }
    call("redis-ping", String::new()).await.unwrap();

    // Redis is up and unchanged.
    assert_eq!(redis_cli(&["PING"]), "PONG");
    assert_eq!(redis_cli(&["CONFIG", "GET", "dir"]), dir_before);

    // Counted per plugin and capability (and logged, as warnings).
    let metrics = broker::metrics::metrics().encode();
    for capability in ["http", "redis"] {
        let line = format!(
            "broker_plugin_refusals_total{{plugin=\"hostile\",capability=\"{capability}\"}}"
        );
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }

    // Another plugin in the same runtime is unaffected.
    let redis = builtin(&rt, "redis").await;
    let rctx = CallContext::new().with_redis(&unique("redis"), redis_target(None, None));
    let cred = redis
        .issue(
            &rctx,
            &connection(json!({})),
            &request("r", json!({ "creation_statements": ["+ping"] }), "t"),
        )
        .await
        .unwrap();
    redis
        .revoke(&rctx, &connection(json!({})), &cred.revocation)
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_refusal_is_logged_at_once_without_the_plugins_arguments() {
    use tracing_subscriber::util::SubscriberInitExt;

    let captured = crate::sandbox::Captured::default();
    let writer = captured.clone();
    let _logging = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .finish()
        .set_default();
    tracing::callsite::rebuild_interest_cache();
    let rt = runtime(Limits::default());
    let hostile = rt.load(HOSTILE_WASM).await.unwrap();
    let ctx = CallContext::new().with_redis(&unique("redis"), redis_target(None, None));
    let role = json!({ "behave": "redis-config-set" });
    let _ = hostile
        .issue(&ctx, &connection(json!({})), &request("r", role, "t"))
        .await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("the host refused a plugin's request"), "{log}");
    assert!(
        log.contains("plugin=hostile") && log.contains("command CONFIG"),
        "{log}"
    );
    assert!(
        !log.contains("/tmp"),
        "the plugin's arguments reached the log: {log}"
    );
}

/// `http` to an https:// service is verified against the mount's
/// `ca_cert` alone: with it the request goes through, without it (the
/// system's roots) the self-signed service is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_verified_against_the_mounts_ca() {
    let service = crate::process::Broker::start_tls().await;
    let cert = std::fs::read_to_string(service.tls_cert.as_ref().unwrap()).unwrap();
    let rt = runtime(Limits::default());
    let hostile = rt.load(HOSTILE_WASM).await.unwrap();
    let target = |ca_cert: Option<String>| {
        Arc::new(HttpTarget {
            base_url: format!("https://127.0.0.1:{}/", service.port()),
            username: None,
            password: None,
            ca_cert,
        })
    };
    let role = json!({ "behave": "http", "target": "/v1/sys/health" });
    let trusted = CallContext::new().with_http(&unique("https"), target(Some(cert)));
    let ok = hostile
        .issue(
            &trusted,
            &connection(json!({})),
            &request("r", role.clone(), "t"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.data["status"], 200, "{:?}", ok.data);
    let untrusted = CallContext::new().with_http(&unique("https"), target(None));
    match hostile
        .issue(&untrusted, &connection(json!({})), &request("r", role, "t"))
        .await
    {
        Err(PluginError::Failed {
            kind: FailureKind::Unavailable,
            message,
        }) => assert!(!message.is_empty()),
        other => panic!("a service the mount's CA does not vouch for must be refused: {other:?}"),
    }
}
