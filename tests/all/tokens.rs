//! Tokens and policies end to end: a broker process, a real HTTP client,
//! real PostgreSQL and MariaDB. Tokens get only what their policies grant;
//! revoking a token drops the database users its subtree made, even across
//! a kill -9; a child cannot escalate; no token is ever at rest.

use std::time::{Duration, Instant};

use broker_tests::mysql;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{mount_database, mysql_user_exists, pg_users_with_prefix, setup_tagged};
use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// A policy that may read `database/creds/app` and create child tokens.
const APP_POLICY: &str = r#"
path "database/creds/app" { capabilities = ["read"] }
path "database/creds/maria" { capabilities = ["read"] }
path "auth/token/create" { capabilities = ["update"] }
"#;

fn auth(body: &Value) -> (String, String) {
    (
        body["auth"]["client_token"].as_str().unwrap().to_owned(),
        body["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

async fn create_as(b: &Broker, token: &str, body: Value) -> (StatusCode, Value) {
    b.call_as(token, "POST", "auth/token/create", Some(body))
        .await
}

#[tokio::test]
async fn a_token_gets_only_what_its_policies_grant() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let (token, accessor) = b.token_with_policy("app", APP_POLICY).await;

    let creds = b.call_as(&token, "GET", "database/creds/app", None).await;
    assert_eq!(creds.0, StatusCode::OK, "{}", creds.1);
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);
    for (method, path) in [
        ("GET", "database/roles/app"),
        ("GET", "database/config/pg"),
        ("POST", "database/roles/app"),
        ("GET", "sys/mounts"),
        ("LIST", "auth/token/accessors"),
        ("PUT", "sys/policies/acl/app"),
        ("GET", "nowhere/at/all"),
    ] {
        let (status, body) = b
            .call_as(&token, method, path, Some(json!({ "policy": "" })))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(first_error(&body), "permission denied");
    }
    // No token, a made-up token: the same 403.
    for t in ["", "brs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "brb.junk"] {
        let (status, _) = b.call_as(t, "GET", "database/creds/app", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // What the default policy gives: itself.
    let me = b
        .call_as(&token, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(me.0, StatusCode::OK, "{}", me.1);
    assert_eq!(me.1["data"]["policies"], json!(["app", "default"]));
    assert_eq!(me.1["data"]["accessor"], json!(accessor));
    assert_eq!(me.1["data"]["id"], json!(token));
    assert_eq!(me.1["data"]["type"], json!("service"));
    let caps = b
        .call_as(
            &token,
            "POST",
            "sys/capabilities-self",
            Some(json!({ "paths": ["database/creds/app", "database/roles/app"] })),
        )
        .await;
    assert_eq!(caps.0, StatusCode::OK, "{}", caps.1);
    assert_eq!(caps.1["data"]["database/creds/app"], json!(["read"]));
    assert_eq!(caps.1["data"]["database/roles/app"], json!(["deny"]));
    let root_caps = b
        .expect(
            StatusCode::OK,
            "POST",
            "sys/capabilities",
            Some(json!({ "token": b.token, "paths": ["sys/mounts"] })),
        )
        .await;
    assert_eq!(root_caps["data"]["sys/mounts"], json!(["root"]));
    let by_accessor = b
        .expect(
            StatusCode::OK,
            "POST",
            "sys/capabilities-accessor",
            Some(json!({ "accessor": accessor, "paths": "database/creds/app" })),
        )
        .await;
    assert_eq!(by_accessor["data"]["capabilities"], json!(["read"]));

    // A policy change takes effect on the next request (the ACL cache
    // is dropped when a policy is written).
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": "path \"database/roles/*\" { capabilities = [\"read\"] }" })),
    )
    .await;
    assert_eq!(
        b.call_as(&token, "GET", "database/creds/app", None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        b.call_as(&token, "GET", "database/roles/app", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoking_a_parent_by_accessor_drops_its_childrens_database_users() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let s = mysql();
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/maria",
        Some(json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", s.host, s.port),
            "username": s.user, "password": s.password, "allowed_roles": ["maria"],
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/maria",
        Some(json!({
            "db_name": "maria",
            "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        })),
    )
    .await;
    let (parent, parent_accessor) = b.token_with_policy("app", APP_POLICY).await;
    // The parent makes a child, which makes a grandchild; an orphan made
    // by root stands beside them.
    let (status, child) = create_as(&b, &parent, json!({ "policies": ["app"] })).await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let (child, _) = auth(&child);
    let (status, grandchild) = create_as(&b, &child, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{grandchild}");
    let (grandchild, _) = auth(&grandchild);
    let orphan = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create-orphan",
            Some(json!({ "policies": ["app"] })),
        )
        .await;
    let (orphan, _) = auth(&orphan);

    let mut maria_users = Vec::new();
    for token in [&parent, &child, &grandchild, &orphan] {
        let (status, body) = b.call_as(token, "GET", "database/creds/app", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = b.call_as(token, "GET", "database/creds/maria", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        maria_users.push(body["data"]["username"].as_str().unwrap().to_owned());
    }
    assert_eq!(pg_users_with_prefix(&prefix).await, 4);
    for user in &maria_users {
        assert!(mysql_user_exists(user).await);
    }

    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({ "accessor": parent_accessor })),
    )
    .await;
    // Every user the tree made is gone, in both databases; the orphan's stay.
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);
    for user in &maria_users[..3] {
        assert!(!mysql_user_exists(user).await, "{user} outlived its token");
    }
    assert!(mysql_user_exists(&maria_users[3]).await);
    for token in [&parent, &child, &grandchild] {
        let (status, _) = b
            .call_as(token, "GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        b.call_as(&orphan, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::OK
    );
    // Revoking again is no error; an unknown accessor is.
    let (status, body) = b
        .call(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({ "accessor": parent_accessor })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/token/revoke",
        Some(json!({ "token": parent })),
    )
    .await;
    // As in Vault, looking up a token that is gone is a 403 "bad token".
    let (status, body) = b
        .call("POST", "auth/token/lookup", Some(json!({ "token": child })))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(first_error(&body), "bad token");
}

#[tokio::test]
async fn revoke_orphan_keeps_the_children_and_revoke_self_ends_the_caller() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let (parent, _) = b.token_with_policy("app", APP_POLICY).await;
    let (_, child) = create_as(&b, &parent, json!({})).await;
    let (child, child_accessor) = auth(&child);
    for token in [&parent, &child] {
        assert_eq!(
            b.call_as(token, "GET", "database/creds/app", None).await.0,
            StatusCode::OK
        );
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/token/revoke-orphan",
        Some(json!({ "token": parent })),
    )
    .await;
    assert_eq!(
        pg_users_with_prefix(&prefix).await,
        1,
        "the child's user stays"
    );
    let me = b
        .call_as(&child, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(me.0, StatusCode::OK);
    assert_eq!(me.1["data"]["orphan"], json!(true));
    assert_eq!(me.1["data"]["accessor"], json!(child_accessor));
    let (status, _) = b
        .call_as(&child, "POST", "auth/token/revoke-self", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
    assert_eq!(
        b.call_as(&child, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_child_cannot_escalate() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/admin",
        Some(json!({ "policy": "path \"sys/*\" { capabilities = [\"sudo\", \"read\", \"update\"] }" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": APP_POLICY })),
    )
    .await;
    let parent = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["app"], "explicit_max_ttl": "1h" })),
        )
        .await;
    let (parent, _) = auth(&parent);
    for (body, why) in [
        (
            json!({ "policies": ["admin"] }),
            "a policy the parent lacks",
        ),
        (json!({ "policies": ["app", "admin"] }), "one more policy"),
        (
            json!({ "policies": "app,admin" }),
            "one more, comma-separated",
        ),
        (json!({ "policies": ["root"] }), "root"),
        (json!({ "policies": [" ROOT"] }), "root, spelled oddly"),
        (json!({ "policies": ["Root "] }), "root, spelled oddly"),
        (
            json!({ "explicit_max_ttl": "2h" }),
            "a longer explicit max TTL",
        ),
        (json!({ "no_parent": true }), "an orphan without sudo"),
        (json!({ "id": "my-own-token" }), "a chosen id without sudo"),
    ] {
        let (status, reply) = create_as(&b, &parent, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {body} gave {reply}");
    }
    // What it may do: a subset, no longer than itself.
    let (status, child) =
        create_as(&b, &parent, json!({ "policies": ["app"], "ttl": "10m" })).await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_eq!(child["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(child["auth"]["lease_duration"], json!(600));
    let (status, child) = create_as(&b, &parent, json!({ "ttl": "5h" })).await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert!(
        child["auth"]["lease_duration"].as_u64().unwrap() <= 3600,
        "a child is bounded by its parent's max: {child}"
    );
    // Nor can a non-root caller write a role that hands out root.
    let roles_policy = "path \"auth/token/roles/*\" { capabilities = [\"create\", \"update\"] }";
    let (writer, _) = b.token_with_policy("roles", roles_policy).await;
    let (status, body) = b
        .call_as(
            &writer,
            "POST",
            "auth/token/roles/escalate",
            Some(json!({ "allowed_policies": ["root"] })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn batch_tokens_work_without_being_stored_and_die_with_their_parent() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let (parent, parent_accessor) = b.token_with_policy("app", APP_POLICY).await;
    let (status, batch) = create_as(&b, &parent, json!({ "type": "batch", "ttl": "10m" })).await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(batch["auth"]["token_type"], json!("batch"));
    assert_eq!(batch["auth"]["renewable"], json!(false));
    let (batch, _) = auth(&batch);
    assert!(batch.starts_with("brb."));
    let creds = b.call_as(&batch, "GET", "database/creds/app", None).await;
    assert_eq!(creds.0, StatusCode::OK, "{}", creds.1);
    assert!(creds.1["lease_duration"].as_u64().unwrap() <= 600);
    let me = b
        .call_as(&batch, "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(me.1["data"]["type"], json!("batch"));
    // No children, no renewal.
    let (status, _) = create_as(&b, &batch, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = b
        .call_as(&batch, "POST", "auth/token/renew-self", None)
        .await;
    assert_ne!(status, StatusCode::OK);
    // A tampered batch token is no token.
    let mut tampered = batch.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        b.call_as(&tampered, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Its lease belongs to its parent: revoking the parent drops the user
    // and ends the batch token.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({ "accessor": parent_accessor })),
    )
    .await;
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
    assert_eq!(
        b.call_as(&batch, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn tokens_expire_renew_and_run_out_of_uses() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": APP_POLICY })),
    )
    .await;
    let short = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["app"], "ttl": "3s", "explicit_max_ttl": "1h" })),
        )
        .await;
    let (short, short_accessor) = auth(&short);
    assert_eq!(
        b.call_as(&short, "GET", "database/creds/app", None).await.0,
        StatusCode::OK
    );
    // Renewed by accessor, it lives on past its first TTL.
    let renewed = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/renew-accessor",
            Some(json!({ "accessor": short_accessor, "increment": "4s" })),
        )
        .await;
    assert_eq!(renewed["auth"]["client_token"], json!(""), "{renewed}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        b.call_as(&short, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::OK
    );
    // Then it expires, and the worker revokes its lease's user.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg_users_with_prefix(&prefix).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the expired token's user is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        b.call_as(&short, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // Two uses: the second is the last.
    let limited = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["app"], "num_uses": 2 })),
        )
        .await;
    let (limited, _) = auth(&limited);
    for _ in 0..2 {
        assert_eq!(
            b.call_as(&limited, "GET", "auth/token/lookup-self", None)
                .await
                .0,
            StatusCode::OK
        );
    }
    assert_eq!(
        b.call_as(&limited, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn wrapped_responses_unwrap_once() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    // A wrap TTL that does not parse is refused before anything is made.
    let (status, _, body) = b
        .call_with(
            &b.token,
            &[("X-Vault-Wrap-TTL", "soon")],
            "GET",
            "database/creds/app",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
    let (_, headers, wrapped) = b
        .call_with(
            &b.token,
            &[("X-Vault-Wrap-TTL", "5m")],
            "GET",
            "database/creds/app",
            None,
        )
        .await;
    drop(headers);
    assert!(wrapped["data"].is_null(), "{wrapped}");
    let info = &wrapped["wrap_info"];
    assert_eq!(info["ttl"], json!(300));
    assert_eq!(info["creation_path"], json!("database/creds/app"));
    let wrapping = info["token"].as_str().unwrap().to_owned();
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);

    let looked = b
        .call_as(
            "",
            "POST",
            "sys/wrapping/lookup",
            Some(json!({ "token": wrapping })),
        )
        .await;
    assert_eq!(looked.0, StatusCode::OK, "{}", looked.1);
    assert_eq!(looked.1["data"]["creation_ttl"], json!(300));
    // Unwrapped with the wrapping token itself: the credential, once.
    let (status, unwrapped) = b
        .call_as(&wrapping, "POST", "sys/wrapping/unwrap", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{unwrapped}");
    assert!(
        unwrapped["data"]["username"]
            .as_str()
            .unwrap()
            .starts_with(&prefix)
    );
    assert!(
        unwrapped["lease_id"]
            .as_str()
            .unwrap()
            .starts_with("database/creds/app/")
    );
    let (status, again) = b
        .call_as(&wrapping, "POST", "sys/wrapping/unwrap", None)
        .await;
    assert_ne!(status, StatusCode::OK, "{again}");
    let (status, again) = b
        .call(
            "POST",
            "sys/wrapping/unwrap",
            Some(json!({ "token": wrapping })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");

    // sys/wrapping/wrap, unwrapped by another token with the token in the body.
    let (_, _, wrapped) = b
        .call_with(
            &b.token,
            &[("X-Vault-Wrap-TTL", "1s")],
            "POST",
            "sys/wrapping/wrap",
            Some(json!({ "api_key": "s3cr3t" })),
        )
        .await;
    let short = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    let (_, _, wrapped) = b
        .call_with(
            &b.token,
            &[],
            "POST",
            "sys/wrapping/wrap",
            Some(json!({ "api_key": "k" })),
        )
        .await;
    assert_eq!(
        wrapped["wrap_info"]["ttl"],
        json!(300),
        "the default wrap TTL"
    );
    let rewrap = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    let (status, rewrapped) = b
        .call(
            "POST",
            "sys/wrapping/rewrap",
            Some(json!({ "token": rewrap })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rewrapped}");
    let fresh = rewrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, rewrap);
    let (status, _) = b
        .call(
            "POST",
            "sys/wrapping/unwrap",
            Some(json!({ "token": rewrap })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the rewrapped token is spent"
    );
    let (status, data) = b
        .call(
            "POST",
            "sys/wrapping/unwrap",
            Some(json!({ "token": fresh })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(data["data"]["api_key"], json!("k"));
    // An expired wrapping token is gone.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = b
        .call(
            "POST",
            "sys/wrapping/unwrap",
            Some(json!({ "token": short })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn raw_storage_holds_no_token() {
    let mut b = Broker::start().await;
    mount_database(&b).await;
    let (service, _) = b.token_with_policy("app", APP_POLICY).await;
    let (_, child) = create_as(&b, &service, json!({})).await;
    let (child, _) = auth(&child);
    let batch = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({ "type": "batch" })),
        )
        .await;
    let (batch, _) = auth(&batch);
    let chosen = "my-chosen-token-value-0123456789";
    b.expect(
        StatusCode::OK,
        "POST",
        "auth/token/create",
        Some(json!({ "id": chosen })),
    )
    .await;
    let (_, _, wrapped) = b
        .call_with(
            &b.token,
            &[("X-Vault-Wrap-TTL", "5m")],
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["app"] })),
        )
        .await;
    let wrapping = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    b.stop().await;
    let dir = b.config.parent().unwrap().to_owned();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("broker.db") {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for token in [
            &b.token,
            &service,
            &child,
            &batch,
            &wrapping,
            &chosen.to_owned(),
        ] {
            // The token, or its random part alone.
            let body = token
                .split_once('.')
                .map_or(token.as_str(), |(_, rest)| rest);
            assert!(
                !bytes.windows(body.len()).any(|w| w == body.as_bytes()),
                "{name} holds a token"
            );
        }
    }
    assert!(files > 0, "no storage files in {}", dir.display());
}

/// Revoking a token with 200 leases, killed halfway: after the restart the
/// expiration worker finishes the job and every user is gone.
#[tokio::test]
async fn a_revocation_killed_halfway_finishes_after_restart() {
    let mut b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    // Slow revocations, so there is a halfway to kill it at.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({
            "db_name": "pg",
            "creation_statements": [PG_CREATE],
            "revocation_statements": ["SELECT pg_sleep(0.1)", "DROP ROLE IF EXISTS \"{{name}}\""],
        })),
    )
    .await;
    let (token, accessor) = b.token_with_policy("app", APP_POLICY).await;
    for _ in 0..200 {
        let (status, body) = b.call_as(&token, "GET", "database/creds/app", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(pg_users_with_prefix(&prefix).await, 200);
    let revoke = {
        let http = b.http.clone();
        let url = format!("{}/auth/token/revoke-accessor", b.base);
        let root = b.token.clone();
        tokio::spawn(async move {
            http.post(url)
                .header("X-Vault-Token", root)
                .json(&json!({ "accessor": accessor }))
                .send()
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let left_at_kill = loop {
        let left = pg_users_with_prefix(&prefix).await;
        if left < 190 {
            break left;
        }
        assert!(Instant::now() < deadline, "the revocation did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    b.kill();
    let _ = revoke.await;
    assert!(left_at_kill > 0, "the revocation finished before the kill");
    // The token is already unusable; after the restart, the worker
    // finishes what the kill interrupted.
    b.start_again().await;
    assert_eq!(
        b.call_as(&token, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = pg_users_with_prefix(&prefix).await;
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} of the token's users outlived its revocation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leases = b
        .call("LIST", "sys/leases/lookup/database/creds/app", None)
        .await;
    assert_eq!(leases.0, StatusCode::NOT_FOUND, "{}", leases.1);
}

/// The audit log names each request's token by accessor, policies and
/// type, and never holds a token in clear: not the caller's, not one it
/// was handed, not a wrapping token (the class of CVE-2024-8365).
#[tokio::test]
async fn the_audit_log_names_tokens_but_never_holds_one() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let b = Broker::start_with(
        None,
        &crate::audit::audit_config(logs.path(), &[("file", log.to_str().unwrap())]),
    )
    .await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    let (token, accessor) = b.token_with_policy("app", APP_POLICY).await;
    let (_, child) = create_as(&b, &token, json!({ "display_name": "worker" })).await;
    let (child, _) = auth(&child);
    let batch = create_as(&b, &token, json!({ "type": "batch" })).await.1;
    let (batch, _) = auth(&batch);
    assert_eq!(
        b.call_as(&child, "GET", "database/creds/app", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        b.call_as(&batch, "GET", "database/roles/app", None).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, _, wrapped) = b
        .call_with(
            &token,
            &[("X-Vault-Wrap-TTL", "1m")],
            "POST",
            "auth/token/create",
            Some(json!({})),
        )
        .await;
    let wrapping = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    let (status, unwrapped) = b
        .call_as(&wrapping, "POST", "sys/wrapping/unwrap", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{unwrapped}");
    let (wrapped_child, _) = auth(&unwrapped);
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [&b.token, &token, &child, &batch, &wrapping, &wrapped_child] {
        let body = secret
            .split_once('.')
            .map_or(secret.as_str(), |(_, rest)| rest);
        assert!(!text.contains(body), "a token is in the audit log in clear");
    }
    let entries = crate::audit::entries(&log);
    // The child's read: its display name, policies and type, its accessor
    // HMAC'd like its token.
    let read = entries
        .iter()
        .find(|e| {
            e["type"] == "request"
                && e["request"]["path"] == "database/creds/app"
                && e["auth"]["display_name"] == "token-worker"
        })
        .expect("the child's request is on record");
    assert_eq!(read["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(read["auth"]["token_type"], json!("service"));
    assert!(
        read["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert_ne!(read["auth"]["accessor"], json!(accessor));
    let denied = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "database/roles/app"
                && e["auth"]["token_type"] == "batch"
        })
        .expect("the batch token's refusal is on record");
    assert_eq!(denied["response"]["status"], json!(403));
    let handed_out = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "auth/token/create"
                && !e["response"]["auth"].is_null()
        })
        .expect("a token creation's response is on record");
    assert!(
        handed_out["response"]["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{handed_out}"
    );
    assert_eq!(
        handed_out["response"]["auth"]["policies"],
        json!(["app", "default"])
    );
}

/// Choosing the id of a token that exists is refused, and leaves the
/// existing token's life as it was: it still expires, and its leases go.
#[tokio::test]
async fn a_chosen_id_never_takes_over_an_existing_token() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": APP_POLICY })),
    )
    .await;
    let chosen = "chosen-token-0123456789abcdef";
    b.expect(
        StatusCode::OK,
        "POST",
        "auth/token/create",
        Some(json!({ "id": chosen, "policies": ["app"], "ttl": "2s" })),
    )
    .await;
    assert_eq!(
        b.call_as(chosen, "GET", "database/creds/app", None).await.0,
        StatusCode::OK
    );
    let (status, body) = b
        .call(
            "POST",
            "auth/token/create",
            Some(json!({ "id": chosen, "policies": ["app"], "ttl": "1h" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg_users_with_prefix(&prefix).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the first token's lease was taken over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        b.call_as(chosen, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}
