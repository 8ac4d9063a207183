//! The ACL matrix, generated from the path tables: every path and operation
//! the OpenAPI document declares (the system's, `auth/token/`'s and every
//! mounted engine's) is called with tokens made for that one cell.
//!
//! - A token whose policy grants every capability on the path except the
//!   one the operation needs gets 403 `permission denied`, and storage is
//!   byte for byte what it was (the `entries` and `leases` tables of the
//!   SQLite file). On a root-protected (`sudo`) path, so does a token with
//!   everything but `sudo`, and one whose `sudo` is granted by another rule
//!   than the one that grants the operation (Vault takes both from the rule
//!   that matches).
//! - A token whose policy grants exactly that capability (and `sudo` on a
//!   root-protected path) is let through: whatever the handler answers, it
//!   is not the policy's refusal.
//! - A write to a path with an existence check is a `create` for an object
//!   that does not exist and an `update` for one that does: both are cells.
//! - Paths that answer without a token are listed, checked against
//!   [`UNAUTHENTICATED`], and called without a token and with a token that
//!   may do nothing.
//!
//! Every path of the document is in the matrix; the tables below that name
//! paths fail the test when they name one the document does not have.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::process::Broker;

/// Paths whose cells are not skipped but run after every other cell, in
/// this order, with why.
const RUN_LAST: &[(&str, &str)] = &[(
    "/sys/seal",
    "a permitted seal answers every later request with 503 until a restart",
)];

/// The paths that answer without a token, and how: `open` (no token, no
/// audit, sealed or not) or `public` (no token, audited). A path that
/// turns unauthenticated by accident fails here.
const UNAUTHENTICATED: &[(&str, &str)] = &[
    ("/sys/health", "open"),
    ("/sys/seal-status", "open"),
    ("/sys/init", "open"),
    ("/sys/leader", "open"),
    ("/sys/unseal", "open"),
    ("/sys/rekey/init", "public"),
    ("/sys/rekey/update", "public"),
    ("/sys/rekey-recovery-key/init", "public"),
    ("/sys/rekey-recovery-key/update", "public"),
    ("/sys/wrapping/lookup", "public"),
    ("/auth/approle/login", "public"),
    ("/auth/cert/login", "public"),
    ("/auth/jwt/login", "public"),
    ("/pki/ca/pem", "public"),
    ("/pki/ca", "public"),
    ("/pki/ca_chain", "public"),
    ("/pki/cert/{serial}", "public"),
    ("/pki/crl", "public"),
    ("/pki/crl/pem", "public"),
];

/// The object a path's cells act on: [`ABSENT`] for a create, else this.
const EXISTING: &str = "matrix-e";
/// An object that does not exist (a create's).
const ABSENT: &str = "matrix-x";

/// For each path with an existence check (`x-vault-createSupported`), the
/// body root writes to `<path with EXISTING>` so that a write there is an
/// update. Written in this order.
fn existing_objects(ca_pem: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "/auth/cert/certs/{name}",
            json!({ "certificate": ca_pem, "token_policies": ["default"] }),
        ),
        (
            "/sys/policies/acl/{name}",
            json!({ "policy": "path \"matrix/nothing\" { capabilities = [\"deny\"] }" }),
        ),
        (
            "/sys/policies/password/{name}",
            json!({ "policy": "length = 8\nrule \"charset\" {\n  charset = \"abc\"\n}\n" }),
        ),
        ("/auth/token/roles/{role_name}", json!({})),
        (
            "/database/config/{name}",
            // Never reached: nothing in the matrix needs a database.
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                "username": "admin", "password": "unused", "allowed_roles": "*",
                "verify_connection": false,
            }),
        ),
        (
            "/database/roles/{name}",
            json!({ "db_name": EXISTING, "creation_statements": ["SELECT 1"] }),
        ),
        (
            "/database/static-roles/{name}",
            // No rotation: the config's database is never reached.
            json!({
                "db_name": EXISTING, "username": "matrix_account",
                "skip_import_rotation": true, "disable_automated_rotation": true,
            }),
        ),
        (
            "/auth/approle/role/{role_name}",
            json!({ "token_policies": ["default"] }),
        ),
        (
            "/auth/jwt/role/{name}",
            json!({ "role_type": "jwt", "bound_audiences": ["matrix"], "token_policies": ["default"] }),
        ),
        (
            "/pki/roles/{name}",
            json!({
                "allowed_domains": ["example.com"], "allow_subdomains": true,
                "generate_lease": true, "max_ttl": "72h",
            }),
        ),
        ("/secret/data/{path}", json!({ "data": { "k": "v" } })),
        ("/secret/metadata/{path}", json!({ "max_versions": 3 })),
        ("/kv1/{path}", json!({ "k": "v" })),
    ]
}

