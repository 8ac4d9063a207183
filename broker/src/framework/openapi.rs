//! The OpenAPI document, written from path tables: the system's paths,
//! then each mount's paths under the mount. Nothing here restates a route.
//!
//! The document is written as text, path item by path item, with request
//! bodies shared in `components` by backend and pattern: at a thousand
//! mounts the broker holds the text once, never a tree of every value.

use serde_json::{Map, Value, json};

use super::{Access, Operation, PathInfo};

/// The key of a path's request body in `components.requestBodies`:
/// `database.config.name` for the database engine's `config/{name}`.
pub fn body_key(kind: &str, info: &PathInfo) -> String {
    let pattern = info.pattern.as_str();
    let mut key = String::with_capacity(kind.len() + pattern.len() + 1);
    for c in kind
        .chars()
        .chain(std::iter::once('.'))
        .chain(pattern.chars())
    {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            key.push(c);
        } else if !key.ends_with('.') {
            key.push('.');
        }
    }
    key.trim_end_matches('.').to_owned()
}

fn path_parameters(info: &PathInfo) -> Vec<Value> {
    info.pattern
        .parameters()
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

fn method(op: Operation) -> &'static str {
    match op {
        Operation::Read | Operation::List => "get",
        Operation::Create | Operation::Update => "post",
        Operation::Patch => "patch",
        Operation::Delete => "delete",
    }
}

/// One operation; summary and path parameters live on the path item.
fn operation(op: Operation, tag: &str, info: &PathInfo, body: Option<&str>) -> Value {
    let mut operation = json!({
        "tags": [tag],
        "responses": match op {
            Operation::Read | Operation::List => json!({
                "200": { "$ref": "#/components/responses/ok" },
                "default": { "$ref": "#/components/responses/error" },
            }),
            // A delete returns nothing.
            Operation::Delete => json!({
                "204": { "$ref": "#/components/responses/done" },
                "default": { "$ref": "#/components/responses/error" },
            }),
            _ => json!({
                "204": { "$ref": "#/components/responses/done" },
                "200": { "$ref": "#/components/responses/ok" },
                "default": { "$ref": "#/components/responses/error" },
            }),
        },
    });
    if op == Operation::List {
        // Vault's convention: a list is a GET with `list=true` (or the LIST verb).
        operation["parameters"] = json!([{ "name": "list", "in": "query", "required": true, "schema": { "type": "string", "enum": ["true"] } }]);
    }
    if info.access.unauthenticated() {
        operation["security"] = json!([]);
    }
    if matches!(op, Operation::Create | Operation::Update | Operation::Patch)
        && let Some(key) = body
    {
        let key = if op == Operation::Patch {
            patch_key(key)
        } else {
            key.to_owned()
        };
        operation["requestBody"] = json!({ "$ref": format!("#/components/requestBodies/{key}") });
    }
    operation
}

/// The media type of a PATCH body: a JSON merge patch (RFC 7396), as
/// Vault documents and requires it.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// The key of a path's PATCH body, which differs from its write body in
/// its media type only.
fn patch_key(key: &str) -> String {
    format!("{key}.patch")
}

/// A path's request body schema, written once in `components`.
pub fn request_body(info: &PathInfo) -> Value {
    request_body_as(info, "application/json")
}

/// [`request_body`] as `media` (a PATCH's is [`MERGE_PATCH`]).
fn request_body_as(info: &PathInfo, media: &str) -> Value {
    let properties: Map<String, Value> = info
        .fields
        .iter()
        .map(|f| {
            let mut schema = f.kind.schema();
            schema["description"] = json!(f.description);
            if let Some(d) = &f.default {
                schema["default"] = d.clone();
            }
            if f.sensitive {
                schema["writeOnly"] = json!(true);
            }
            (f.name.to_owned(), schema)
        })
        .collect();
    let required: Vec<&str> = info
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    json!({ "content": { media: { "schema": schema } } })
}

