//! Compatibility: existing Vault clients, used unchanged against the
//! broker. `vaultrs` (Rust) drives mounts, the database engine's config,
//! roles and creds, health, the token store (`auth/token/…`), policies,
//! response wrapping, and the login methods (`sys/auth`; AppRole, JWT, and
//! certificates over TLS), with tokens holding only some policies; `hvac`
//! (Python) drives the token store, capabilities and wrapping
//! (`tests/hvac/test_tokens.py`), AppRole (`test_approle.py`), JWT
//! (`test_jwt.py`) and certificates (`test_cert.py`). The credentials they
//! get log in to a real PostgreSQL.

use std::collections::HashMap;

use broker_tests::{pg_connect, postgres};
use reqwest::StatusCode;
use serde_json::json;
use vaultrs::api::ResponseWrapper;
use vaultrs::api::auth::approle::requests::{GenerateNewSecretIDRequest, SetAppRoleRequest};
use vaultrs::api::auth::approle::responses::GenerateNewSecretIDResponse;
use vaultrs::api::auth::cert::requests::CreateCaCertificateRoleRequest;
use vaultrs::api::database::requests::{
    GenerateCredentialsRequest, PostgreSQLConnectionRequest, SetRoleRequest,
};
use vaultrs::api::token::requests::{
    CreateOrphanTokenRequest, CreateRoleTokenRequest, CreateTokenRequest, ListAccessorRequest,
    LookupTokenSelfRequest, SetTokenRoleRequest,
};
use vaultrs::api::token::responses::LookupTokenResponse;
use vaultrs::auth::{approle, cert};
use vaultrs::error::ClientError;
use vaultrs::{database, sys, token};

use crate::api::{pg_role_exists, pg_url, pg_users_with_prefix, setup_tagged};
use crate::cert_auth::{client_pki, issue as client_cert};
use crate::hvac::run_hvac_script;
use crate::process::Broker;

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Only the database credentials: nothing else (bar `default`).
const APP_POLICY: &str = r#"path "database/creds/app" { capabilities = ["read"] }"#;

/// May make child tokens.
const MAKER_POLICY: &str = r#"path "auth/token/create" { capabilities = ["update"] }"#;

