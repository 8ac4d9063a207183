//! The OpenAPI document served at `sys/internal/specs/openapi`.
//!
//! Like Vault's, it lists the system paths and, for each mounted engine,
//! that engine's paths under the mount. The table here is the one place a
//! route is described; the end-to-end tests call every operation it lists
//! and every one it does not, so it cannot drift from the handlers.

use serde_json::{Map, Value, json};

use super::Operation;
use crate::core::MountTable;

/// Where the document is served (under `/v1/`).
pub(crate) const PATH: &str = "sys/internal/specs/openapi";

/// A documented body field: name, JSON type, description.
type Field = (&'static str, &'static str, &'static str);

struct Route {
    /// Relative to `/v1/` (system routes) or to the mount (engine routes).
    path: &'static str,
    summary: &'static str,
    ops: &'static [Operation],
    fields: &'static [Field],
}

use Operation::{Delete, List, Read, Write};

const TTL: &str = "duration: seconds, or a string such as \"1h30m\"";

const SYSTEM: &[Route] = &[
    Route {
        path: "sys/health",
        summary: "Health of the broker (no token needed): 200 serving, 503 sealed; sealedcode, activecode, standbycode and standbyok change the codes.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/seal-status",
        summary: "Whether the broker is sealed (no token needed).",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/init",
        summary: "Whether the broker is initialized (no token needed); `broker operator init` initializes one.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/seal",
        summary: "Seal the broker: its keyring leaves memory and every request but health gets 503 until a restart.",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/mounts",
        summary: "The mounted secrets engines.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/mounts/{path}",
        summary: "Enable (write) or disable (delete) a secrets engine; disabling revokes its leases.",
        ops: &[Write, Delete],
        fields: &[
            ("type", "string", "engine type: database or pki"),
            ("description", "string", "free text"),
            (
                "config",
                "object",
                "default_lease_ttl and max_lease_ttl (durations)",
            ),
        ],
    },
    Route {
        path: "sys/mounts/{path}/tune",
        summary: "Read or change a mount's description and lease TTLs.",
        ops: &[Read, Write],
        fields: &[
            ("description", "string", "free text"),
            ("default_lease_ttl", "string", TTL),
            ("max_lease_ttl", "string", TTL),
        ],
    },
    Route {
        path: "sys/leases/lookup",
        summary: "Look up a lease (write), or list the top level of lease ids (list).",
        ops: &[Write, List],
        fields: &[("lease_id", "string", "the lease to look up")],
    },
    Route {
        path: "sys/leases/lookup/{prefix}",
        summary: "List lease ids one level below a prefix (may contain '/').",
        ops: &[List],
        fields: &[],
    },
    Route {
        path: "sys/leases/renew",
        summary: "Renew a lease; never past its max TTL.",
        ops: &[Write],
        fields: &[
            ("lease_id", "string", "the lease to renew"),
            ("increment", "string", TTL),
        ],
    },
    Route {
        path: "sys/leases/renew/{lease_id}",
        summary: "Renew the lease in the path (may contain '/').",
        ops: &[Write],
        fields: &[("increment", "string", TTL)],
    },
    Route {
        path: "sys/leases/revoke",
        summary: "Revoke a lease now: the plugin removes the credential.",
        ops: &[Write],
        fields: &[("lease_id", "string", "the lease to revoke")],
    },
    Route {
        path: "sys/leases/revoke/{lease_id}",
        summary: "Revoke the lease in the path (may contain '/').",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/leases/revoke-prefix/{prefix}",
        summary: "Revoke every lease under a prefix (a role, a mount).",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/leases/revoke-force/{prefix}",
        summary: "Forget every lease under a prefix without revoking the credentials. Last resort.",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/renew",
        summary: "Legacy alias of sys/leases/renew (Vault's older path).",
        ops: &[Write],
        fields: &[
            ("lease_id", "string", "the lease to renew"),
            ("increment", "string", TTL),
        ],
    },
    Route {
        path: "sys/renew/{lease_id}",
        summary: "Legacy alias of sys/leases/renew/{lease_id}.",
        ops: &[Write],
        fields: &[("increment", "string", TTL)],
    },
    Route {
        path: "sys/revoke",
        summary: "Legacy alias of sys/leases/revoke.",
        ops: &[Write],
        fields: &[("lease_id", "string", "the lease to revoke")],
    },
    Route {
        path: "sys/revoke/{lease_id}",
        summary: "Legacy alias of sys/leases/revoke/{lease_id}.",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/revoke-prefix/{prefix}",
        summary: "Legacy alias of sys/leases/revoke-prefix/{prefix}.",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/revoke-force/{prefix}",
        summary: "Legacy alias of sys/leases/revoke-force/{prefix}.",
        ops: &[Write],
        fields: &[],
    },
    Route {
        path: "sys/policies/acl",
        summary: "The names of the ACL policies, root and default included.",
        ops: &[List],
        fields: &[],
    },
    Route {
        path: "sys/policies/acl/{name}",
        summary: "Read, write or delete an ACL policy: Vault's HCL (or JSON) path rules. A key this broker does not enforce (allowed_parameters, wrapping TTLs, ...) refuses the policy rather than being ignored. root cannot be changed; default cannot be deleted.",
        ops: &[Read, Write, Delete],
        fields: &[(
            "policy",
            "string",
            "the policy document: path \"secret/data/*\" { capabilities = [\"read\"] } ...",
        )],
    },
    Route {
        path: "sys/policy",
        summary: "The names of the ACL policies (the older path: keys and policies).",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/policy/{name}",
        summary: "The older path for an ACL policy: as sys/policies/acl/{name}, but read back as rules.",
        ops: &[Read, Write, Delete],
        fields: &[(
            "policy",
            "string",
            "the policy document (or, on this path, rules)",
        )],
    },
    Route {
        path: "sys/audit",
        summary: "The enabled audit devices.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/audit/{path}",
        summary: "Enable (write) or disable (delete) an audit device. Files are created with mode 0600, never through a symlink, and outside dev mode only under the configured audit.file_dirs.",
        ops: &[Write, Delete],
        fields: &[
            ("type", "string", "file"),
            ("description", "string", "free text"),
            (
                "options",
                "object",
                "file_path (a path or stdout), log_raw, hmac_accessor, fsync",
            ),
        ],
    },
    Route {
        path: "sys/audit-hash/{path}",
        summary: "HMAC a value the way the device logs it, to find it in the log.",
        ops: &[Write],
        fields: &[("input", "string", "the value to hash")],
    },
    Route {
        path: "sys/audit-public-key",
        summary: "The public key (PEM) that checks the audit log's signed checkpoints: `broker audit verify --public-key FILE`.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "sys/metrics",
        summary: "Metrics in Prometheus' text format: requests, issuance latency per mount, leases by state, revocation failures, plugin deadline hits, audit failures.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: PATH,
        summary: "This document.",
        ops: &[Read],
        fields: &[],
    },
];

const DATABASE: &[Route] = &[
    Route {
        path: "config",
        summary: "List connection configs.",
        ops: &[List],
        fields: &[],
    },
    Route {
        path: "config/{name}",
        summary: "A connection config; its password is sealed and never returned.",
        ops: &[Read, Write, Delete],
        fields: &[
            (
                "plugin_name",
                "string",
                "postgresql-database-plugin, mysql-database-plugin, or an alias",
            ),
            (
                "connection_url",
                "string",
                "with {{username}} and {{password}} placeholders",
            ),
            ("username", "string", "the admin user"),
            ("password", "string", "the admin password (write only)"),
            (
                "allowed_roles",
                "array",
                "roles that may use this connection; \"*\" for all",
            ),
            (
                "verify_connection",
                "boolean",
                "connect before saving (default true)",
            ),
            (
                "username_template",
                "string",
                "how generated usernames look",
            ),
        ],
    },
    Route {
        path: "roles",
        summary: "List roles.",
        ops: &[List],
        fields: &[],
    },
    Route {
        path: "roles/{name}",
        summary: "A role: the statements that create and revoke its users, and its TTLs.",
        ops: &[Read, Write, Delete],
        fields: &[
            ("db_name", "string", "the connection config to use"),
            (
                "creation_statements",
                "array",
                "with {{name}}, {{password}}, {{expiration}}",
            ),
            (
                "revocation_statements",
                "array",
                "default: the plugin's safe revoke",
            ),
            ("renew_statements", "array", "run on renew"),
            (
                "rollback_statements",
                "array",
                "run when creation fails half-way",
            ),
            ("default_ttl", "string", TTL),
            ("max_ttl", "string", TTL),
        ],
    },
    Route {
        path: "creds/{role}",
        summary: "New credentials for a role, under a lease.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "rotate-root/{name}",
        summary: "Replace the admin password of a connection; only the broker knows the new one.",
        ops: &[Write],
        fields: &[],
    },
];

const PKI: &[Route] = &[
    Route {
        path: "root/generate/internal",
        summary: "Generate the mount's root CA; its key never leaves the broker.",
        ops: &[Write],
        fields: &[
            ("common_name", "string", "the CA's CN"),
            ("ttl", "string", TTL),
            ("key_type", "string", "ec (default), rsa or ed25519"),
            ("key_bits", "integer", "ec: 256, 384; rsa: 2048, 3072, 4096"),
        ],
    },
    Route {
        path: "root/generate/exported",
        summary: "Generate the mount's root CA and return its key, once.",
        ops: &[Write],
        fields: &[
            ("common_name", "string", "the CA's CN"),
            ("ttl", "string", TTL),
            ("key_type", "string", "ec (default), rsa or ed25519"),
        ],
    },
    Route {
        path: "root",
        summary: "Delete the mount's CA.",
        ops: &[Delete],
        fields: &[],
    },
    Route {
        path: "root/sign-intermediate",
        summary: "Sign an intermediate CA's CSR.",
        ops: &[Write],
        fields: &[
            ("csr", "string", "PEM"),
            ("common_name", "string", "overrides the CSR's"),
            ("ttl", "string", TTL),
        ],
    },
    Route {
        path: "config/ca",
        summary: "Import a CA: a PEM bundle with its certificate, its key and the chain above it.",
        ops: &[Write],
        fields: &[("pem_bundle", "string", "PEM certificates and key")],
    },
    Route {
        path: "intermediate/generate/internal",
        summary: "Generate an intermediate CA's key and CSR.",
        ops: &[Write],
        fields: &[
            ("common_name", "string", "the CA's CN"),
            ("key_type", "string", "ec (default), rsa or ed25519"),
        ],
    },
    Route {
        path: "intermediate/generate/exported",
        summary: "Generate an intermediate CA's key and CSR, returning the key once.",
        ops: &[Write],
        fields: &[("common_name", "string", "the CA's CN")],
    },
    Route {
        path: "intermediate/set-signed",
        summary: "Install the signed intermediate certificate.",
        ops: &[Write],
        fields: &[(
            "certificate",
            "string",
            "PEM, optionally with the chain above it",
        )],
    },
    Route {
        path: "ca/pem",
        summary: "The CA certificate, PEM.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "ca",
        summary: "The CA certificate, DER.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "ca_chain",
        summary: "The CA certificate and those above it, PEM.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "cert/{serial}",
        summary: "A stored certificate by serial (also ca, ca_chain, crl).",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "crl",
        summary: "The CRL, DER.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "crl/pem",
        summary: "The CRL, PEM.",
        ops: &[Read],
        fields: &[],
    },
    Route {
        path: "revoke",
        summary: "Revoke a certificate by serial; the CRL is rebuilt.",
        ops: &[Write],
        fields: &[("serial_number", "string", "aa:bb:… or hex")],
    },
    Route {
        path: "tidy",
        summary: "Remove expired certificates and CRL entries.",
        ops: &[Write],
        fields: &[
            ("tidy_cert_store", "boolean", "default true"),
            ("tidy_revoked_certs", "boolean", "default true"),
            ("safety_buffer", "string", TTL),
        ],
    },
    Route {
        path: "roles",
        summary: "List roles.",
        ops: &[List],
        fields: &[],
    },
    Route {
        path: "roles/{name}",
        summary: "A role: which names, keys and lifetimes its certificates may have.",
        ops: &[Read, Write, Delete],
        fields: &[
            ("allowed_domains", "array", "domains names must fall under"),
            ("allow_subdomains", "boolean", "names below allowed_domains"),
            (
                "allow_bare_domains",
                "boolean",
                "the allowed domains themselves",
            ),
            (
                "allow_glob_domains",
                "boolean",
                "allowed_domains may hold globs",
            ),
            ("allow_localhost", "boolean", "localhost (default true)"),
            ("allow_ip_sans", "boolean", "IP SANs (default true)"),
            ("allowed_uri_sans", "array", "URI SANs allowed (globs)"),
            ("allow_any_name", "boolean", "any DNS name"),
            (
                "enforce_hostnames",
                "boolean",
                "names must be hostnames (default true)",
            ),
            ("key_type", "string", "ec (default), rsa, ed25519"),
            ("key_bits", "integer", "key size"),
            ("ttl", "string", TTL),
            ("max_ttl", "string", TTL),
            ("server_flag", "boolean", "serverAuth (default true)"),
            ("client_flag", "boolean", "clientAuth (default true)"),
            ("not_before_duration", "string", TTL),
            ("require_cn", "boolean", "a CN is required (default true)"),
            ("no_store", "boolean", "do not keep issued certificates"),
            (
                "generate_lease",
                "boolean",
                "issue under a lease; revoking it revokes the certificate",
            ),
        ],
    },
    Route {
        path: "issue/{role}",
        summary: "A key pair and a certificate for it, within the role's policy.",
        ops: &[Write],
        fields: &[
            ("common_name", "string", "the CN"),
            ("alt_names", "string", "DNS names, comma-separated"),
            ("ip_sans", "string", "IP addresses, comma-separated"),
            ("uri_sans", "string", "URIs, comma-separated"),
            ("ttl", "string", TTL),
            (
                "exclude_cn_from_sans",
                "boolean",
                "leave the CN out of the SANs",
            ),
        ],
    },
    Route {
        path: "sign/{role}",
        summary: "A certificate for a CSR's key, within the role's policy.",
        ops: &[Write],
        fields: &[
            ("csr", "string", "PEM; its signature is checked"),
            ("common_name", "string", "the CN"),
            ("alt_names", "string", "DNS names, comma-separated"),
            ("ttl", "string", TTL),
        ],
    },
];

/// The key of a route's request body in `components.requestBodies`:
/// `database.config.name` for the database engine's `config/{name}`.
fn body_key(engine: &str, route: &Route) -> String {
    let mut key = String::with_capacity(engine.len() + route.path.len() + 1);
    for c in engine
        .chars()
        .chain(std::iter::once('.'))
        .chain(route.path.chars())
    {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            key.push(c);
        } else if !key.ends_with('.') {
            key.push('.');
        }
    }
    key.trim_end_matches('.').to_owned()
}

