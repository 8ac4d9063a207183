//! The OpenAPI document at `sys/internal/specs/openapi` is true to the
//! routes: every operation it lists is routed (never 404 "no handler" or
//! 405), and every operation it leaves out of a listed path answers 405.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{Broker, first_error};

/// A value for each path parameter the document uses.
fn fill(path: &str) -> String {
    path.replace("{path}", "scratch")
        .replace("{name}", "pg")
        .replace("{role}", "readonly")
        .replace("{prefix}", "database/creds/readonly")
        .replace("{lease_id}", "database/creds/readonly/0123abcd")
        .replace("{serial}", "ca")
}

fn routed(status: StatusCode, body: &Value) -> bool {
    status != StatusCode::METHOD_NOT_ALLOWED
        && !(status == StatusCode::NOT_FOUND && first_error(body).contains("no handler"))
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({ "type": "database" })),
    )
    .await;
    // A connection that is never reached: rotate-root and creds fail
    // cleanly instead of touching a real admin account.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
            "username": "admin", "password": "unused", "allowed_roles": "*",
            "verify_connection": false,
        })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/readonly",
        Some(json!({ "db_name": "pg", "creation_statements": "SELECT 1" })),
    )
    .await;

    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/pki",
        Some(json!({ "type": "pki" })),
    )
    .await;
    b.expect(
        StatusCode::OK,
        "POST",
        "pki/root/generate/internal",
        Some(json!({ "common_name": "OpenAPI Root" })),
    )
    .await;

    // KV, both versions: version 2's tables are its own, chosen by the
    // mount's options.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/secret",
        Some(json!({ "type": "kv-v2" })),
    )
    .await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/kv1",
        Some(json!({ "type": "kv" })),
    )
    .await;

    let doc = b
        .expect(StatusCode::OK, "GET", "sys/internal/specs/openapi", None)
        .await;
    assert_eq!(doc["openapi"], "3.0.2");
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/sys/mounts/{path}/tune",
        "/sys/leases/revoke-prefix/{prefix}",
        "/database/creds/{role}",
        "/database/rotate-root/{name}",
        "/pki/issue/{role}",
        "/pki/crl/pem",
        "/sys/audit-hash/{path}",
        "/secret/data/{path}",
        "/secret/metadata/{path}",
        "/secret/metadata/{path}/",
        "/secret/config",
        "/kv1/{path}",
        "/kv1/{path}/",
        "/kv1/",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }

    let mut checked = 0;
    for (path, item) in paths {
        let item = item.as_object().unwrap();
        let concrete = fill(path.trim_start_matches('/'));
        // What the document promises.
        let mut promised = Vec::new();
        // The summary and path parameters are the path item's, once.
        assert!(
            item["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{path}"
        );
        for (method, op) in item.iter().filter(|(k, _)| {
            !matches!(k.as_str(), "summary" | "description" | "parameters") && !k.starts_with("x-")
        }) {
            let lists = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "list" && p["in"] == "query"));
            let verb = match (method.as_str(), lists) {
                ("get", true) => "LIST",
                ("get", false) => "GET",
                ("post", _) => "POST",
                ("delete", _) => "DELETE",
                ("patch", _) => "PATCH",
                (other, _) => panic!("{path}: unexpected method {other}"),
            };
            promised.push(verb);
        }
        // A path read and listed documents its list on the path with a
        // trailing `/`; its other operations are the item without it.
        let list_form =
            path.ends_with('/') && path.len() > 1 && paths.contains_key(path.trim_end_matches('/'));
        if list_form {
            assert_eq!(promised, ["LIST"], "{path}: a list form lists only");
        }
        for verb in ["GET", "LIST", "POST", "PATCH", "DELETE"] {
            let listed_apart = verb == "LIST" && paths.contains_key(&format!("{path}/"));
            if (list_form && verb != "LIST") || listed_apart {
                continue;
            }
            // Sealing would answer every later call with 503 (the api tests
            // seal a broker of their own).
            if path.as_str() == "/sys/seal" && verb == "POST" {
                assert!(promised.contains(&verb), "sys/seal takes a write");
                continue;
            }
            let (status, headers, body) = if verb == "LIST" {
                b.call_full("GET", &format!("{concrete}?list=true"), None)
                    .await
            } else {
                b.call_full(verb, &concrete, None).await
            };
            if promised.contains(&verb) {
                assert!(
                    routed(status, &body),
                    "{verb} {path} is documented but answers {status}: {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{verb} {path} is not documented but answers {status}: {body}"
                );
                // The 405 says what the path takes (RFC 9110's Allow).
                let allow = headers
                    .get("allow")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                for promised in &promised {
                    let method = if *promised == "LIST" {
                        "LIST"
                    } else {
                        promised
                    };
                    assert!(
                        allow.split(", ").any(|m| m == method),
                        "{verb} {path}: Allow {allow:?} lacks {method}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 5 * 40, "only {checked} checks");

    // A mount the document does not know is not routed.
    let (status, body) = b.call("GET", "elsewhere/creds/x", None).await;
    assert!(!routed(status, &body), "{status} {body}");
}

#[tokio::test]
async fn the_document_stays_small_at_a_thousand_mounts() {
    let b = Broker::start().await;
    let mut last = 0;
    let mut sizes = Vec::new();
    for i in 0..1000 {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("sys/mounts/db{i}"),
            Some(json!({ "type": if i % 2 == 0 { "database" } else { "pki" } })),
        )
        .await;
        if i == 0 || i == 999 {
            let text = b
                .http
                .get(format!("{}/sys/internal/specs/openapi", b.base))
                .header("X-Vault-Token", &b.token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let doc: Value = serde_json::from_slice(&text).unwrap();
            let role = &doc["paths"][format!("/db{i}/roles/{{name}}")];
            assert!(role["post"].is_object(), "db{i}'s roles are documented");
            sizes.push(text.len());
            last = text.len();
        }
    }
    let per_mount = (sizes[1] - sizes[0]) / 999;
    // Was 6.5 MB at a thousand mounts: every operation inlined its body
    // schema and responses. 3.9 MB with shared bodies; then every operation
    // gained its documented refusals (a shared `default` response); 5.6 MB
    // once database mounts gained static roles (three paths each); 6.2 MB
    // once pki mounts gained config/crl.
    assert!(
        last < 6_500_000,
        "{last} bytes at 1000 mounts ({per_mount} per mount)"
    );
}

/// `?help=1` answers from the same table entry that routes the path: its
/// pattern, operations and fields. A read of nothing is Vault's empty 404,
/// and a field of the wrong type is refused with its name, not its value.
#[tokio::test]
async fn help_and_field_checks_come_from_the_tables() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/mounts/database",
        Some(json!({ "type": "database" })),
    )
    .await;
    let help = b
        .expect(StatusCode::OK, "GET", "database/roles/app?help=1", None)
        .await;
    let text = help["help"].as_str().unwrap();
    for expected in [
        "Matching Route: roles/{name}",
        "read, create, update, delete",
        "db_name",
        "creation_statements",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let help = b
        .expect(
            StatusCode::OK,
            "GET",
            "sys/mounts/database/tune?help=1",
            None,
        )
        .await;
    assert!(
        help["help"].as_str().unwrap().contains("max_lease_ttl"),
        "{help}"
    );
    // Help needs a token, as every path but the open ones.
    let anonymous = b
        .http
        .get(format!("{}/database/roles/app?help=1", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    // A path no table has: 404, help or not.
    let (status, _) = b.call("GET", "database/nothing/here?help=1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A role that does not exist: Vault's empty 404.
    let (status, body) = b.call("GET", "database/roles/missing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errors"], json!([]), "{body}");

    // A secret field of the wrong type: its name, never its value.
    let (status, body) = b
        .call(
            "POST",
            "database/config/pg",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": ["postgresql://admin:s3cret-in-a-list@db/x"],
                "verify_connection": false,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = first_error(&body);
    assert!(message.contains("connection_url"), "{message}");
    assert!(!body.to_string().contains("s3cret"), "{body}");
    // PATCH is its own operation: a path that does not declare it is a 405.
    let (status, _) = b.call("PATCH", "database/roles/app", Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