/// The status and messages of a vaultrs API error; panics on success or
/// on any other error (a response vaultrs could not read, above all).
fn api_error<T: std::fmt::Debug>(what: &str, r: Result<T, ClientError>) -> (u16, Vec<String>) {
    match r {
        Err(ClientError::APIError { code, errors }) => (code, errors),
        other => panic!("{what}: expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn vaultrs_drives_the_database_engine() {
    let b = Broker::start().await;
    let client = b.vaultrs();

    let health = sys::health(&client).await.unwrap();
    assert!(health.initialized && !health.sealed);

    sys::mount::enable(&client, "db", "database", None)
        .await
        .unwrap();
    let mounts = sys::mount::list(&client).await.unwrap();
    assert_eq!(mounts["db/"].mount_type, "database");

    let s = postgres();
    database::connection::postgres(
        &client,
        "db",
        "main",
        Some(
            PostgreSQLConnectionRequest::builder()
                .plugin_name("postgresql-database-plugin")
                .connection_url(pg_url(&s.host, s.port))
                .username(&s.user)
                .password(&s.password)
                .allowed_roles(vec!["app".to_owned()]),
        ),
    )
    .await
    .unwrap();
    let connection = database::connection::read(&client, "db", "main")
        .await
        .unwrap();
    assert_eq!(connection.plugin_name, "postgresql-database-plugin");
    assert_eq!(connection.allowed_roles, vec!["app"]);
    assert_eq!(connection.connection_details.username, s.user);
    let listed = database::connection::list(&client, "db").await.unwrap();
    assert_eq!(listed.keys, vec!["main"]);

    database::role::set(
        &client,
        "db",
        "app",
        Some(
            SetRoleRequest::builder()
                .db_name("main")
                .creation_statements(vec![
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';".to_owned(),
                ])
                .default_ttl("30m")
                .max_ttl("1h"),
        ),
    )
    .await
    .unwrap();
    let role = database::role::read(&client, "db", "app").await.unwrap();
    assert_eq!(role.db_name, "main");
    assert_eq!((role.default_ttl, role.max_ttl), (1800, 3600));
    assert_eq!(role.creation_statements.len(), 1);
    assert!(role.revocation_statements.is_empty());
    assert_eq!(
        database::role::list(&client, "db").await.unwrap().keys,
        vec!["app"]
    );

    let creds = database::role::creds(&client, "db", "app").await.unwrap();
    let login = pg_connect(s, &creds.username, &creds.password)
        .await
        .expect("the login vaultrs received works");
    let one: i32 = login.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(login);

    // vaultrs has no lease calls; revoke everything the mount issued.
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/db/",
        Some(json!({})),
    )
    .await;
    assert!(!pg_role_exists(&creds.username).await);

    // Vault's errors reach the client as Vault's errors.
    match database::role::creds(&client, "db", "nope").await {
        Err(vaultrs::error::ClientError::APIError { code, errors }) => {
            assert_eq!(code, 400);
            assert!(
                errors.iter().any(|e| e.contains("unknown role")),
                "{errors:?}"
            );
        }
        other => panic!("expected a 400 API error, got {other:?}"),
    }
    sys::mount::disable(&client, "db").await.unwrap();
}

/// vaultrs's `token` module against the token store: create (with
/// policies, TTL, uses, metadata; orphan; through a role), look up (by
/// token, self, accessor), renew (the same three), revoke (by token, self,
/// accessor, orphan), token roles, the accessor list, tidy. A client with
/// a token holding one policy gets only what that policy grants, and a
/// token with uses runs out of them.
#[tokio::test]
async fn vaultrs_drives_the_token_store() {
    let b = Broker::start().await;
    let root = b.vaultrs();
    sys::policy::set(&root, "app", APP_POLICY).await.unwrap();
    sys::policy::set(&root, "maker", MAKER_POLICY)
        .await
        .unwrap();
    assert_eq!(
        sys::policy::read(&root, "app").await.unwrap().rules,
        APP_POLICY
    );

    // The root token looks itself up: no expiry.
    let me = token::lookup_self(&root).await.unwrap();
    assert_eq!(me.policies, ["root"]);
    assert!(me.expire_time.is_none(), "{me:?}");
    assert_eq!(me.ttl, 0);
    assert!(!me.issue_time.is_empty());

    // Create with policies, a TTL, uses, a name and metadata.
    let created = token::new(
        &root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["app".to_owned()])
                .ttl("1h")
                .num_uses(3u64)
                .display_name("web")
                .meta(HashMap::from([("team".to_owned(), "payments".to_owned())])),
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.policies, ["app", "default"]);
    assert_eq!(created.token_policies, ["app", "default"]);
    assert_eq!(created.token_type, "service");
    assert!(created.renewable && !created.orphan, "{created:?}");
    assert!(
        (3590..=3600).contains(&created.lease_duration),
        "{created:?}"
    );
    assert_eq!(created.metadata.as_ref().unwrap()["team"], "payments");
    let looked: LookupTokenResponse = token::lookup(&root, &created.client_token).await.unwrap();
    assert_eq!(looked.id, created.client_token);
    assert_eq!(looked.accessor, created.accessor);
    assert_eq!(looked.display_name, "token-web");
    assert_eq!(looked.path, "auth/token/create");
    assert_eq!(looked.num_uses, 3);
    assert_eq!(looked.creation_ttl, 3600);
    assert_eq!(looked.explicit_max_ttl, 0);
    assert_eq!(looked.meta.as_ref().unwrap()["team"], "payments");
    assert!(looked.expire_time.is_some() && !looked.issue_time.is_empty());
    assert!(!looked.orphan && looked.renewable);
    assert_eq!(looked.entity_id, "");

    // A client holding that token: what `app` and `default` grant, and
    // nothing else. It runs out after three requests.
    let limited = b.vaultrs_as(&created.client_token);
    let me = token::lookup_self(&limited).await.unwrap();
    assert_eq!(me.id, created.client_token);
    let (code, _) = api_error("list mounts", sys::mount::list(&limited).await);
    assert_eq!(code, 403);
    token::lookup_self(&limited).await.unwrap();
    let (code, _) = api_error("a fourth use", token::lookup_self(&limited).await);
    assert_eq!(code, 403);

    // A token with only `app`: no mounts, no policies, no lookups of
    // others, no children; itself it may look up and renew.
    let app = token::new(
        &root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["app".to_owned()])
                .ttl("1h"),
        ),
    )
    .await
    .unwrap();
    let app_client = b.vaultrs_as(&app.client_token);
    for (what, code) in [
        (
            "list mounts",
            api_error("mounts", sys::mount::list(&app_client).await).0,
        ),
        (
            "list policies",
            api_error("policies", sys::policy::list(&app_client).await).0,
        ),
        (
            "look up another",
            api_error(
                "lookup",
                token::lookup(&app_client, &created.client_token).await,
            )
            .0,
        ),
        (
            "create a child",
            api_error("create", token::new(&app_client, None).await).0,
        ),
        (
            "list roles",
            api_error("roles", token::role::list(&app_client).await).0,
        ),
    ] {
        assert_eq!(code, 403, "{what}");
    }
    // A renewal never shortens a token's life here.
    let renewed = token::renew_self(&app_client, Some("2h")).await.unwrap();
    assert_eq!(renewed.client_token, app.client_token);
    assert!(
        (7190..=7200).contains(&renewed.lease_duration),
        "{renewed:?}"
    );

    // Renew by token and by accessor (which does not show the token).
    let renewed = token::renew(&root, &app.client_token, Some("3h"))
        .await
        .unwrap();
    assert!(
        (10790..=10800).contains(&renewed.lease_duration),
        "{renewed:?}"
    );
    let renewed = token::renew_accessor(&root, &app.accessor, Some("4h"))
        .await
        .unwrap();
    assert_eq!(renewed.client_token, "");
    assert_eq!(renewed.accessor, app.accessor);
    assert!(
        (14390..=14400).contains(&renewed.lease_duration),
        "{renewed:?}"
    );
    let by_accessor = token::lookup_accessor(&root, &app.accessor).await.unwrap();
    assert_eq!(
        by_accessor.id, "",
        "a lookup by accessor does not show the token"
    );
    assert_eq!(by_accessor.policies, ["app", "default"]);

    // An orphan.
    let orphan = token::new_orphan(
        &root,
        Some(
            CreateOrphanTokenRequest::builder()
                .policies(vec!["app".to_owned()])
                .ttl("10m"),
        ),
    )
    .await
    .unwrap();
    assert!(orphan.orphan);
    let looked = token::lookup(&root, &orphan.client_token).await.unwrap();
    assert!(looked.orphan);
    assert_eq!(looked.path, "auth/token/create-orphan");

    // Token roles: set, read, list, create through one, delete.
    token::role::set(
        &root,
        "worker",
        Some(
            SetTokenRoleRequest::builder()
                .allowed_policies(vec!["app".to_owned()])
                .orphan(true)
                .renewable(true)
                .token_period("2h"),
        ),
    )
    .await
    .unwrap();
    let role = token::role::read(&root, "worker").await.unwrap();
    assert_eq!(role.name, "worker");
    assert_eq!(role.allowed_policies, ["app"]);
    assert!(role.disallowed_policies.is_empty());
    assert!(role.orphan && role.renewable);
    assert_eq!((role.period, role.token_period), (7200, 7200));
    assert_eq!(role.path_suffix, "");
    assert_eq!(token::role::list(&root).await.unwrap().keys, ["worker"]);
    let from_role = token::new_role(
        &root,
        "worker",
        Some(CreateRoleTokenRequest::builder().policies(vec!["app".to_owned()])),
    )
    .await
    .unwrap();
    assert_eq!(from_role.policies, ["app", "default"]);
    assert!(from_role.orphan && from_role.renewable);
    assert_eq!(from_role.lease_duration, 7200, "the role's period");
    let looked = token::lookup(&root, &from_role.client_token).await.unwrap();
    assert_eq!(looked.path, "auth/token/create/worker");
    let (code, errors) = api_error(
        "a policy the role does not allow",
        token::new_role(
            &root,
            "worker",
            Some(CreateRoleTokenRequest::builder().policies(vec!["maker".to_owned()])),
        )
        .await,
    );
    assert!(code == 400 || code == 403, "{code} {errors:?}");
    token::role::delete(&root, "worker").await.unwrap();
    let (code, _) = api_error("a deleted role", token::role::read(&root, "worker").await);
    assert_eq!(code, 404);

    // The accessor list (sudo; vaultrs has the request, not a function).
    let listed =
        vaultrs::api::exec_with_result(&root, ListAccessorRequest::builder().build().unwrap())
            .await
            .unwrap();
    for accessor in [&app.accessor, &orphan.accessor, &from_role.accessor] {
        assert!(
            listed.keys.contains(accessor),
            "{accessor} in {:?}",
            listed.keys
        );
    }
    let (code, _) = api_error(
        "accessors without sudo",
        vaultrs::api::exec_with_result(
            &app_client,
            ListAccessorRequest::builder().build().unwrap(),
        )
        .await,
    );
    assert_eq!(code, 403);

    // Revoking: a parent by revoke-orphan keeps its child; revoke-self ends
    // the child; by accessor; by token.
    let parent = token::new(
        &root,
        Some(CreateTokenRequest::builder().policies(vec!["app".to_owned(), "maker".to_owned()])),
    )
    .await
    .unwrap();
    let child = token::new(
        &b.vaultrs_as(&parent.client_token),
        Some(CreateTokenRequest::builder().policies(vec!["app".to_owned()])),
    )
    .await
    .unwrap();
    assert!(!child.orphan);
    token::revoke_orphan(&root, &parent.client_token)
        .await
        .unwrap();
    let (code, _) = api_error(
        "the revoked parent",
        token::lookup_self(&b.vaultrs_as(&parent.client_token)).await,
    );
    assert_eq!(code, 403);
    let child_client = b.vaultrs_as(&child.client_token);
    let me = token::lookup_self(&child_client).await.unwrap();
    assert!(me.orphan, "the child lives on, an orphan");
    token::revoke_self(&child_client).await.unwrap();
    let (code, _) = api_error("revoked itself", token::lookup_self(&child_client).await);
    assert_eq!(code, 403);

    token::revoke_accessor(&root, &app.accessor).await.unwrap();
    let (code, _) = api_error("revoked by accessor", token::lookup_self(&app_client).await);
    assert_eq!(code, 403);
    api_error(
        "the accessor of a revoked token",
        token::lookup_accessor(&root, &app.accessor).await,
    );
    token::revoke(&root, &orphan.client_token).await.unwrap();
    api_error(
        "a revoked token",
        token::lookup(&root, &orphan.client_token).await,
    );

    token::tidy(&root).await.unwrap();
}

