//! Criterion benchmarks of the API layer's per-request overhead, in
//! process and without TCP: requests go straight into
//! `broker::api::router` through `tower::ServiceExt::oneshot`, on a core
//! with SQLite storage, the local KMS and no audit device. Each request's
//! response body is read to the end, as a server would.
//!
//! The requests: read a database role, list the roles, read
//! `sys/mounts`, a path no route serves (404), an operation a route
//! does not take (405), and the role read again with a service token and
//! a batch token holding a policy that grants it (token lookup and policy
//! check included; the root token skips both). Each status is checked once before its
//! measurement, so a broken route cannot bench as a fast one.
//!
//! Run: `cargo bench -p broker --bench dispatch`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use broker::api::RateLimits;
use broker::core::CoreOptions;
use broker::plugin::{Catalog, PluginRuntime, RuntimeConfig};
use broker::seal::{LocalSeal, Seal, SealKind};
use broker::server::ServeOptions;
use broker::storage::{SqliteBackend, Storage};
use broker::unseal::{InitRequest, SealSetup, Unsealer};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "brk.dispatch-bench-root-token";

/// The router under test, and what must outlive it.
struct Api {
    router: Router,
    remote: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Api {
    /// One request as the listener hands it to the router.
    fn request(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Request<Body> {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-vault-token", token)
            .body(body)
            .unwrap_or_else(|e| panic!("{e}"));
        request.extensions_mut().insert(ConnectInfo(self.remote));
        request
    }

    /// Sends it with the root token and reads the whole answer.
    async fn send(&self, method: Method, uri: &str, body: Option<&Value>) -> (StatusCode, Vec<u8>) {
        self.send_as(TOKEN, method, uri, body).await
    }

    /// Sends it with `token` and reads the whole answer.
    async fn send_as(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Vec<u8>) {
        let response = self
            .router
            .clone()
            .oneshot(self.request(token, method, uri, body))
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (status, bytes.to_vec())
    }

    /// Sends it and panics unless it answers `expected`.
    async fn expect(&self, method: Method, uri: &str, body: Option<&Value>, expected: StatusCode) {
        let (status, bytes) = self.send(method.clone(), uri, body).await;
        assert_eq!(
            status,
            expected,
            "{method} {uri}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let storage: Storage = Arc::new(
        SqliteBackend::open(&dir.path().join("broker.db"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let seal: Arc<dyn Seal> =
        Arc::new(LocalSeal::create(&dir.path().join("kms.key")).unwrap_or_else(|e| panic!("{e}")));
    let request = InitRequest {
        recovery_shares: Some(0),
        ..Default::default()
    };
    broker::unseal::initialize(&storage, SealKind::Local, Some(seal.as_ref()), &request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let catalog = Arc::new(
        Catalog::builtin(&runtime)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let setup = SealSetup {
        kind: SealKind::Local,
        seal: Some(seal.clone()),
        error: None,
        previous: None,
        reopen: None,
    };
    let unsealer = Unsealer::new(storage, setup, catalog, CoreOptions::default(), None);
    let core = unsealer
        .open_now(seal)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    core.set_root_token(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let options = ServeOptions {
        rate_limits: RateLimits::none(),
        ..Default::default()
    };
    let api = Api {
        router: broker::api::router(unsealer.clone(), &options),
        remote: "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        _dir: dir,
    };
    let setup = [
        ("/v1/sys/mounts/db", json!({ "type": "database" })),
        (
            "/v1/db/config/pg",
            json!({ "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                "username": "admin", "password": "x", "allowed_roles": "*",
                "verify_connection": false }),
        ),
        (
            "/v1/db/roles/r",
            json!({ "db_name": "pg", "creation_statements": "SELECT 1" }),
        ),
    ];
    for (uri, body) in &setup {
        let (status, bytes) = api.send(Method::POST, uri, Some(body)).await;
        assert!(
            status.is_success(),
            "POST {uri}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    api
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let api = rt.block_on(api());
    let cases = [
        ("read role", Method::GET, "/v1/db/roles/r", StatusCode::OK),
        (
            "list roles",
            Method::GET,
            "/v1/db/roles?list=true",
            StatusCode::OK,
        ),
        (
            "read sys-mounts",
            Method::GET,
            "/v1/sys/mounts",
            StatusCode::OK,
        ),
        (
            "no route 404",
            Method::GET,
            "/v1/db/nowhere/x",
            StatusCode::NOT_FOUND,
        ),
        (
            "bad method 405",
            Method::DELETE,
            "/v1/db/creds/r",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    let mut group = c.benchmark_group("dispatch");
    for (name, method, uri, expected) in cases {
        rt.block_on(api.expect(method.clone(), uri, None, expected));
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(api.send(method.clone(), std::hint::black_box(uri), None)))
        });
    }
    // The same read with tokens of the store: the difference to the root
    // token's is the token lookup and the policy check.
    let policy = json!({ "policy": "path \"db/roles/*\" { capabilities = [\"read\"] }" });
    rt.block_on(api.expect(
        Method::PUT,
        "/v1/sys/policies/acl/app",
        Some(&policy),
        StatusCode::NO_CONTENT,
    ));
    for kind in ["service", "batch"] {
        let body = json!({ "policies": ["app"], "type": kind, "ttl": "24h" });
        let (status, bytes) =
            rt.block_on(api.send(Method::POST, "/v1/auth/token/create", Some(&body)));
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let created: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let token = created["auth"]["client_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token"))
            .to_owned();
        let (status, _) = rt.block_on(api.send_as(&token, Method::GET, "/v1/db/roles/r", None));
        assert_eq!(status, StatusCode::OK);
        let (status, _) = rt.block_on(api.send_as(&token, Method::GET, "/v1/sys/mounts", None));
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the policy must be what lets it read"
        );
        group.bench_function(format!("read role ({kind} token)"), |b| {
            b.iter(|| {
                rt.block_on(api.send_as(
                    &token,
                    Method::GET,
                    std::hint::black_box("/v1/db/roles/r"),
                    None,
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
