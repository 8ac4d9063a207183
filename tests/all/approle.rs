//! AppRole end to end: enabled through `sys/auth`, a secret id delivered
//! wrapped, a login whose token reads database credentials and nothing
//! else; every bad secret id refused with the same answer; lockout; and
//! disabling the method revoking its tokens and their database users.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pg_users_with_prefix, setup_tagged};
use crate::process::{Broker, first_error};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

const LOCKOUT: &str = "[auth.lockout]\nthreshold = 3\nduration = \"3s\"\ncounter_reset = \"1m\"\n";

/// Enables AppRole at `auth/approle`, policy `app` (creds of role `app`),
/// and role `web` holding it.
async fn setup(b: &Broker, role: Value) {
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/auth/approle",
        Some(json!({ "type": "approle" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": "path \"database/creds/app\" { capabilities = [\"read\"] }" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/web",
        Some(role),
    )
    .await;
}

/// Role `role`'s role id.
pub async fn role_id(b: &Broker, role: &str) -> String {
    b.expect(
        StatusCode::OK,
        "GET",
        &format!("auth/approle/role/{role}/role-id"),
        None,
    )
    .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A new secret id for role `role` (made with `body`), and its accessor.
pub async fn secret_id(b: &Broker, role: &str, body: Value) -> (String, String) {
    let v = b
        .expect(
            StatusCode::OK,
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            Some(body),
        )
        .await;
    (
        v["data"]["secret_id"].as_str().unwrap().to_owned(),
        v["data"]["secret_id_accessor"].as_str().unwrap().to_owned(),
    )
}

async fn login(b: &Broker, role_id: &str, secret_id: &str) -> (StatusCode, Value) {
    b.call_as(
        "",
        "POST",
        "auth/approle/login",
        Some(json!({ "role_id": role_id, "secret_id": secret_id })),
    )
    .await
}

#[tokio::test]
async fn an_app_logs_in_with_a_wrapped_secret_id_and_gets_only_its_policy() {
    let b = Broker::start().await;
    let prefix = setup_tagged(&b, "app", json!([PG_CREATE])).await;
    setup(
        &b,
        json!({ "token_policies": "app", "token_ttl": "10m", "secret_id_ttl": "1h" }),
    )
    .await;
    let methods = b.expect(StatusCode::OK, "GET", "sys/auth", None).await;
    assert_eq!(methods["data"]["approle/"]["type"], json!("approle"));
    assert_eq!(methods["data"]["token/"]["type"], json!("token"));

    let role_id = role_id(&b, "web").await;
    // The secret id travels wrapped: whoever carries it sees a wrapping token.
    let (_, _, wrapped) = b
        .call_with(
            &b.token,
            &[("X-Vault-Wrap-TTL", "2m")],
            "POST",
            "auth/approle/role/web/secret-id",
            None,
        )
        .await;
    let wrapping = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    assert!(wrapped["data"].is_null());
    let (status, unwrapped) = b
        .call_as(&wrapping, "POST", "sys/wrapping/unwrap", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{unwrapped}");
    let secret = unwrapped["data"]["secret_id"].as_str().unwrap().to_owned();

    let (status, body) = login(&b, &role_id, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(body["auth"]["lease_duration"], json!(600));
    assert_eq!(body["auth"]["metadata"]["role_name"], json!("web"));
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, creds) = b.call_as(&token, "GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    assert_eq!(pg_users_with_prefix(&prefix).await, 1);
    for (method, path) in [
        ("GET", "database/roles/app"),
        ("GET", "auth/approle/role/web/role-id"),
        ("POST", "auth/approle/role/web/secret-id"),
        ("GET", "sys/auth"),
    ] {
        let (status, _) = b.call_as(&token, method, path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let me = b
        .call_as(&token, "GET", "auth/token/lookup-self", None)
        .await
        .1;
    assert_eq!(me["data"]["path"], json!("auth/approle/login"));
    assert_eq!(me["data"]["meta"]["role_name"], json!("web"));

    // Disabling the method revokes its tokens, and so their database users.
    b.expect(StatusCode::NO_CONTENT, "DELETE", "sys/auth/approle", None)
        .await;
    assert_eq!(pg_users_with_prefix(&prefix).await, 0);
    assert_eq!(
        b.call_as(&token, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // The method is gone: a path no one may reach without a token, as in Vault.
    let (status, _) = login(&b, &role_id, &secret).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_secret_ids_are_refused_alike() {
    let b = Broker::start().await;
    setup(&b, json!({ "token_policies": "app" })).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/other",
        Some(json!({ "token_policies": "app" })),
    )
    .await;
    let role_id = role_id(&b, "web").await;
    let refusal = |body: &Value| first_error(body);
    let (good, _) = secret_id(&b, "web", json!({})).await;

    let mut answers = Vec::new();
    // Wrong secret id, wrong role id, another role's secret id.
    answers.push(login(&b, &role_id, "not-a-secret-id").await);
    answers.push(login(&b, "not-a-role-id", &good).await);
    let (others, _) = secret_id(&b, "other", json!({})).await;
    answers.push(login(&b, &role_id, &others).await);
    // Expired.
    let (expiring, _) = secret_id(&b, "web", json!({ "ttl": "1s" })).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    answers.push(login(&b, &role_id, &expiring).await);
    // Used up.
    let (once, _) = secret_id(&b, "web", json!({ "num_uses": 1 })).await;
    assert_eq!(login(&b, &role_id, &once).await.0, StatusCode::OK);
    answers.push(login(&b, &role_id, &once).await);
    // Destroyed, by accessor.
    let (destroyed, accessor) = secret_id(&b, "web", json!({})).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/web/secret-id-accessor/destroy",
        Some(json!({ "secret_id_accessor": accessor })),
    )
    .await;
    answers.push(login(&b, &role_id, &destroyed).await);
    // Out of its network.
    let (fenced, _) = secret_id(&b, "web", json!({ "cidr_list": "10.0.0.0/8" })).await;
    answers.push(login(&b, &role_id, &fenced).await);
    // No secret id at all.
    answers.push(
        b.call_as(
            "",
            "POST",
            "auth/approle/login",
            Some(json!({ "role_id": role_id })),
        )
        .await,
    );
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(refusal(body), "invalid role ID or secret ID");
    }
    // The good one still works: the default lockout threshold is 5, and
    // the role's count started over at the successful login above.
    assert_eq!(login(&b, &role_id, &good).await.0, StatusCode::OK);

    // One role's accessor never reaches another role's secret id.
    let (theirs, their_accessor) = secret_id(&b, "other", json!({})).await;
    let (status, body) = b
        .call(
            "POST",
            "auth/approle/role/web/secret-id-accessor/destroy",
            Some(json!({ "secret_id_accessor": their_accessor })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = b
        .call(
            "POST",
            "auth/approle/role/web/secret-id-accessor/lookup",
            Some(json!({ "secret_id_accessor": their_accessor })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let other_id = crate::approle::role_id(&b, "other").await;
    assert_eq!(login(&b, &other_id, &theirs).await.0, StatusCode::OK);

    // Secret ids are never at rest.
    let lookup = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/approle/role/web/secret-id/lookup",
            Some(json!({ "secret_id": good })),
        )
        .await;
    assert!(lookup["data"]["secret_id"].is_null());
    assert!(!lookup.to_string().contains(&good));
}

#[tokio::test]
async fn repeated_failures_lock_the_role_and_the_lock_lifts() {
    let b = Broker::start_with(None, LOCKOUT).await;
    setup(&b, json!({ "token_policies": "app" })).await;
    let role_id = role_id(&b, "web").await;
    let (good, _) = secret_id(&b, "web", json!({})).await;
    // Three failures, the role id spelled three ways: one identity.
    for spelling in [
        role_id.clone(),
        role_id.to_uppercase(),
        format!(" {role_id} "),
    ] {
        assert_eq!(
            login(&b, &spelling, "wrong").await.0,
            StatusCode::BAD_REQUEST
        );
    }
    let (status, body) = login(&b, &role_id, &good).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "locked: {body}");
    assert_eq!(first_error(&body), "invalid role ID or secret ID");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, body) = login(&b, &role_id, &good).await;
    assert_eq!(status, StatusCode::OK, "the lock lifts: {body}");
}

#[tokio::test]
async fn roles_without_secret_ids_are_bound_to_networks() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/auth/approle",
        Some(json!({ "type": "approle" })),
    )
    .await;
    let (status, body) = b
        .call(
            "POST",
            "auth/approle/role/open",
            Some(json!({ "bind_secret_id": false })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/local",
        Some(
            json!({ "bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8",
            "token_bound_cidrs": ["10.0.0.0/8"] }),
        ),
    )
    .await;
    let role_id = role_id(&b, "local").await;
    let (status, body) = b
        .call_as(
            "",
            "POST",
            "auth/approle/login",
            Some(json!({ "role_id": role_id })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Its token is bound to 10.0.0.0/8: from here it is no token.
    let token = body["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        b.call_as(token, "GET", "auth/token/lookup-self", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // A secret id's own token_bound_cidrs bind the tokens it logs in for.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "auth/approle/role/web",
        Some(json!({ "token_policies": "default" })),
    )
    .await;
    let web = crate::approle::role_id(&b, "web").await;
    for (cidrs, usable) in [("10.0.0.0/8", false), ("127.0.0.1/32", true)] {
        let (secret, _) = secret_id(&b, "web", json!({ "token_bound_cidrs": cidrs })).await;
        let (status, body) = login(&b, &web, &secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["auth"]["client_token"].as_str().unwrap();
        let (status, _) = b
            .call_as(token, "GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(status == StatusCode::OK, usable, "{cidrs}");
    }
}