/// A client holding a token with only `database/creds/app` read: it reads
/// credentials (wrapped, with vaultrs's `ResponseWrapper`, and unwraps
/// them once), cannot list mounts, and its credentials end with it.
#[tokio::test]
async fn vaultrs_with_a_policy_token_reads_wrapped_creds() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let root = b.vaultrs();
    sys::policy::set(&root, "app", APP_POLICY).await.unwrap();
    let app = token::new(
        &root,
        Some(CreateTokenRequest::builder().policies(vec!["app".to_owned()])),
    )
    .await
    .unwrap();
    let client = b.vaultrs_as(&app.client_token);

    let (code, errors) = api_error("list mounts", sys::mount::list(&client).await);
    assert_eq!(code, 403, "{errors:?}");
    let (code, _) = api_error(
        "read the role",
        database::role::read(&client, "database", "app").await,
    );
    assert_eq!(code, 403);

    // A wrapped read: the response waits behind a single-use token.
    let wrapped = GenerateCredentialsRequest::builder()
        .mount("database")
        .name("app")
        .build()
        .unwrap()
        .wrap(&client)
        .await
        .unwrap();
    assert_eq!(wrapped.info.creation_path, "database/creds/app");
    assert_eq!(wrapped.info.ttl, 600, "vaultrs asks for 10m");
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);
    let info = wrapped.lookup(&client).await.unwrap();
    assert_eq!(info.creation_path, "database/creds/app");
    assert_eq!(info.creation_ttl, 600);
    assert!(!info.creation_time.is_empty());
    // The lookup by the free function, with no token of the client's own.
    let info = sys::wrapping::lookup(&b.vaultrs_as(""), &wrapped.info.token)
        .await
        .unwrap();
    assert_eq!(info.creation_ttl, 600);
    let creds = wrapped.unwrap(&client).await.unwrap();
    assert!(creds.username.starts_with(&prefix), "{}", creds.username);
    let login = pg_connect(postgres(), &creds.username, &creds.password)
        .await
        .expect("the unwrapped login works");
    let one: i32 = login.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(login);
    // Once only.
    let (code, _) = api_error("a second unwrap", wrapped.unwrap(&client).await);
    assert_eq!(code, 400);
    assert!(matches!(
        wrapped.lookup(&client).await,
        Err(ClientError::WrapInvalidError)
    ));

    // A wrapped lookup-self, unwrapped by another client with the wrapping
    // token as its own (sys::wrapping::unwrap with no token in the body).
    let wrapped = LookupTokenSelfRequest::builder()
        .build()
        .unwrap()
        .wrap(&client)
        .await
        .unwrap();
    let me: LookupTokenResponse = sys::wrapping::unwrap(&b.vaultrs_as(&wrapped.info.token), None)
        .await
        .unwrap();
    assert_eq!(me.accessor, app.accessor);

    // Unwrapped creds are the token's: revoking it drops the user.
    token::revoke_self(&client).await.unwrap();
    assert!(!pg_role_exists(&creds.username).await);
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
}