/// A document being written.
#[derive(Debug)]
pub struct Writer {
    out: Vec<u8>,
    paths: usize,
    bodies: Map<String, Value>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// An empty document.
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(b"{\"paths\":{");
        Self {
            out,
            paths: 0,
            bodies: Map::new(),
        }
    }

    /// Adds `paths` of a backend of type `kind` under `prefix` (`""` for
    /// the system, `database/` for a mount).
    pub fn add(
        &mut self,
        prefix: &str,
        kind: &str,
        tag: &str,
        paths: &[PathInfo],
    ) -> Result<(), serde_json::Error> {
        for info in paths {
            let body = (!info.fields.is_empty()).then(|| body_key(kind, info));
            if let Some(key) = &body
                && !self.bodies.contains_key(key)
            {
                self.bodies.insert(key.clone(), request_body(info));
                if info.operations.contains(&Operation::Patch) {
                    self.bodies
                        .insert(patch_key(key), request_body_as(info, MERGE_PATCH));
                }
            }
            let mut item = Map::new();
            item.insert("summary".into(), json!(info.summary));
            if !info.description.is_empty() {
                item.insert("description".into(), json!(info.description));
            }
            let parameters = path_parameters(info);
            if !parameters.is_empty() {
                item.insert("parameters".into(), Value::Array(parameters));
            }
            // A path both read and listed (a KV secret and the folder of
            // that name) has one GET per path item: the list is documented
            // on the path with a trailing `/`, as Vault's document does,
            // and as a LIST of the path is checked by policies (`path/`).
            let listed_apart = info.operations.contains(&Operation::Read)
                && info.operations.contains(&Operation::List);
            let mut list_item = listed_apart.then(|| item.clone());
            for &op in &info.operations {
                let target = match &mut list_item {
                    Some(list_item) if op == Operation::List => list_item,
                    _ => &mut item,
                };
                target
                    .entry(method(op))
                    .or_insert_with(|| operation(op, tag, info, body.as_deref()));
            }
            if info.access == Access::Sudo {
                item.insert("x-vault-sudo".into(), json!(true));
                if let Some(list_item) = &mut list_item {
                    list_item.insert("x-vault-sudo".into(), json!(true));
                }
            }
            // Vault's own extension: a write here is a `create` when its
            // object does not exist yet and an `update` when it does (the
            // path has an existence check), and policies grant the two apart.
            if info.existence_check {
                item.insert("x-vault-createSupported".into(), json!(true));
            }
            let path = format!("/{prefix}{}", info.pattern.openapi());
            self.path_item(&path, &item)?;
            if let Some(list_item) = list_item {
                self.path_item(&format!("{path}/"), &list_item)?;
            }
        }
        Ok(())
    }

    /// Writes one path item.
    fn path_item(
        &mut self,
        path: &str,
        item: &Map<String, Value>,
    ) -> Result<(), serde_json::Error> {
        if self.paths > 0 {
            self.out.push(b',');
        }
        self.paths += 1;
        serde_json::to_writer(&mut self.out, path)?;
        self.out.push(b':');
        serde_json::to_writer(&mut self.out, item)
    }

    /// The document's text.
    pub fn finish(mut self) -> Result<Vec<u8>, serde_json::Error> {
        self.out.extend_from_slice(b"},");
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
                    "ok": {
                        "description": "OK: Vault's envelope (data, and a lease for a secret), or for sys/health and sys/seal-status their own object; certificates and CRLs come as PEM or DER",
                        "content": {
                            "application/json": { "schema": { "$ref": "#/components/schemas/envelope" } },
                        },
                    },
                    "done": { "description": "done; nothing to return" },
                    "error": {
                        "description": "refused or failed: 400 invalid, 403 permission denied, 404 nothing there (an empty list for a read of nothing), 405 the path does not take the operation (Allow lists what it takes), 429 over a rate limit (Retry-After), 500 internal (the request id to quote), 503 sealed or a dependency down",
                        "content": {
                            "application/json": { "schema": { "$ref": "#/components/schemas/errors" } },
                        },
                    },
                },
                "schemas": {
                    "envelope": {
                        "type": "object",
                        "properties": {
                            "request_id": { "type": "string" },
                            "lease_id": { "type": "string" },
                            "lease_duration": { "type": "integer" },
                            "renewable": { "type": "boolean" },
                            "data": { "type": "object", "nullable": true },
                            "warnings": { "type": "array", "items": { "type": "string" }, "nullable": true },
                            "wrap_info": { "type": "object", "nullable": true },
                            "auth": { "type": "object", "nullable": true },
                        },
                    },
                    "errors": {
                        "type": "object",
                        "required": ["errors"],
                        "properties": {
                            "errors": { "type": "array", "items": { "type": "string" } },
                        },
                    },
                },
                "requestBodies": self.bodies,
            },
            "security": [{ "token": [] }],
        });
        let rest = serde_json::to_vec(&rest)?;
        // `rest` is an object: its members follow the paths' comma.
        self.out.extend_from_slice(rest.get(1..).unwrap_or(b"}"));
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::Writer;
    use crate::framework::{Access, Error, Path, Reply, Request, Table, no_content};

    struct Toy;

    impl Toy {
        async fn write(&self, _req: &Request) -> Result<Reply, Error> {
            Ok(no_content())
        }
        async fn exists(&self, _req: &Request) -> Result<bool, Error> {
            Ok(false)
        }
    }

    /// What a policy must grant is in the document: `x-vault-sudo` on a
    /// root-protected path, `x-vault-createSupported` where writes are told
    /// apart as creates and updates, and no security on an open path.
    #[test]
    fn the_document_says_what_a_policy_must_grant() {
        let table = Table::new(vec![
            Path::<Toy>::new("things/{name}")
                .summary("a thing")
                .create(|t, r| Box::pin(t.write(r)))
                .update(|t, r| Box::pin(t.write(r)))
                .exists(|t, r| Box::pin(t.exists(r))),
            Path::<Toy>::new("rotate")
                .summary("rotate")
                .access(Access::Sudo)
                .update(|t, r| Box::pin(t.write(r))),
            Path::<Toy>::new("status")
                .summary("status")
                .access(Access::Open)
                .read(|t, r| Box::pin(t.write(r))),
        ])
        .unwrap();
        let mut writer = Writer::new();
        writer.add("toy/", "toy", "secrets", table.paths()).unwrap();
        let doc: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        let paths = &doc["paths"];
        assert_eq!(paths["/toy/things/{name}"]["x-vault-createSupported"], true);
        assert!(paths["/toy/things/{name}"].get("x-vault-sudo").is_none());
        assert_eq!(paths["/toy/rotate"]["x-vault-sudo"], true);
        assert!(
            paths["/toy/rotate"]
                .get("x-vault-createSupported")
                .is_none()
        );
        assert_eq!(
            paths["/toy/status"]["get"]["security"],
            serde_json::json!([])
        );
        assert!(paths["/toy/rotate"]["post"].get("security").is_none());
    }

    /// A path that is read and listed (a secret and the folder of its
    /// name) documents its list on the path with a trailing `/`: one GET
    /// per path item, and nothing left out.
    #[test]
    fn a_path_read_and_listed_documents_its_list_apart() {
        let table = Table::new(vec![
            Path::<Toy>::new("secrets/{path+}")
                .summary("a secret, or a folder")
                .access(Access::Sudo)
                .read(|t, r| Box::pin(t.write(r)))
                .list(|t, r| Box::pin(t.write(r)))
                .update(|t, r| Box::pin(t.write(r))),
            Path::<Toy>::new("folders")
                .summary("list only")
                .list(|t, r| Box::pin(t.write(r))),
        ])
        .unwrap();
        let mut writer = Writer::new();
        writer.add("toy/", "toy", "secrets", table.paths()).unwrap();
        let doc: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        let paths = &doc["paths"];
        let item = &paths["/toy/secrets/{path}"];
        assert!(item["get"]["parameters"].is_null(), "the GET is the read");
        assert!(item["post"].is_object());
        let listed = &paths["/toy/secrets/{path}/"];
        assert_eq!(listed["get"]["parameters"][0]["name"], "list");
        assert!(listed.get("post").is_none());
        assert_eq!(listed["x-vault-sudo"], true);
        assert_eq!(listed["parameters"][0]["name"], "path");
        // A PATCH body is documented as the merge patch it must be.
        let patched = Table::new(vec![
            Path::<Toy>::new("p")
                .summary("patched")
                .field(crate::framework::Field::object("data", "d"))
                .patch(|t, r| Box::pin(t.write(r)))
                .update(|t, r| Box::pin(t.write(r))),
        ])
        .unwrap();
        let mut writer = Writer::new();
        writer
            .add("toy/", "toy", "secrets", patched.paths())
            .unwrap();
        let doc2: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        let key = doc2["paths"]["/toy/p"]["patch"]["requestBody"]["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let bodies = &doc2["components"]["requestBodies"];
        assert!(bodies[&key]["content"][super::MERGE_PATCH]["schema"].is_object());
        let post = doc2["paths"]["/toy/p"]["post"]["requestBody"]["$ref"]
            .as_str()
            .unwrap();
        let post = post.rsplit('/').next().unwrap();
        assert!(bodies[post]["content"]["application/json"]["schema"].is_object());
        // A path that only lists keeps its list where it is.
        assert_eq!(
            paths["/toy/folders"]["get"]["parameters"][0]["name"],
            "list"
        );
        assert!(paths.get("/toy/folders/").is_none());
    }
}