/// What a request asks, as policies name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Read,
    List,
    Create,
    Update,
    Patch,
    Delete,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Read,
        Op::List,
        Op::Create,
        Op::Update,
        Op::Patch,
        Op::Delete,
    ];

    /// The capability it needs (and the name `?help=1` gives it).
    fn capability(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::List => "list",
            Op::Create => "create",
            Op::Update => "update",
            Op::Patch => "patch",
            Op::Delete => "delete",
        }
    }

    /// The HTTP method that asks for it (creates by POST, updates by PUT:
    /// both verbs are writes).
    fn method(self) -> &'static str {
        match self {
            Op::Read => "GET",
            Op::List => "LIST",
            Op::Create => "POST",
            Op::Update => "PUT",
            Op::Patch => "PATCH",
            Op::Delete => "DELETE",
        }
    }
}

/// Every capability a policy can grant but `deny`.
const CAPABILITIES: [&str; 7] = [
    "create", "read", "update", "patch", "delete", "list", "sudo",
];

/// Who may call a path, as its help says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Open,
    Public,
    Token,
    Sudo,
}

impl Access {
    fn from_help(text: &str) -> Option<Self> {
        let who = text
            .lines()
            .find_map(|l| l.strip_prefix("Who may call: "))?;
        Some(match who {
            w if w.starts_with("anyone, without a token (not audited)") => Access::Open,
            w if w.starts_with("anyone, without a token") => Access::Public,
            w if w.starts_with("a token with sudo") => Access::Sudo,
            w if w.starts_with("a token whose policies") => Access::Token,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Public => "public",
            Access::Token => "token",
            Access::Sudo => "sudo",
        }
    }
}

/// A path of the document, as the matrix reads it.
#[derive(Debug)]
struct DocPath {
    /// As the document writes it: `/sys/mounts/{path}/tune`.
    template: String,
    ops: BTreeSet<Op>,
    access: Access,
    /// Each write operation's request body schema, if it takes one.
    bodies: BTreeMap<Op, Value>,
}

/// One cell: a path, concrete, and an operation on it.
#[derive(Debug, Clone)]
struct Cell {
    template: String,
    op: Op,
    /// Concrete, without a leading `/`.
    path: String,
    body: Option<Value>,
    access: Access,
}

impl Cell {
    fn name(&self) -> String {
        format!("{} {} ({})", self.op.capability(), self.path, self.template)
    }

    /// The path the ACL checks: a list's ends in `/` (a list form's
    /// path already does).
    fn acl_path(&self) -> String {
        if self.op == Op::List && !self.path.ends_with('/') {
            format!("{}/", self.path)
        } else {
            self.path.clone()
        }
    }
}

/// Values the document's path parameters take.
struct Samples {
    lease_id: String,
    lease_prefix: String,
    serial: String,
}

/// `template` with its parameters filled: `object` names what the cell
/// acts on; a lease, a prefix and a serial are real ones, and a mount is
/// `pki` (so a write or delete let through would show in storage).
fn concrete(template: &str, object: &str, samples: &Samples) -> String {
    let mut out = Vec::new();
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(param) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
            out.push((*part).to_owned());
            continue;
        };
        let value = match param {
            "lease_id" => samples.lease_id.clone(),
            "prefix" => samples.lease_prefix.clone(),
            "serial" => samples.serial.clone(),
            "path" if i == 2 && parts[..2] == ["sys", "mounts"] => "pki".to_owned(),
            _ => object.to_owned(),
        };
        out.push(value);
    }
    out.join("/")
}