/// vaultrs's `sys::auth` and `auth::approle` modules, unchanged: the
/// operator enables AppRole, writes a policy and a role, reads its role id
/// and hands out a secret id wrapped; the app unwraps it with the wrapping
/// token as its own, logs in, and with the login token reads database
/// credentials (a real PostgreSQL login) and nothing else. Then the
/// operator's side: secret ids listed, looked up and destroyed by secret
/// id and by accessor, a custom secret id, the role id changed, tidy, the
/// role read, listed and deleted, and disabling the method ending the
/// app's token and its database user.
#[tokio::test]
async fn vaultrs_drives_approle_with_a_wrapped_secret_id() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let root = b.vaultrs();

    sys::auth::enable(&root, "approle", "approle", None)
        .await
        .unwrap();
    let methods = sys::auth::list(&root).await.unwrap();
    assert_eq!(methods["approle/"].mount_type, "approle");
    assert!(methods["approle/"].accessor.starts_with("approle_"));
    assert_eq!(methods["token/"].mount_type, "token");
    assert_eq!(methods["token/"].config.token_type, "default-service");

    sys::policy::set(&root, "app", APP_POLICY).await.unwrap();
    approle::role::set(
        &root,
        "approle",
        "web",
        Some(
            SetAppRoleRequest::builder()
                .token_policies(vec!["app".to_owned()])
                .token_ttl("10m")
                .token_max_ttl("1h")
                .secret_id_ttl("1h")
                .secret_id_num_uses(5u64),
        ),
    )
    .await
    .unwrap();
    let role = approle::role::read(&root, "approle", "web").await.unwrap();
    assert!(role.bind_secret_id, "{role:?}");
    assert_eq!(role.token_policies, ["app"]);
    assert_eq!((role.token_ttl, role.token_max_ttl), (600, 3600));
    assert_eq!((role.secret_id_ttl, role.secret_id_num_uses), (3600, 5));
    assert!(role.token_bound_cidrs.is_empty());
    assert_eq!(
        approle::role::list(&root, "approle").await.unwrap().keys,
        ["web"]
    );
    let role_id = approle::role::read_id(&root, "approle", "web")
        .await
        .unwrap()
        .role_id;
    assert!(!role_id.is_empty());

    // The secret id leaves the broker wrapped: whoever carries it to the
    // app sees only a single-use wrapping token.
    let wrapped = GenerateNewSecretIDRequest::builder()
        .mount("approle")
        .role_name("web")
        .metadata(r#"{"team": "payments"}"#)
        .build()
        .unwrap()
        .wrap(&root)
        .await
        .unwrap();
    assert_eq!(
        wrapped.info.creation_path,
        "auth/approle/role/web/secret-id"
    );
    assert_eq!(wrapped.info.ttl, 600, "vaultrs asks for 10m");
    // The app unwraps it with the wrapping token as its own.
    let delivered: GenerateNewSecretIDResponse =
        sys::wrapping::unwrap(&b.vaultrs_as(&wrapped.info.token), None)
            .await
            .unwrap();
    assert_eq!(delivered.secret_id_ttl, 3600);
    let (code, _) = api_error(
        "a second unwrap",
        sys::wrapping::unwrap::<GenerateNewSecretIDResponse>(
            &b.vaultrs_as(&wrapped.info.token),
            None,
        )
        .await,
    );
    assert!(code == 400 || code == 403, "{code}");

    // It logs in, with no token of its own.
    let auth = approle::login(&b.vaultrs_as(""), "approle", &role_id, &delivered.secret_id)
        .await
        .unwrap();
    assert_eq!(auth.policies, ["app", "default"]);
    assert_eq!(auth.token_policies, ["app", "default"]);
    assert_eq!(auth.lease_duration, 600);
    assert!(auth.renewable && auth.orphan, "{auth:?}");
    assert_eq!(auth.token_type, "service");
    let meta = auth.metadata.clone().unwrap_or_default();
    assert_eq!(meta.get("role_name").map(String::as_str), Some("web"));
    assert_eq!(meta.get("team").map(String::as_str), Some("payments"));

    // The login token: database credentials, and nothing else.
    let app = b.vaultrs_as(&auth.client_token);
    let creds = database::role::creds(&app, "database", "app")
        .await
        .unwrap();
    assert!(creds.username.starts_with(&prefix), "{}", creds.username);
    let login = pg_connect(postgres(), &creds.username, &creds.password)
        .await
        .expect("the login the AppRole token received works");
    let one: i32 = login.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(login);
    let me = token::lookup_self(&app).await.unwrap();
    assert_eq!(me.path, "auth/approle/login");
    assert_eq!(me.meta.as_ref().unwrap()["role_name"], "web");
    for (what, code) in [
        (
            "list mounts",
            api_error("mounts", sys::mount::list(&app).await).0,
        ),
        (
            "list auth methods",
            api_error("auth", sys::auth::list(&app).await).0,
        ),
        (
            "read the role id",
            api_error(
                "role id",
                approle::role::read_id(&app, "approle", "web").await,
            )
            .0,
        ),
        (
            "generate a secret id",
            api_error(
                "secret id",
                approle::role::secret::generate(&app, "approle", "web", None).await,
            )
            .0,
        ),
        (
            "read the database role",
            api_error(
                "database role",
                database::role::read(&app, "database", "app").await,
            )
            .0,
        ),
    ] {
        assert_eq!(code, 403, "{what}");
    }

    // The operator's view of the secret id: by accessor, never the secret.
    let accessors = approle::role::secret::list(&root, "approle", "web")
        .await
        .unwrap()
        .keys;
    assert_eq!(
        accessors,
        std::slice::from_ref(&delivered.secret_id_accessor)
    );
    let looked = approle::role::secret::read(&root, "approle", "web", &delivered.secret_id)
        .await
        .unwrap();
    assert_eq!(looked.secret_id_accessor, delivered.secret_id_accessor);
    assert_eq!(looked.secret_id_num_uses, 4, "one of five used");
    assert_eq!(looked.secret_id_ttl, 3600);
    assert_eq!(looked.metadata.as_ref().unwrap()["team"], "payments");
    assert!(!looked.creation_time.is_empty() && !looked.expiration_time.is_empty());
    let by_accessor = approle::role::secret::read_accessor(
        &root,
        "approle",
        "web",
        &delivered.secret_id_accessor,
    )
    .await
    .unwrap();
    assert_eq!(by_accessor.secret_id_num_uses, 4);
    assert_eq!(by_accessor.expiration_time, looked.expiration_time);

    // A custom secret id (Vault's push model), destroyed by accessor.
    let custom = approle::role::secret::custom(
        &root,
        "approle",
        "web",
        "a-secret-id-chosen-by-the-operator",
        None,
    )
    .await
    .unwrap();
    assert_eq!(custom.secret_id, "a-secret-id-chosen-by-the-operator");
    let other = approle::login(&b.vaultrs_as(""), "approle", &role_id, &custom.secret_id)
        .await
        .unwrap();
    assert_ne!(other.client_token, auth.client_token);
    let (code, _) = api_error(
        "the same custom secret id again",
        approle::role::secret::custom(&root, "approle", "web", &custom.secret_id, None).await,
    );
    assert_eq!(code, 400);
    approle::role::secret::delete_accessor(&root, "approle", "web", &custom.secret_id_accessor)
        .await
        .unwrap();
    let (code, errors) = api_error(
        "a login with a destroyed secret id",
        approle::login(&b.vaultrs_as(""), "approle", &role_id, &custom.secret_id).await,
    );
    assert_eq!(code, 400);
    assert_eq!(errors, ["invalid role ID or secret ID"]);

    // Destroyed by secret id.
    approle::role::secret::delete(&root, "approle", "web", &delivered.secret_id)
        .await
        .unwrap();
    let (code, errors) = api_error(
        "a login with a destroyed secret id",
        approle::login(&b.vaultrs_as(""), "approle", &role_id, &delivered.secret_id).await,
    );
    assert_eq!(code, 400);
    assert_eq!(errors, ["invalid role ID or secret ID"]);
    let (code, _) = api_error(
        "a destroyed secret id's accessor",
        approle::role::secret::read_accessor(
            &root,
            "approle",
            "web",
            &delivered.secret_id_accessor,
        )
        .await,
    );
    assert_eq!(code, 400);

    // A chosen role id; a plain (unwrapped) secret id logs in with it.
    approle::role::update_id(&root, "approle", "web", "web-role-id")
        .await
        .unwrap();
    assert_eq!(
        approle::role::read_id(&root, "approle", "web")
            .await
            .unwrap()
            .role_id,
        "web-role-id"
    );
    let plain = approle::role::secret::generate(&root, "approle", "web", None)
        .await
        .unwrap();
    approle::login(
        &b.vaultrs_as(""),
        "approle",
        "web-role-id",
        &plain.secret_id,
    )
    .await
    .unwrap();
    approle::tidy(&root, "approle").await.unwrap();

    // A role whose secret ids never expire: Vault's zero time, a string.
    approle::role::set(
        &root,
        "approle",
        "ci",
        Some(SetAppRoleRequest::builder().token_policies(vec!["app".to_owned()])),
    )
    .await
    .unwrap();
    let forever = approle::role::secret::generate(&root, "approle", "ci", None)
        .await
        .unwrap();
    assert_eq!(forever.secret_id_ttl, 0);
    let looked = approle::role::secret::read(&root, "approle", "ci", &forever.secret_id)
        .await
        .unwrap();
    assert_eq!(looked.expiration_time, "0001-01-01T00:00:00Z");
    assert_eq!((looked.secret_id_ttl, looked.secret_id_num_uses), (0, 0));
    assert_eq!(
        approle::role::list(&root, "approle").await.unwrap().keys,
        ["ci", "web"]
    );

    approle::role::delete(&root, "approle", "web")
        .await
        .unwrap();
    let (code, _) = api_error(
        "a deleted role",
        approle::role::read(&root, "approle", "web").await,
    );
    assert_eq!(code, 404);
    assert_eq!(
        approle::role::list(&root, "approle").await.unwrap().keys,
        ["ci"]
    );

    // Disabling the method revokes its tokens, and so their database users.
    sys::auth::disable(&root, "approle").await.unwrap();
    assert!(!pg_role_exists(&creds.username).await);
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
    let (code, _) = api_error("a revoked login token", token::lookup_self(&app).await);
    assert_eq!(code, 403);
    assert!(
        !sys::auth::list(&root)
            .await
            .unwrap()
            .contains_key("approle/")
    );
}

