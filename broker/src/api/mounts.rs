//! `sys/mounts` and `sys/auth`: enabling, disabling, listing and tuning
//! secrets engines and auth methods (the same handlers serve both; the
//! path says which table).
//!
//! A path here names a mount exactly: disabling or tuning a path inside a
//! mount (`db/config`) is refused, never applied to the mount's data. TTL
//! fields take the range [`crate::duration`] documents.

use serde_json::{Value, json};

use crate::core::{Core, MountEntry};
use crate::duration::Ttl;
use crate::framework::{Error, MountOptions, Reply, Request, data, no_content};

/// A TTL field, `None` when absent. Vault's `"system"` means the default.
fn ttl_field(config: Option<&Value>, name: &str) -> Result<Option<u64>, Error> {
    let Some(Value::Object(config)) = config else {
        return Ok(None);
    };
    if config.get(name).and_then(Value::as_str) == Some("system") {
        return Ok(Some(0));
    }
    Ttl::field(config, name)
        .map(|t| t.map(Ttl::secs))
        .map_err(|e| Error::field(name, e))
}

/// A mount as `sys/mounts` or `sys/auth` lists it. An auth method's
/// `config` also names the type of the tokens it issues: Vault's sample
/// answer has `"token_type": "default-service"` there, and clients (vaultrs's
/// `AuthConfigResponse`) require it.
fn describe(entry: &MountEntry, which: Which) -> Value {
    let mut described = json!({
        "type": entry.kind,
        "description": entry.description,
        "accessor": entry.accessor,
        "uuid": entry.uuid,
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        // Vault lists `null` for a mount without options; hvac and vaultrs
        // read a KV mount's version here.
        "options": if entry.options.is_empty() { Value::Null } else { json!(entry.options) },
        "config": {
            "default_lease_ttl": entry.default_lease_ttl,
            "max_lease_ttl": entry.max_lease_ttl,
            "force_no_cache": false,
        },
    });
    if which == Which::Auth {
        described["config"]["token_type"] = json!("default-service");
    }
    described
}

/// Which table a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Secrets,
    Auth,
}

fn which(req: &Request) -> Which {
    if req.path == "sys/auth" || req.path.starts_with("sys/auth/") {
        Which::Auth
    } else {
        Which::Secrets
    }
}

/// The table `which` names, the token store listed among the auth methods.
async fn table(core: &Core, which: Which) -> crate::core::MountTable {
    match which {
        Which::Secrets => core.mounts().await,
        Which::Auth => {
            let mut table = core.auth_mounts().await;
            table.insert(
                crate::core::TOKEN_AUTH_PATH.to_owned(),
                MountEntry {
                    kind: "token".into(),
                    description: "token based credentials".into(),
                    accessor: "auth_token".into(),
                    default_lease_ttl: 0,
                    max_lease_ttl: 0,
                    uuid: String::new(),
                    options: MountOptions::new(),
                },
            );
            table
        }
    }
}

/// `GET sys/mounts`, `GET sys/auth`.
pub(crate) async fn list(core: &Core, req: &Request) -> Result<Reply, Error> {
    let which = which(req);
    let mounts: serde_json::Map<String, Value> = table(core, which)
        .await
        .iter()
        .map(|(p, e)| (p.clone(), describe(e, which)))
        .collect();
    Ok(data(Value::Object(mounts)))
}

/// The most options a mount may be given, and the longest name and value:
/// they are kept in the mount table, which every request reads.
const MAX_OPTIONS: usize = 16;
const MAX_OPTION_NAME: usize = 64;
const MAX_OPTION_VALUE: usize = 256;

/// The `options` field: text to text, as Vault keeps them (a number or a
/// boolean is taken as its text, as Vault's clients send `"version": 2`).
fn options_field(req: &Request) -> Result<MountOptions, Error> {
    let bad = |why: String| Error::field("options", format!("options: {why}"));
    let map = match req.data.get("options") {
        None | Some(Value::Null) => return Ok(MountOptions::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(bad("must be an object of text values".into())),
    };
    if map.len() > MAX_OPTIONS {
        return Err(bad(format!("at most {MAX_OPTIONS} options")));
    }
    let mut options = MountOptions::new();
    for (name, value) in map {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(bad(format!("{name:.64} must be text"))),
        };
        if name.is_empty() || name.len() > MAX_OPTION_NAME || value.len() > MAX_OPTION_VALUE {
            return Err(bad(format!(
                "names are 1-{MAX_OPTION_NAME} bytes and values at most {MAX_OPTION_VALUE}"
            )));
        }
        options.insert(name.clone(), value);
    }
    Ok(options)
}