/// A value of a body field's schema: what a client would send.
fn sample(schema: &Value) -> Value {
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), Some("duration")) => json!("1h"),
        (Some("string"), _) => json!(ABSENT),
        (Some("integer"), _) => json!(1),
        (Some("boolean"), _) => json!(false),
        (Some("array"), _) => json!([ABSENT]),
        _ => json!({}),
    }
}

/// A body with every required field of `schema`.
fn body_for(schema: Option<&Value>) -> Value {
    let mut body = Map::new();
    if let Some(schema) = schema {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            body.insert(name.to_owned(), sample(&schema["properties"][name]));
        }
    }
    Value::Object(body)
}

/// Reads the document: each path's operations, who may call it, and its
/// write bodies. Cross-checks each path against its `?help=1` (the same
/// table entry), so an operation the document cannot show (a read and a
/// list on one GET) fails here instead of leaving the matrix.
async fn read_document(b: &Broker, doc: &Value, samples: &Samples) -> Vec<DocPath> {
    let mut out = Vec::new();
    let bodies = &doc["components"]["requestBodies"];
    let templates: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for (template, item) in doc["paths"].as_object().unwrap() {
        // A path read and listed documents its list on the path with a
        // trailing `/` (its list form); its help is the same table entry.
        let list_form = template.len() > 1
            && template.ends_with('/')
            && templates.contains(template.trim_end_matches('/'));
        let listed_apart = templates.contains(format!("{template}/").as_str());
        let item = item.as_object().unwrap();
        let create = item.get("x-vault-createSupported") == Some(&json!(true));
        let sudo = item.get("x-vault-sudo") == Some(&json!(true));
        let mut ops = BTreeSet::new();
        let mut schemas = BTreeMap::new();
        let mut unauthenticated = BTreeSet::new();
        for (method, op) in item {
            let these: &[Op] = match method.as_str() {
                "get" => {
                    let lists = op["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "list"));
                    if lists { &[Op::List] } else { &[Op::Read] }
                }
                "post" if create => &[Op::Create, Op::Update],
                "post" => &[Op::Update],
                "patch" => &[Op::Patch],
                "delete" => &[Op::Delete],
                "summary" | "description" | "parameters" => continue,
                other if other.starts_with("x-") => continue,
                other => panic!("{template}: a method the matrix does not know: {other}"),
            };
            unauthenticated.insert(op.get("security") == Some(&json!([])));
            let schema = op["requestBody"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/requestBodies/"))
                // JSON, or a PATCH's merge patch: the one media type given.
                .and_then(|key| bodies[key]["content"].as_object()?.values().next())
                .map(|content| content["schema"].clone());
            for &o in these {
                ops.insert(o);
                if let Some(s) = &schema {
                    schemas.insert(o, s.clone());
                }
            }
        }
        assert_eq!(
            unauthenticated.len(),
            1,
            "{template}: some operations need a token and some do not"
        );
        let unauthenticated = unauthenticated.contains(&true);

        // The same table entry, as `?help=1` tells it.
        let help_path = concrete(template, EXISTING, samples);
        let help = b
            .expect(StatusCode::OK, "GET", &format!("{help_path}?help=1"), None)
            .await;
        let help = help["help"].as_str().unwrap();
        let access = Access::from_help(help)
            .unwrap_or_else(|| panic!("{template}: no 'Who may call' in its help:\n{help}"));
        let mut helped: BTreeSet<Op> = help
            .lines()
            .find_map(|l| l.strip_prefix("Operations: "))
            .unwrap_or_else(|| panic!("{template}: no 'Operations' in its help:\n{help}"))
            .split(", ")
            .map(|name| {
                *Op::ALL
                    .iter()
                    .find(|o| o.capability() == name)
                    .unwrap_or_else(|| panic!("{template}: unknown operation {name}"))
            })
            .collect();
        if list_form {
            assert!(
                helped.contains(&Op::List),
                "{template}: a list form of a path that does not list"
            );
            helped = BTreeSet::from([Op::List]);
        } else if listed_apart {
            helped.remove(&Op::List);
        }
        let reads = |set: &BTreeSet<Op>| -> BTreeSet<Op> {
            set.iter()
                .copied()
                .filter(|o| !matches!(o, Op::Create | Op::Update))
                .collect()
        };
        let writes = |set: &BTreeSet<Op>| set.contains(&Op::Create) || set.contains(&Op::Update);
        assert_eq!(
            (reads(&ops), writes(&ops)),
            (reads(&helped), writes(&helped)),
            "{template}: the document and ?help=1 disagree on its operations"
        );
        // A path that declares `create` tells creates from updates.
        assert!(
            !helped.contains(&Op::Create) || create,
            "{template} declares create but the document has no x-vault-createSupported"
        );
        assert_eq!(
            unauthenticated,
            matches!(access, Access::Open | Access::Public),
            "{template}: the document's security and ?help=1 ({}) disagree",
            access.name()
        );
        assert_eq!(
            sudo,
            access == Access::Sudo,
            "{template}: x-vault-sudo and ?help=1 ({}) disagree",
            access.name()
        );
        out.push(DocPath {
            template: template.clone(),
            ops,
            access,
            bodies: schemas,
        });
    }
    out
}

/// The policy text giving `capabilities` on each of `paths`.
fn policy(rules: &[(&str, Vec<&str>)]) -> String {
    let mut text = String::new();
    for (path, capabilities) in rules {
        let caps: Vec<String> = capabilities.iter().map(|c| format!("{c:?}")).collect();
        let _ = writeln!(
            text,
            "path {path:?} {{ capabilities = [{}] }}",
            caps.join(", ")
        );
    }
    text
}

/// A token holding the policy `name` with `text` only (no `default`).
async fn token_for(b: &Broker, name: &str, text: &str) -> String {
    b.expect(
        StatusCode::NO_CONTENT,
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": text })),
    )
    .await;
    let created = b
        .expect(
            StatusCode::OK,
            "POST",
            "auth/token/create",
            Some(json!({ "policies": [name], "no_default_policy": true, "ttl": "1h" })),
        )
        .await;
    assert_eq!(
        created["auth"]["policies"],
        json!([name]),
        "{name}: a token with the one policy"
    );
    created["auth"]["client_token"].as_str().unwrap().to_owned()
}

/// Every row of the storage tables, as bytes, read from the SQLite file
/// beside the running broker (read only).
async fn storage_snapshot(b: &Broker) -> BTreeMap<String, Vec<u8>> {
    use sqlx::{Connection, Row};
    let path = b.config.parent().unwrap().join("broker.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let mut rows = BTreeMap::new();
    for row in sqlx::query("SELECT key, value FROM entries")
        .fetch_all(&mut db)
        .await
        .unwrap()
    {
        let key: String = row.get(0);
        rows.insert(format!("entries/{key}"), row.get::<Vec<u8>, _>(1));
    }
    for row in sqlx::query(
        "SELECT id, state, issued_at, expires_at, max_expires_at, next_attempt_at, attempts, \
         COALESCE(last_error, ''), COALESCE(token_accessor, ''), sealed FROM leases",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    {
        let id: String = row.get(0);
        let mut value = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|",
            row.get::<String, _>(1),
            row.get::<i64, _>(2),
            row.get::<i64, _>(3),
            row.get::<i64, _>(4),
            row.get::<i64, _>(5),
            row.get::<i64, _>(6),
            row.get::<String, _>(7),
            row.get::<String, _>(8),
        )
        .into_bytes();
        value.extend(row.get::<Vec<u8>, _>(9));
        rows.insert(format!("leases/{id}"), value);
    }
    db.close().await.unwrap();
    rows
}

/// What changed between two snapshots: keys only, never values.
fn changes(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in before {
        match after.get(key) {
            None => out.push(format!("removed {key}")),
            Some(v) if v != value => out.push(format!("changed {key}")),
            Some(_) => {}
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        out.push(format!("added {key}"));
    }
    out
}

/// A token and what it is for.
struct Probe {
    cell: usize,
    kind: &'static str,
    token: String,
}

/// A body for a failure message: its start only (a list may be long).
fn short(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

fn is_policy_refusal(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::FORBIDDEN && *body == json!({ "errors": ["permission denied"] })
}

#[tokio::test]
async fn every_path_and_operation_is_refused_without_its_capability_and_served_with_it() {
    let started = Instant::now();
    let b = Broker::start().await;

    // Engines, a CA, and the objects the cells act on.
    for (mount, kind) in [
        ("database", "database"),
        ("pki", "pki"),
        ("secret", "kv-v2"),
        ("kv1", "kv"),
    ] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({ "type": kind })),
        )
        .await;
    }
    // And every auth method.
    for method in ["approle", "cert", "jwt"] {
        b.expect(
            StatusCode::NO_CONTENT,
            "POST",
            &format!("sys/auth/{method}"),
            Some(json!({ "type": method })),
        )
        .await;
    }
    let ca = b
        .expect(
            StatusCode::OK,
            "POST",
            "pki/root/generate/internal",
            Some(json!({ "common_name": "Matrix Root", "ttl": "87600h" })),
        )
        .await;
    let existing = existing_objects(ca["data"]["certificate"].as_str().unwrap());
    let no_samples = Samples {
        lease_id: String::new(),
        lease_prefix: String::new(),
        serial: String::new(),
    };
    for (template, body) in &existing {
        let path = concrete(template, EXISTING, &no_samples);
        let (status, answer) = b.call("POST", &path, Some(body.clone())).await;
        assert!(status.is_success(), "POST {path}: {status} {answer}");
        b.expect(StatusCode::OK, "GET", &path, None).await;
    }
    // A certificate under a lease: lease paths name it, the CRL could gain it.
    let issued = b
        .expect(
            StatusCode::OK,
            "POST",
            &format!("pki/issue/{EXISTING}"),
            Some(json!({ "common_name": "a.example.com" })),
        )
        .await;
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    let lease_prefix = format!("pki/issue/{EXISTING}");
    assert!(
        lease_id.starts_with(&format!("{lease_prefix}/")),
        "{lease_id}"
    );
    let samples = Samples {
        lease_id,
        lease_prefix,
        serial: issued["data"]["serial_number"].as_str().unwrap().to_owned(),
    };

    // The document, read as root, is the matrix's list of paths.
    let doc = b
        .expect(StatusCode::OK, "GET", "sys/internal/specs/openapi", None)
        .await;
    let paths = read_document(&b, &doc, &samples).await;
    let templates: BTreeSet<&str> = paths.iter().map(|p| p.template.as_str()).collect();
    for prefix in [
        "/sys/",
        "/auth/token/",
        "/database/",
        "/pki/",
        "/secret/data/",
        "/secret/metadata/",
        "/kv1/",
    ] {
        assert!(
            templates.iter().any(|t| t.starts_with(prefix)),
            "no {prefix} path in the document"
        );
    }
    // The tables here cannot name a path the document lost.
    for (template, why) in RUN_LAST {
        assert!(
            templates.contains(template),
            "RUN_LAST names {template} ({why}), which the document does not have"
        );
    }
    for (template, _) in UNAUTHENTICATED {
        assert!(
            templates.contains(template),
            "UNAUTHENTICATED names {template}, which the document does not have"
        );
    }
    let creatable: BTreeSet<&str> = paths
        .iter()
        .filter(|p| p.ops.contains(&Op::Create))
        .map(|p| p.template.as_str())
        .collect();
    let made: BTreeSet<&str> = existing.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        creatable, made,
        "existing_objects() must make an object for exactly the paths with an existence check"
    );
    let unauthenticated: BTreeSet<(&str, &str)> = paths
        .iter()
        .filter(|p| matches!(p.access, Access::Open | Access::Public))
        .map(|p| (p.template.as_str(), p.access.name()))
        .collect();
    assert_eq!(
        unauthenticated,
        UNAUTHENTICATED.iter().copied().collect::<BTreeSet<_>>(),
        "the paths that need no token"
    );

    // The cells.
    let mut cells = Vec::new();
    for p in &paths {
        for &op in &p.ops {
            let object = if op == Op::Create { ABSENT } else { EXISTING };
            let body = matches!(op, Op::Create | Op::Update | Op::Patch)
                .then(|| body_for(p.bodies.get(&op)));
            cells.push(Cell {
                template: p.template.clone(),
                op,
                path: concrete(&p.template, object, &samples),
                body,
                access: p.access,
            });
        }
    }

    // Every token up front: making them writes storage.
    let mut probes = Vec::new();
    let nothing = token_for(
        &b,
        "matrix-nothing",
        &policy(&[("matrix/nothing", vec!["deny"])]),
    )
    .await;
    let mut plans: Vec<(usize, &'static str, String)> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        if matches!(cell.access, Access::Open | Access::Public) {
            continue;
        }
        let needed = cell.op.capability();
        let (bare, acl) = (cell.path.as_str(), cell.acl_path());
        let slashed = format!("{bare}/");
        let all_but = |missing: &str| -> Vec<&str> {
            CAPABILITIES
                .iter()
                .copied()
                .filter(|c| *c != missing)
                .collect()
        };
        // Everything but the capability needed, on the path with and
        // without its slash (`sudo` included: it grants nothing alone).
        let denied = all_but(needed);
        plans.push((
            i,
            "denied",
            policy(&[(bare, denied.clone()), (slashed.as_str(), denied)]),
        ));
        let sudo = cell.access == Access::Sudo;
        let exactly: Vec<&str> = if sudo {
            vec![needed, "sudo"]
        } else {
            vec![needed]
        };
        plans.push((i, "allowed", policy(&[(acl.as_str(), exactly)])));
        if sudo {
            let no_sudo = all_but("sudo");
            plans.push((
                i,
                "sudo missing",
                policy(&[(bare, no_sudo.clone()), (slashed.as_str(), no_sudo)]),
            ));
            if cell.op == Op::List {
                // The list rule is `p/`'s: `sudo` on `p` is another rule's.
                plans.push((
                    i,
                    "sudo from another rule",
                    policy(&[(acl.as_str(), vec![needed]), (bare, vec!["sudo"])]),
                ));
            }
        }
    }
    let made: Vec<(usize, &'static str, String)> =
        futures_util::stream::iter(plans.into_iter().enumerate().map(|(n, (i, kind, text))| {
            let b = &b;
            async move { (i, kind, token_for(b, &format!("matrix-{n}"), &text).await) }
        }))
        .buffered(4)
        .collect()
        .await;
    for (cell, kind, token) in made {
        probes.push(Probe { cell, kind, token });
    }
    let tokens_made = started.elapsed();
    // No cell is left out: each that needs a token has its refused and its
    // permitted token, and the rest are the unauthenticated ones.
    for (i, cell) in cells.iter().enumerate() {
        let kinds: Vec<&str> = probes
            .iter()
            .filter(|p| p.cell == i)
            .map(|p| p.kind)
            .collect();
        let unauthenticated = matches!(cell.access, Access::Open | Access::Public);
        assert_eq!(
            (kinds.contains(&"denied"), kinds.contains(&"allowed")),
            (!unauthenticated, !unauthenticated),
            "{}: {kinds:?}",
            cell.name()
        );
    }

    let mut failures = Vec::new();
    let call = |token: String, cell: &Cell| {
        let b = &b;
        let (method, path, body) = (cell.op.method(), cell.path.clone(), cell.body.clone());
        // A PATCH says its body is a merge patch, as Vault requires.
        let headers: &'static [(&'static str, &'static str)] = if cell.op == Op::Patch {
            &[("Content-Type", "application/merge-patch+json")]
        } else {
            &[]
        };
        async move {
            let (status, _, body) = b.call_with(&token, headers, method, &path, body).await;
            (status, body)
        }
    };

    // Refused: 403, and storage untouched.
    let before = storage_snapshot(&b).await;
    let mut refused = 0;
    for probe in probes.iter().filter(|p| p.kind != "allowed") {
        let cell = &cells[probe.cell];
        let (status, body) = call(probe.token.clone(), cell).await;
        refused += 1;
        if !is_policy_refusal(status, &body) {
            failures.push(format!(
                "{} with a token '{}': {status} {} (expected 403 permission denied)",
                cell.name(),
                probe.kind,
                short(&body)
            ));
        }
    }
    let after = storage_snapshot(&b).await;
    let changed = changes(&before, &after);
    if !changed.is_empty() {
        failures.push(format!(
            "refused requests changed storage: {}",
            changed.join(", ")
        ));
    }

    // Let through: in an order where no cell undoes what a later one needs
    // (deletes after writes, a mount's removal after its paths' deletes,
    // RUN_LAST last).
    let order = |cell: &Cell| {
        let last = RUN_LAST
            .iter()
            .position(|(t, _)| *t == cell.template)
            .map_or(0, |at| at + 1);
        (
            last,
            cell.op == Op::Delete,
            cell.template.starts_with("/sys/"),
        )
    };
    let mut allowed: Vec<&Probe> = probes.iter().filter(|p| p.kind == "allowed").collect();
    let public: Vec<usize> = (0..cells.len())
        .filter(|&i| matches!(cells[i].access, Access::Open | Access::Public))
        .collect();
    for &i in &public {
        let cell = &cells[i];
        for (who, token) in [("no token", ""), ("a token that may do nothing", &nothing)] {
            let (status, body) = call(token.to_owned(), cell).await;
            if status == StatusCode::FORBIDDEN {
                failures.push(format!(
                    "{} ({}) with {who}: {status} {}",
                    cell.name(),
                    cell.access.name(),
                    short(&body)
                ));
            }
        }
    }
    allowed.sort_by_key(|p| (order(&cells[p.cell]), p.cell));
    let mut handler_refusals = Vec::new();
    let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
    for probe in &allowed {
        let cell = &cells[probe.cell];
        let (status, body) = call(probe.token.clone(), cell).await;
        *answers.entry(status.as_u16()).or_default() += 1;
        if is_policy_refusal(status, &body) {
            failures.push(format!(
                "{} with a token granted exactly it: refused by policy",
                cell.name()
            ));
        } else if status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND
                && body["errors"][0]
                    .as_str()
                    .is_some_and(|e| e.contains("no handler")))
        {
            // The cell would test nothing: its request reaches no handler.
            failures.push(format!(
                "{} with a token granted exactly it: not routed: {status} {}",
                cell.name(),
                short(&body)
            ));
        } else if status == StatusCode::FORBIDDEN {
            // The handler's own rule (not the ACL's): said, not failed.
            handler_refusals.push(format!("{}: {}", cell.name(), short(&body)));
        }
    }
    // The last cell sealed the broker.
    let sealed = b
        .expect(StatusCode::OK, "GET", "sys/seal-status", None)
        .await;
    assert_eq!(sealed["sealed"], true, "{sealed}");

    let sudo_paths = paths.iter().filter(|p| p.access == Access::Sudo).count();
    println!(
        "ACL matrix: {} paths, {} path x operation cells ({} need a token, {} answer without one: {}); \
         {} paths need sudo; {refused} refusals, {} grants; tokens made in {:.1?}, all in {:.1?}",
        paths.len(),
        cells.len(),
        cells.len() - public.len(),
        public.len(),
        UNAUTHENTICATED
            .iter()
            .map(|(t, how)| format!("{t} ({how})"))
            .collect::<Vec<_>>()
            .join(", "),
        sudo_paths,
        allowed.len(),
        tokens_made,
        started.elapsed(),
    );
    println!("the grants' answers, by status: {answers:?}");
    for refusal in &handler_refusals {
        println!("refused by its handler, not by policy: {refusal}");
    }
    assert!(
        failures.is_empty(),
        "{} of the matrix failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