/// The path parameters of a route, shared by its operations.
fn path_parameters(route: &Route) -> Vec<Value> {
    route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

/// One operation. The summary and path parameters live on the path item,
/// once for all its operations; bodies and responses are references.
fn operation(op: Operation, tag: &str, body: Option<&str>) -> (String, Value) {
    let method = match op {
        Read | List => "get",
        Write => "post",
        Delete => "delete",
    };
    let mut operation = json!({
        "tags": [tag],
        "responses": match op {
            Write | Delete => json!({
                "204": { "$ref": "#/components/responses/done" },
                "200": { "$ref": "#/components/responses/ok" },
            }),
            Read | List => json!({ "200": { "$ref": "#/components/responses/ok" } }),
        },
    });
    if op == List {
        // Vault's convention: a list is a GET with `list=true` (or the LIST verb).
        operation["parameters"] = json!([{ "name": "list", "in": "query", "required": true, "schema": { "type": "string", "enum": ["true"] } }]);
    }
    if op == Write
        && let Some(key) = body
    {
        operation["requestBody"] = json!({ "$ref": format!("#/components/requestBodies/{key}") });
    }
    (method.to_owned(), operation)
}

/// A route's request body schema, written once in `components`.
fn request_body(route: &Route) -> Value {
    let properties: Map<String, Value> = route
        .fields
        .iter()
        .map(|(name, kind, description)| {
            (
                (*name).to_owned(),
                json!({ "type": kind, "description": description }),
            )
        })
        .collect();
    json!({
        "content": { "application/json": { "schema": { "type": "object", "properties": properties } } }
    })
}

/// The document under construction: path items are written to the text as
/// they are made, so at a thousand mounts the broker holds the text once
/// and a single path item, never a tree of every value.
struct Writer {
    out: Vec<u8>,
    paths: usize,
}

impl Writer {
    fn add(
        &mut self,
        prefix: &str,
        routes: &[Route],
        engine: &str,
        tag: &str,
    ) -> Result<(), serde_json::Error> {
        for route in routes {
            let body = (!route.fields.is_empty()).then(|| body_key(engine, route));
            let mut item = Map::new();
            item.insert("summary".into(), json!(route.summary));
            let parameters = path_parameters(route);
            if !parameters.is_empty() {
                item.insert("parameters".into(), Value::Array(parameters));
            }
            for &op in route.ops {
                let (method, operation) = operation(op, tag, body.as_deref());
                // A path both read and listed documents one GET; the list form
                // is told by its query parameter.
                item.entry(method).or_insert(operation);
            }
            if self.paths > 0 {
                self.out.push(b',');
            }
            self.paths += 1;
            serde_json::to_writer(&mut self.out, &format!("/{prefix}{}", route.path))?;
            self.out.push(b':');
            serde_json::to_writer(&mut self.out, &item)?;
        }
        Ok(())
    }
}

/// The engines the document knows, by mount type: (type, routes).
const ENGINES: &[(&str, &[Route])] = &[("database", DATABASE), ("pki", PKI)];

/// What the document depends on: each mount's path and type.
type Shape = Vec<(String, String)>;

/// The last document served, with the mount table shape it was made for:
/// clients fetch it often and mount tables change rarely.
static LAST: std::sync::Mutex<Option<(Shape, std::sync::Arc<Vec<u8>>)>> =
    std::sync::Mutex::new(None);

/// The document for the current mount table, as JSON text, made again only
/// when the mount table's shape has changed.
pub(crate) fn cached_document(
    mounts: &MountTable,
) -> Result<std::sync::Arc<Vec<u8>>, serde_json::Error> {
    let shape: Shape = mounts
        .iter()
        .map(|(path, entry)| (path.clone(), entry.kind.clone()))
        .collect();
    if let Ok(last) = LAST.lock()
        && let Some((made_for, doc)) = &*last
        && *made_for == shape
    {
        return Ok(doc.clone());
    }
    let doc = std::sync::Arc::new(document(mounts)?);
    if let Ok(mut last) = LAST.lock() {
        *last = Some((shape, doc.clone()));
    }
    Ok(doc)
}

/// The document for `mounts`, as JSON text.
pub(crate) fn document(mounts: &MountTable) -> Result<Vec<u8>, serde_json::Error> {
    let mut writer = Writer {
        out: Vec::with_capacity(64 * 1024),
        paths: 0,
    };
    writer.out.extend_from_slice(b"{\"paths\":{");
    writer.add("", SYSTEM, "system", "system")?;
    let mut request_bodies = Map::new();
    for route in SYSTEM.iter().filter(|r| !r.fields.is_empty()) {
        request_bodies.insert(body_key("system", route), request_body(route));
    }
    for (mount, entry) in mounts {
        let Some((engine, routes)) = ENGINES.iter().find(|(kind, _)| *kind == entry.kind) else {
            continue;
        };
        writer.add(mount, routes, engine, "secrets")?;
        for route in routes.iter().filter(|r| !r.fields.is_empty()) {
            let key = body_key(engine, route);
            if !request_bodies.contains_key(&key) {
                request_bodies.insert(key, request_body(route));
            }
        }
    }
    writer.out.extend_from_slice(b"},");
    let rest = json!({
        "openapi": "3.0.2",
        "info": {
            "title": "broker",
            "description": "A dynamic credential broker speaking the Vault HTTP API for the subset it implements.",
            "version": env!("CARGO_PKG_VERSION"),
            "license": { "name": "Apache-2.0" },
        },
        "servers": [{ "url": "/v1" }],
        "components": {
            "securitySchemes": {
                "token": { "type": "apiKey", "in": "header", "name": "X-Vault-Token" },
            },
            "responses": {
                "ok": { "description": "OK" },
                "done": { "description": "done" },
            },
            "requestBodies": request_bodies,
        },
        "security": [{ "token": [] }],
    });
    let rest = serde_json::to_vec(&rest)?;
    // `rest` is an object: its members follow the paths' comma.
    writer.out.extend_from_slice(rest.get(1..).unwrap_or(b"}"));
    Ok(writer.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_keys_are_valid_component_names_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for (engine, routes) in [("system", SYSTEM)].iter().chain(ENGINES) {
            for route in routes.iter() {
                let key = body_key(engine, route);
                assert!(
                    key.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
                    "{key}"
                );
                assert!(seen.insert(key.clone()), "two routes share {key}");
            }
        }
    }

    #[test]
    fn the_document_is_json_and_grows_little_per_mount() {
        let entry = |kind: &str| -> crate::core::MountEntry {
            serde_json::from_value(json!({ "type": kind, "accessor": "database_0" })).unwrap()
        };
        let mut one = MountTable::new();
        one.insert("db0/".into(), entry("database"));
        let mut many = MountTable::new();
        for i in 0..100 {
            many.insert(format!("db{i}/"), entry("database"));
        }
        let small = document(&one).unwrap();
        let large = document(&many).unwrap();
        let doc: Value = serde_json::from_slice(&large).unwrap();
        assert!(doc["paths"]["/db99/creds/{role}"]["get"].is_object());
        assert!(doc["components"]["requestBodies"]["database.config.name"].is_object());
        let per_mount = (large.len() - small.len()) / 99;
        assert!(per_mount < 4096, "{per_mount} bytes per database mount");
    }
}
