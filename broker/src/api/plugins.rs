//! `sys/plugins/catalog` (register a plugin by SHA-256, read, list,
//! deregister) and `sys/plugins/reload/backend`, as Vault answers them.
//! Built-in plugins are listed beside registered ones, with their
//! versions; they cannot be replaced or removed.

use serde_json::{Value, json};

use crate::core::Core;
use crate::framework::{Error, Reply, Request, data, list as list_reply, no_content};
use crate::plugin::{HostCapability, Plugin, Registration};

/// The plugin types this broker registers (Vault's names). Auth plugins
/// are not supported.
const TYPES: &[&str] = &["database", "secret"];

fn plugin_type(req: &Request) -> Result<&str, Error> {
    let kind = req.param("type")?;
    if TYPES.contains(&kind) {
        Ok(kind)
    } else if kind == "auth" {
        Err(Error::invalid(
            "auth plugins are not supported: auth methods are built in (approle, jwt, cert, token)",
        ))
    } else {
        Err(Error::invalid(format!(
            "unknown plugin type {kind:?}; this broker registers: {}",
            TYPES.join(", ")
        )))
    }
}

/// A built-in's Vault type: a certificate plugin is a secrets engine of its
/// own, the rest are database plugins.
fn builtin_type(p: &Plugin) -> &'static str {
    if p.info().capabilities.contains(&HostCapability::Signer) {
        "secret"
    } else {
        "database"
    }
}

/// Every plugin as `(type, name, entry)`, built-ins first.
fn entries(core: &Core) -> Vec<(String, String, Value)> {
    let catalog = core.catalog();
    let mut out = Vec::new();
    for (name, plugin) in catalog.named() {
        if catalog.is_builtin(&name) {
            let info = plugin.info();
            out.push((
                builtin_type(&plugin).to_owned(),
                name.clone(),
                json!({
                    "name": name,
                    "type": builtin_type(&plugin),
                    "builtin": true,
                    "version": format!("v{}+builtin", info.version),
                    "contract_version": info.api_version,
                    "sha256": info.sha256,
                    "command": "",
                    "args": [],
                    "deprecation_status": "supported",
                }),
            ));
        }
    }
    for r in catalog.registrations() {
        let loaded = catalog.get(&r.name);
        out.push((
            r.kind.clone(),
            r.name.clone(),
            json!({
                "name": r.name,
                "type": r.kind,
                "builtin": false,
                "version": r.version,
                "contract_version": loaded.as_ref().map(|p| p.info().api_version.clone()),
                "plugin_version": loaded.as_ref().map(|p| p.info().version.clone()),
                "sha256": r.sha256,
                "command": r.command,
                "args": [],
                "refused": catalog.refusal(&r.name),
            }),
        ));
    }
    out
}

/// `GET sys/plugins/catalog`: names by type, and every entry in `detailed`.
pub(crate) async fn list_all(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let all = entries(core);
    let mut body = serde_json::Map::new();
    for kind in TYPES.iter().chain(&["auth"]) {
        let mut names: Vec<&str> = all
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, n, _)| n.as_str())
            .collect();
        names.sort_unstable();
        body.insert((*kind).to_owned(), json!(names));
    }
    body.insert(
        "detailed".into(),
        Value::Array(all.into_iter().map(|(_, _, e)| e).collect()),
    );
    Ok(data(Value::Object(body)))
}

/// `LIST sys/plugins/catalog/{type}`.
pub(crate) async fn list_type(core: &Core, req: &Request) -> Result<Reply, Error> {
    let kind = plugin_type(req)?;
    let mut names: Vec<String> = entries(core)
        .into_iter()
        .filter(|(k, _, _)| k == kind)
        .map(|(_, n, _)| n)
        .collect();
    names.sort_unstable();
    list_reply(names)
}

/// `GET sys/plugins/catalog/{type}/{name}`.
pub(crate) async fn read(core: &Core, req: &Request) -> Result<Reply, Error> {
    let kind = plugin_type(req)?;
    let name = req.param("name")?;
    entries(core)
        .into_iter()
        .find(|(k, n, _)| k == kind && n == name)
        .map(|(_, _, e)| data(e))
        .ok_or_else(|| Error::NotFound(format!("no {kind} plugin named {name:?} in the catalog")))
}

/// `PUT sys/plugins/catalog/{type}/{name}`: `sha256`, `command`, `version`.
pub(crate) async fn register(core: &Core, req: &Request) -> Result<Reply, Error> {
    let kind = plugin_type(req)?.to_owned();
    let name = req.param("name")?.to_owned();
    let sha256 = req
        .str("sha256")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::field(
                "sha256",
                "the SHA-256 of the plugin's file is required: it pins what the broker may run",
            )
        })?
        .to_ascii_lowercase();
    let command = req
        .str("command")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::field(
                "command",
                "the plugin's file name in the plugin directory is required",
            )
        })?
        .to_owned();
    if req.list("args")?.is_some_and(|a| !a.is_empty())
        || req.list("env")?.is_some_and(|e| !e.is_empty())
    {
        return Err(Error::invalid(
            "args and env are not supported: plugins are WASM components with no arguments or environment",
        ));
    }
    let version = req.str("version").unwrap_or_default().to_owned();
    core.register_plugin(Registration {
        name,
        kind,
        command,
        sha256,
        version,
    })
    .await?;
    Ok(no_content())
}

/// `DELETE sys/plugins/catalog/{type}/{name}`.
pub(crate) async fn deregister(core: &Core, req: &Request) -> Result<Reply, Error> {
    plugin_type(req)?;
    let name = req.param("name")?;
    if core.catalog().is_builtin(name) {
        return Err(Error::invalid(format!(
            "{name} is built in and cannot be removed"
        )));
    }
    core.deregister_plugin(name).await?;
    Ok(no_content())
}

/// `PUT sys/plugins/reload/backend`: `plugin` (a registered name).
pub(crate) async fn reload(core: &Core, req: &Request) -> Result<Reply, Error> {
    let Some(name) = req.str("plugin").filter(|s| !s.is_empty()) else {
        return Err(Error::field(
            "plugin",
            "the registered plugin to reload is required (reloading by mounts is not supported)",
        ));
    };
    if core.catalog().is_builtin(name) {
        return Err(Error::invalid(format!(
            "{name} is built in: it is reloaded with the broker"
        )));
    }
    core.reload_plugin(name).await?;
    Ok(data(json!({ "reload_id": "" })))
}