/// vaultrs's `auth::cert` module, unchanged, over TLS: the operator
/// enables the method and trusts the broker's own PKI CA for logins
/// (`ca_cert_role::set`, read back with `read` and `list`); an app whose
/// client presents a certificate that PKI issued logs in
/// (`cert::login`) and with the token reads database credentials (a real
/// PostgreSQL login) and nothing else. No certificate, and a certificate
/// whose name the entry does not allow, are refused; revoking the token
/// ends the database user.
#[tokio::test]
async fn vaultrs_logs_in_with_a_certificate_from_the_brokers_pki() {
    let b = Broker::start_tls().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let ca = client_pki(&b).await;
    let root = b.vaultrs();
    sys::auth::enable(&root, "cert", "cert", None)
        .await
        .unwrap();
    sys::policy::set(&root, "app", APP_POLICY).await.unwrap();
    cert::ca_cert_role::set(
        &root,
        "cert",
        "apps",
        &ca,
        Some(
            CreateCaCertificateRoleRequest::builder()
                .token_policies(vec!["app".to_owned()])
                .allowed_common_names(vec!["app.example.com".to_owned()])
                .allowed_email_sans(Vec::<String>::new())
                .token_ttl("10m"),
        ),
    )
    .await
    .unwrap();
    let entry = cert::ca_cert_role::read(&root, "cert", "apps")
        .await
        .unwrap();
    assert_eq!(entry.certificate, ca);
    assert_eq!(entry.token_policies, ["app"]);
    assert_eq!(entry.token_ttl, 600);
    assert_eq!(
        entry.allowed_common_names.as_deref(),
        Some(&["app.example.com".to_owned()][..])
    );
    let listed = cert::ca_cert_role::list(&root, "cert").await.unwrap();
    assert_eq!(listed.keys, ["apps"]);

    let (pem, key, _) = client_cert(&b, "app.example.com").await;
    let auth = cert::login(&b.vaultrs_with_certificate(&pem, &key), "cert", "apps")
        .await
        .unwrap();
    assert_eq!(auth.policies, ["app", "default"]);
    assert_eq!(auth.lease_duration, 600);
    let meta = auth.metadata.clone().unwrap_or_default();
    assert_eq!(meta.get("cert_name").map(String::as_str), Some("apps"));
    assert_eq!(
        meta.get("common_name").map(String::as_str),
        Some("app.example.com")
    );

    // The login token: database credentials, and nothing else.
    let app = b.vaultrs_as(&auth.client_token);
    let creds = database::role::creds(&app, "database", "app")
        .await
        .unwrap();
    assert!(creds.username.starts_with(&prefix), "{}", creds.username);
    let login = pg_connect(postgres(), &creds.username, &creds.password)
        .await
        .expect("the login the certificate's token received works");
    let one: i32 = login.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(login);
    let (code, _) = api_error("list mounts", sys::mount::list(&app).await);
    assert_eq!(code, 403);
    let (code, _) = api_error(
        "read the cert entry",
        cert::ca_cert_role::read(&app, "cert", "apps").await,
    );
    assert_eq!(code, 403);

    // No certificate, or one whose name the entry does not allow.
    let (code, _) = api_error(
        "no certificate",
        cert::login(&b.vaultrs_as(""), "cert", "apps").await,
    );
    assert_eq!(code, 400);
    let (pem, key, _) = client_cert(&b, "db.example.com").await;
    let (code, _) = api_error(
        "a name the entry does not allow",
        cert::login(&b.vaultrs_with_certificate(&pem, &key), "cert", "apps").await,
    );
    assert_eq!(code, 400);

    // The token's end is its credentials' end.
    token::revoke_self(&app).await.unwrap();
    assert!(!pg_role_exists(&creds.username).await);
    cert::ca_cert_role::delete(&root, "cert", "apps")
        .await
        .unwrap();
    assert!(cert::ca_cert_role::list(&root, "cert").await.is_err());
}

