//! Password policies over HTTP (`sys/policies/password`), and database
//! passwords made from them by the broker: each issued password meets its
//! config's policy and logs in to the real PostgreSQL and MariaDB, a
//! MariaDB with `simple_password_check` included.

use base64::Engine;
use broker::policy::PasswordPolicy;
use broker_tests::{PrivateMariaDb, pg_connect, postgres};
use mysql_async::prelude::Queryable;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{mount_database, pg_url};
use crate::process::{Broker, first_error};

/// Every printable ASCII character but the space, with a minimum of each
/// class: the hardest characters to quote, in every password.
const SYMBOLS: &str = r##"
# marker-5c1e: every class, and every symbol quoting can trip on.
length = 32
rule "charset" {
  charset   = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 2
}
rule "charset" {
  charset   = "0123456789"
  min-chars = 2
}
rule "charset" {
  charset   = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
  min-chars = 4
}
"##;

/// [`SYMBOLS`] without `$`, which the SDK's templates refuse in any
/// PostgreSQL value (it could open or close a dollar-quoted body).
fn pg_symbols() -> String {
    SYMBOLS.replace("!\\\"#$%", "!\\\"#%")
}

fn parsed(text: &str) -> PasswordPolicy {
    PasswordPolicy::parse(text).unwrap()
}