/// Vault's shorthand types: `kv-v1` and `kv-v2` are `kv` with
/// `options.version` set (Vault's `sys/mounts` handler does the same), and
/// are listed as `kv`.
fn alias(kind: String, options: &mut MountOptions) -> String {
    let version = match kind.as_str() {
        "kv-v1" => "1",
        "kv-v2" => "2",
        _ => return kind,
    };
    options.insert("version".into(), version.into());
    "kv".to_owned()
}

/// `POST sys/mounts/{path}`: enables an engine.
pub(crate) async fn enable(core: &Core, req: &Request) -> Result<Reply, Error> {
    let kind = req.str("type").unwrap_or_default().to_owned();
    if kind.is_empty() {
        return Err(Error::field(
            "type",
            "type is required, e.g. {\"type\": \"database\"}",
        ));
    }
    let mut options = options_field(req)?;
    let kind = match which(req) {
        Which::Secrets => alias(kind, &mut options),
        Which::Auth => kind,
    };
    let config = req.data.get("config");
    let mut accessor = [0u8; 4];
    let _ = getrandom::fill(&mut accessor);
    let entry = MountEntry {
        accessor: format!("{kind}_{}", hex::encode(accessor)),
        uuid: crate::core::random_uuid(),
        kind,
        description: req.str("description").unwrap_or_default().to_owned(),
        default_lease_ttl: ttl_field(config, "default_lease_ttl")?.unwrap_or(0),
        max_lease_ttl: ttl_field(config, "max_lease_ttl")?.unwrap_or(0),
        options,
    };
    match which(req) {
        Which::Secrets => core.mount(req.param("path")?, entry).await?,
        Which::Auth => core.enable_auth(req.param("path")?, entry).await?,
    }
    Ok(no_content())
}

/// `DELETE sys/mounts/{path}`: disables an engine, revoking its leases.
/// `DELETE sys/auth/{path}`: disables an auth method, revoking the tokens
/// it issued (and their leases).
pub(crate) async fn disable(core: &Core, req: &Request) -> Result<Reply, Error> {
    match which(req) {
        Which::Secrets => core.unmount(req.param("path")?).await?,
        Which::Auth => core.disable_auth(req.param("path")?).await?,
    }
    Ok(no_content())
}

/// `GET sys/mounts/{path}/tune`.
pub(crate) async fn read_tune(core: &Core, req: &Request) -> Result<Reply, Error> {
    let mount = req.param("path")?;
    let mounts = table(core, which(req)).await;
    let entry = mounts
        .get(&format!("{mount}/"))
        .ok_or_else(|| Error::invalid(format!("no mount at {mount}")))?;
    let ttls = Core::ttls(entry);
    let mut tune = json!({
        "description": entry.description,
        "default_lease_ttl": ttls.default.as_secs(),
        "max_lease_ttl": ttls.max.as_secs(),
    });
    if !entry.options.is_empty() {
        tune["options"] = json!(entry.options);
    }
    Ok(data(tune))
}

/// `POST sys/mounts/{path}/tune`. Vault takes the TTLs at the top level
/// here, not under `config`.
pub(crate) async fn tune(core: &Core, req: &Request) -> Result<Reply, Error> {
    let body = Value::Object(req.data.clone());
    let description = match req.data.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return Err(Error::field("description", "description must be a string")),
    };
    let (path, default, max) = (
        req.param("path")?,
        ttl_field(Some(&body), "default_lease_ttl")?,
        ttl_field(Some(&body), "max_lease_ttl")?,
    );
    // Options are fixed when a mount is enabled: a KV mount is not upgraded
    // from version 1 to 2 in place (Vault's tune does that, by rewriting
    // every key). Asking for a change is refused rather than ignored.
    let options = options_field(req)?;
    if !options.is_empty() {
        let mounts = table(core, which(req)).await;
        let current = mounts
            .get(&format!("{}/", path.trim_matches('/')))
            .map(|e| &e.options);
        if let Some(current) = current
            && options.iter().any(|(k, v)| current.get(k) != Some(v))
        {
            return Err(Error::field(
                "options",
                "options: a mount's options cannot be changed once it is enabled \
                 (a kv mount is not upgraded to version 2 in place: enable a kv-v2 mount and copy the secrets)",
            ));
        }
    }
    match which(req) {
        Which::Secrets => core.tune(path, description, default, max).await?,
        Which::Auth => core.tune_auth(path, description, default, max).await?,
    }
    Ok(no_content())
}