/// hvac, unchanged, against the broker: `tests/hvac/test_tokens.py` drives
/// the token store, policies, capabilities and response wrapping (see the
/// script for the calls), with the root token and with tokens holding
/// one policy (403 where it grants nothing).
#[tokio::test]
async fn hvac_drives_tokens_capabilities_and_wrapping() {
    let b = Broker::start().await;
    run_hvac_script(&b, "test_tokens.py", &[]);
}

/// hvac, unchanged, against AppRole: `tests/hvac/test_approle.py` enables
/// the method, writes a role, hands out a secret id wrapped, logs in as
/// the app and reads database credentials from the role prepared here
/// (and gets 403 elsewhere), manages secret ids, and disables the method,
/// which revokes the login's token and with it the database user.
#[tokio::test]
async fn hvac_drives_approle_with_a_wrapped_secret_id() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    run_hvac_script(
        &b,
        "test_approle.py",
        &[
            ("BROKER_TEST_DB_MOUNT", "database"),
            ("BROKER_TEST_DB_ROLE", "app"),
            ("BROKER_TEST_DB_USER_PREFIX", &prefix),
        ],
    );
    // The script saw its credentials' lease go with the method; the
    // database user went with it.
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
}

/// hvac, unchanged, against the JWT method: `tests/hvac/test_jwt.py`
/// configures it, writes a role, logs in with a JWT signed here and is
/// refused with one for another audience.
#[tokio::test]
async fn hvac_logs_in_with_a_jwt() {
    let b = Broker::start().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
    let now = broker_tests::now();
    let sign = |aud: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &json!({ "sub": "job-7", "aud": aud, "iat": now, "exp": now + 300 }),
            &encoding,
        )
        .unwrap()
    };
    let (jwt, other, pem) = (sign("broker"), sign("elsewhere"), key.public_key_pem());
    run_hvac_script(
        &b,
        "test_jwt.py",
        &[
            ("BROKER_TEST_JWT", jwt.as_str()),
            ("BROKER_TEST_JWT_OTHER", other.as_str()),
            ("BROKER_TEST_JWT_PUBKEY", pem.as_str()),
        ],
    );
}

/// hvac, unchanged, against the cert method over TLS:
/// `tests/hvac/test_cert.py` trusts the CA of the PKI mount prepared here,
/// gets a client certificate from it, logs in with it, reads database
/// credentials from the role prepared here (and gets 403 elsewhere), is
/// refused with a certificate for a name not allowed, and disables the
/// method, which revokes the login's token and with it the database user.
#[tokio::test]
async fn hvac_logs_in_with_a_certificate_from_the_brokers_pki() {
    let b = Broker::start_tls().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    client_pki(&b).await;
    run_hvac_script(
        &b,
        "test_cert.py",
        &[
            ("BROKER_TEST_DB_MOUNT", "database"),
            ("BROKER_TEST_DB_ROLE", "app"),
            ("BROKER_TEST_DB_USER_PREFIX", &prefix),
            ("BROKER_TEST_PKI_MOUNT", "pki"),
            ("BROKER_TEST_PKI_ROLE", "client"),
            ("BROKER_TEST_PKI_DOMAIN", "example.com"),
        ],
    );
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
}