/// Every byte of the SQLite database (the main file and its WAL).
fn storage_bytes(b: &Broker) -> Vec<u8> {
    let dir = b.config.parent().unwrap();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("broker.db") {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

#[tokio::test]
async fn password_policies_are_written_read_listed_generated_and_deleted() {
    let mut b = Broker::start().await;
    // None yet: an empty 404, as Vault answers an empty list.
    let (status, _) = b.call("LIST", "sys/policies/password", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/password/Symbols",
        Some(json!({ "policy": SYMBOLS })),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/password/Symbols", None)
        .await;
    assert_eq!(read["data"]["policy"], SYMBOLS, "the text as written");
    // As Vault takes it: base64 to spare escaping, and the JSON form.
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "sys/policies/password/encoded",
        Some(json!({ "policy": base64::engine::general_purpose::STANDARD.encode(SYMBOLS) })),
    )
    .await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/password/encoded", None)
        .await;
    assert_eq!(read["data"]["policy"], SYMBOLS);
    let json_form = r#"{"length": 6, "rule": [{"charset": {"charset": "xyz", "min-chars": 6}}]}"#;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/password/json",
        Some(json!({ "policy": json_form })),
    )
    .await;
    let list = b
        .expect(StatusCode::OK, "LIST", "sys/policies/password", None)
        .await;
    assert_eq!(list["data"]["keys"], json!(["Symbols", "encoded", "json"]));

    let policy = parsed(SYMBOLS);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let generated = b
            .expect(
                StatusCode::OK,
                "GET",
                "sys/policies/password/Symbols/generate",
                None,
            )
            .await;
        let password = generated["data"]["password"].as_str().unwrap().to_owned();
        assert!(policy.is_satisfied_by(&password), "{password}");
        seen.insert(password);
    }
    assert_eq!(seen.len(), 50, "every password is new");
    let generated = b
        .expect(
            StatusCode::OK,
            "GET",
            "sys/policies/password/json/generate",
            None,
        )
        .await;
    let password = generated["data"]["password"].as_str().unwrap();
    assert!(password.len() == 6 && password.chars().all(|c| "xyz".contains(c)));

    // A policy that does not parse, or cannot be met, is refused with the
    // reason, and the stored one is left as it was.
    for (text, reason) in [
        ("length = 20", "at least one rule \"charset\" is required"),
        (
            "length = 2\nrule \"charset\" {\n  charset = \"ab\"\n}",
            "from 4 to 100",
        ),
        (
            "length = 1000\nrule \"charset\" {\n  charset = \"ab\"\n}",
            "from 4 to 100",
        ),
        (
            "length = 8\nrule \"charset\" {\n  charset = \"\"\n}",
            "charset is empty",
        ),
        (
            "length = 8\nrule \"charset\" {\n  charset = \"αβγ\"\n}",
            "not ASCII",
        ),
        (
            "length = 8\nrule \"regex\" {\n  charset = \"ab\"\n}",
            "unknown rule type",
        ),
        (
            "length = 4\nrule \"charset\" {\n  charset = \"ab\"\n  min-chars = 5\n}",
            "require at least 5 characters",
        ),
        (
            "length = 8\nrule \"charset\" {",
            "failed to parse password policy",
        ),
        ("   ", "policy is required"),
    ] {
        let (status, body) = b
            .call(
                "PUT",
                "sys/policies/password/Symbols",
                Some(json!({ "policy": text })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}: {body}");
        assert!(first_error(&body).contains(reason), "{text}: {body}");
    }
    let (status, body) = b
        .call(
            "PUT",
            "sys/policies/password/Symbols",
            Some(json!({ "policy": 20 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/password/Symbols", None)
        .await;
    assert_eq!(read["data"]["policy"], SYMBOLS);
    let (status, body) = b
        .call(
            "PUT",
            "sys/policies/password/bad@name",
            Some(json!({ "policy": SYMBOLS })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        first_error(&body).contains("invalid password policy name"),
        "{body}"
    );

    // Stored sealed: the text is nowhere in the database in the clear.
    let stored = storage_bytes(&b);
    assert!(!stored.is_empty());
    assert!(
        !stored
            .windows(b"marker-5c1e".len())
            .any(|w| w == b"marker-5c1e"),
        "the policy text is stored in the clear"
    );

    // Kept across a restart.
    b.restart().await;
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/password/Symbols", None)
        .await;
    assert_eq!(read["data"]["policy"], SYMBOLS);

    for name in ["Symbols", "encoded", "json"] {
        b.expect(
            StatusCode::NO_CONTENT,
            "DELETE",
            &format!("sys/policies/password/{name}"),
            None,
        )
        .await;
    }
    // Deleting what is gone is not an error (as in Vault).
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/policies/password/Symbols",
        None,
    )
    .await;
    for path in [
        "sys/policies/password/Symbols",
        "sys/policies/password/Symbols/generate",
    ] {
        let (status, body) = b.call("GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}

#[tokio::test]
async fn password_policy_paths_are_under_acl() {
    let b = Broker::start().await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/password/app",
        Some(json!({ "policy": SYMBOLS })),
    )
    .await;
    let (token, _) = b
        .token_with_policy(
            "generate-only",
            r#"path "sys/policies/password/+/generate" { capabilities = ["read"] }"#,
        )
        .await;
    let (status, body) = b
        .call_as(&token, "GET", "sys/policies/password/app/generate", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(parsed(SYMBOLS).is_satisfied_by(body["data"]["password"].as_str().unwrap()));
    for (method, path, body) in [
        ("GET", "sys/policies/password/app", None),
        ("LIST", "sys/policies/password", None),
        ("DELETE", "sys/policies/password/app", None),
        (
            "PUT",
            "sys/policies/password/app",
            Some(json!({ "policy": "length = 4\nrule \"charset\" {\n  charset = \"a\"\n}" })),
        ),
    ] {
        let (status, reply) = b.call_as(&token, method, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {reply}");
    }
    let read = b
        .expect(StatusCode::OK, "GET", "sys/policies/password/app", None)
        .await;
    assert_eq!(read["data"]["policy"], SYMBOLS);
}

/// A PostgreSQL config `name` with usernames starting with a prefix of
/// this test's own (returned) and `extra` fields.
async fn pg_config(b: &Broker, name: &str, extra: Value) -> (StatusCode, Value, String) {
    let tag = broker_tests::unique("p").replace('_', "");
    let prefix = format!("p{}", &tag[tag.len() - 9..]);
    let s = postgres();
    let mut body = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg_url(&s.host, s.port),
        "username": s.user, "password": s.password, "allowed_roles": "*",
        "username_template": format!("{prefix}-{{{{random 10}}}}"),
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, reply) = b
        .call("POST", &format!("database/config/{name}"), Some(body))
        .await;
    (status, reply, prefix)
}

/// How many PostgreSQL roles start with `prefix`.
async fn pg_users(prefix: &str) -> i64 {
    crate::api::pg_users_with_prefix(prefix).await
}

/// Issues from `role`; the username and password, after checking that
/// they log in.
async fn pg_creds(b: &Broker, role: &str) -> (String, String) {
    let creds = b
        .expect(
            StatusCode::OK,
            "GET",
            &format!("database/creds/{role}"),
            None,
        )
        .await;
    let user = creds["data"]["username"].as_str().unwrap().to_owned();
    let password = creds["data"]["password"].as_str().unwrap().to_owned();
    let client = pg_connect(postgres(), &user, &password)
        .await
        .unwrap_or_else(|e| panic!("the issued login {user} does not work: {e}"));
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), user);
    (user, password)
}

#[tokio::test]
async fn database_passwords_follow_the_configs_password_policy() {
    let b = Broker::start().await;
    mount_database(&b).await;
    let pg_symbols = pg_symbols();
    assert!(!parsed(&pg_symbols).alphabet().contains('$'));
    for (name, text) in [("dollars", SYMBOLS), ("symbols", pg_symbols.as_str())] {
        b.expect(
            StatusCode::NO_CONTENT,
            "PUT",
            &format!("sys/policies/password/{name}"),
            Some(json!({ "policy": text })),
        )
        .await;
    }

    // A policy that can draw '$' would fail PostgreSQL issuances at
    // random (the statement templates refuse it): refused up front.
    let (status, body, _) = pg_config(&b, "pg", json!({ "password_policy": "dollars" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).contains("holding '$'"), "{body}");

    // A policy that does not exist is refused when the config is written.
    let (status, body, _) = pg_config(&b, "pg", json!({ "password_policy": "nope" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let e = first_error(&body);
    assert!(e.starts_with("password_policy"), "{e}");
    assert!(e.contains("\"nope\" does not exist"), "{e}");
    let (status, _) = b.call("GET", "database/config/pg", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    let (status, body, _) = pg_config(&b, "pg", json!({ "password_policy": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body, prefix) = pg_config(&b, "pg", json!({ "password_policy": "symbols" })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let config = b
        .expect(StatusCode::OK, "GET", "database/config/pg", None)
        .await;
    assert_eq!(config["data"]["password_policy"], "symbols");

    // Only the broker sets a password: a role cannot.
    let create =
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
    let (status, body) = b
        .call(
            "POST",
            "database/roles/app",
            Some(json!({ "db_name": "pg", "creation_statements": [create], "password": "chosen-by-me" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(first_error(&body).starts_with("password"), "{body}");
    let (status, _) = b.call("GET", "database/roles/app", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/app",
        Some(json!({ "db_name": "pg", "creation_statements": [create] })),
    )
    .await;

    let policy = parsed(&pg_symbols);
    for _ in 0..5 {
        let (_, password) = pg_creds(&b, "app").await;
        assert!(policy.is_satisfied_by(&password), "{password}");
    }
    assert_eq!(pg_users(&prefix).await, 5);

    // A config that names no policy gets the broker's default.
    let (status, body, _) = pg_config(&b, "plain", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let config = b
        .expect(StatusCode::OK, "GET", "database/config/plain", None)
        .await;
    assert_eq!(config["data"]["password_policy"], "");
    b.expect(
        StatusCode::NO_CONTENT,
        "POST",
        "database/roles/plain",
        Some(json!({ "db_name": "plain", "creation_statements": [create] })),
    )
    .await;
    let (_, password) = pg_creds(&b, "plain").await;
    assert!(
        PasswordPolicy::default().is_satisfied_by(&password),
        "{password}"
    );

    // The policy deleted since: issuing fails clearly, and leaves no user.
    b.expect(
        StatusCode::NO_CONTENT,
        "DELETE",
        "sys/policies/password/symbols",
        None,
    )
    .await;
    let (status, body) = b.call("GET", "database/creds/app", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let e = first_error(&body);
    assert!(
        e.contains("password policy \"symbols\" does not exist"),
        "{e}"
    );
    assert_eq!(pg_users(&prefix).await, 5);
    let leases = b
        .expect(
            StatusCode::OK,
            "LIST",
            "sys/leases/lookup/database/creds/app",
            None,
        )
        .await;
    assert_eq!(leases["data"]["keys"].as_array().unwrap().len(), 5);

    // Written again (differently): issuing follows the new text.
    let digits =
        "length = 12\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 12\n}\n";
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/password/symbols",
        Some(json!({ "policy": digits })),
    )
    .await;
    let (_, password) = pg_creds(&b, "app").await;
    assert!(parsed(digits).is_satisfied_by(&password), "{password}");

    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds",
        None,
    )
    .await;
    assert_eq!(pg_users(&prefix).await, 0);
}

#[tokio::test]
async fn mariadb_with_simple_password_check_takes_the_policys_passwords() {
    // A server of this test's own: loading the plugin into the shared
    // MariaDB would refuse other tests' passwords.
    let maria = PrivateMariaDb::start(&["--plugin-load-add=simple_password_check"]).await;
    let mut admin = maria.admin().await;
    let active: Option<String> = admin
        .query_first(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'simple_password_check'",
        )
        .await
        .unwrap();
    assert_eq!(active.as_deref(), Some("ACTIVE"), "{}", maria.log());
    // It refuses letters and digits alone (it wants a symbol too).
    let refused = admin
        .query_drop("CREATE USER 'probe'@'%' IDENTIFIED BY 'abcdefGH12'")
        .await;
    assert!(refused.is_err(), "simple_password_check is not checking");

    let b = Broker::start().await;
    mount_database(&b).await;
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/policies/password/maria",
        Some(json!({ "policy": SYMBOLS })),
    )
    .await;
    let s = &maria.server;
    let url = format!(
        "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
        s.host, s.port
    );
    for (name, policy) in [("strict", json!("maria")), ("plain", json!(""))] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("database/config/{name}"),
            Some(json!({
                "plugin_name": "mysql-database-plugin",
                "connection_url": url,
                "username": "root",
                "password": "",
                "allowed_roles": "*",
                "password_policy": policy,
            })),
        )
        .await;
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("database/roles/{name}"),
            Some(json!({
                "db_name": name,
                "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
            })),
        )
        .await;
    }

    // The default policy (letters and digits) is refused by the server...
    let (status, body) = b.call("GET", "database/creds/plain", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        first_error(&body).contains("does not satisfy the current policy requirements"),
        "{body}"
    );
    // ...and every password of the policy is taken, and logs in.
    let policy = parsed(SYMBOLS);
    for _ in 0..10 {
        let creds = b
            .expect(StatusCode::OK, "GET", "database/creds/strict", None)
            .await;
        let user = creds["data"]["username"].as_str().unwrap();
        let password = creds["data"]["password"].as_str().unwrap();
        assert!(policy.is_satisfied_by(password), "{password}");
        let mut conn = mysql_async::Conn::new(s.mysql_opts(user, password))
            .await
            .unwrap_or_else(|e| panic!("the issued login {user} does not work: {e}"));
        let me: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
        assert!(me.unwrap().starts_with(&format!("{user}@")));
        drop(conn.disconnect().await);
    }
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        "sys/leases/revoke-prefix/database/creds/strict",
        None,
    )
    .await;
    let left: Option<i64> = admin
        .query_first("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'v-%'")
        .await
        .unwrap();
    assert_eq!(left, Some(0), "revoked users are gone");
}

/// hvac, unchanged: `tests/hvac/test_password_policies.py` writes a
/// password policy through hvac's generic paths, configures a PostgreSQL
/// connection with hvac's database helper (`password_policy` and a
/// `username_template` in Vault's syntax) and checks what it issues.
#[tokio::test]
async fn hvac_writes_password_policies_and_issues_from_them() {
    let b = Broker::start().await;
    let s = postgres();
    let port = s.port.to_string();
    crate::hvac::run_hvac_script(
        &b,
        "test_password_policies.py",
        &[
            ("PG_HOST", &s.host),
            ("PG_PORT", &port),
            ("PG_USER", &s.user),
            ("PG_PASSWORD", &s.password),
            ("PG_DATABASE", &s.database),
        ],
    );
}
