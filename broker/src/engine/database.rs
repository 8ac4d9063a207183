//! The `database` secrets engine, Vault-compatible: connection configs,
//! roles, and leased credentials made by the configured plugin.
//!
//! Connection configs are sealed in storage; the admin password is never
//! returned, and the plugin never sees it (the host opens connections).
//! A config read never shows a password, wherever the URL carries one.
//!
//! Vault's numeric connection settings are checked when a config is
//! written (a 400 naming the field), and again when a pool is built from a
//! stored config ([`crate::sql`]), since configs written before the check
//! may hold anything:
//!
//! | field | range | meaning |
//! |---|---|---|
//! | `max_open_connections` | 0 to 1000 | pool size; 0 or unset: 4 |
//! | `max_idle_connections` | 0 to 1000 | accepted as Vault does; the pool keeps at most `max_open_connections` |
//! | `max_connection_lifetime` | 0 to 30 days (seconds or `"5m"`) | pooled connections older than this are closed; 0: never |

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::EngineError;
use crate::barrier::SealedStorage;
use crate::duration::Ttl;
use crate::lease::{ConnectionResolver, IssueParams, Leases, ResolvedConnection};
use crate::plugin::{Catalog, ConnectionView, HostCapability};
use crate::sql::{Dialect, MAX_CONNECTION_LIFETIME, MAX_OPEN_CONNECTIONS, SqlTarget};
use crate::storage::LeaseRow;

/// A stored connection config (`config/:name`).
#[derive(Clone, Serialize, Deserialize)]
pub struct DbConfig {
    /// The plugin, by catalog name or Vault alias.
    pub plugin_name: String,
    /// With `{{username}}` and `{{password}}` placeholders.
    pub connection_url: Zeroizing<String>,
    /// The admin user.
    #[serde(default)]
    pub username: Option<String>,
    /// The admin password: sealed, never returned.
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// Roles allowed to use this config (`*` for all).
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Pool size (range-checked when written, and again by the pool).
    #[serde(default)]
    pub max_open_connections: Option<usize>,
    /// Other fields, passed to the plugin (username_template, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("plugin_name", &self.plugin_name)
            .field("connection_url", &redact_url(&self.connection_url))
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A stored role (`roles/:name`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DbRole {
    /// The connection config it uses.
    pub db_name: String,
    /// The plugin's role fields (statements…).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    /// Lease TTL in seconds (0: the mount's default).
    #[serde(default)]
    pub default_ttl: u64,
    /// Max lease TTL in seconds (0: the mount's max).
    #[serde(default)]
    pub max_ttl: u64,
}

/// The mount's TTL defaults.
#[derive(Debug, Clone, Copy)]
pub struct MountTtls {
    /// Default lease TTL.
    pub default: Duration,
    /// Max lease TTL.
    pub max: Duration,
}

/// One mount of the database engine.
#[derive(Debug, Clone)]
pub struct DatabaseEngine {
    mount: String,
    store: SealedStorage,
    catalog: Arc<Catalog>,
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn valid_name(name: &str) -> Result<(), EngineError> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(EngineError::BadRequest(format!(
            "invalid name {name:?}: use 1-128 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

impl DatabaseEngine {
    /// The engine mounted at `mount` (e.g. `database`).
    pub fn new(mount: &str, store: SealedStorage, catalog: Arc<Catalog>) -> Self {
        Self {
            mount: mount.trim_end_matches('/').to_owned(),
            store,
            catalog,
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("mounts/{}/{kind}/{name}", self.mount)
    }

    fn prefix(&self, kind: &str) -> String {
        format!("mounts/{}/{kind}/", self.mount)
    }

    /// Writes a connection config, after checking it with the plugin unless
    /// `verify_connection` is false.
    pub async fn write_config(
        &self,
        name: &str,
        body: Map<String, Value>,
    ) -> Result<(), EngineError> {
        valid_name(name)?;
        let mut body = body;
        let verify = body
            .remove("verify_connection")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        // serde's type errors quote the offending value; a secret must never
        // reach an error message, so the secret fields are checked first.
        for secret_field in ["password", "connection_url"] {
            if body.get(secret_field).is_some_and(|v| !v.is_string()) {
                return Err(EngineError::BadRequest(format!(
                    "{secret_field} must be a string"
                )));
            }
        }
        let existing: Option<DbConfig> = self.store.get(&self.key("config", name)).await?;
        // Vault keeps the stored password when an update leaves it out.
        if !body.contains_key("password")
            && let Some(pw) = existing.as_ref().and_then(|c| c.password.as_ref())
        {
            body.insert("password".into(), Value::String(pw.to_string()));
        }
        if let Some(roles) = body.get("allowed_roles").cloned() {
            body.insert("allowed_roles".into(), json!(string_list(Some(&roles))));
        }
        check_numeric_fields(&mut body)?;
        let config: DbConfig = serde_json::from_value(Value::Object(body))
            .map_err(|e| EngineError::BadRequest(format!("invalid connection config: {e}")))?;
        let plugin = self.catalog.get(&config.plugin_name).ok_or_else(|| {
            EngineError::BadRequest(format!("unknown plugin_name {:?}", config.plugin_name))
        })?;
        if verify {
            let resolved = self.resolved(name, &config)?;
            let ctx = context(&self.mount, name, &resolved);
            plugin
                .verify_connection(&ctx, &resolved.connection)
                .await
                .map_err(|e| {
                    EngineError::BadRequest(format!("error verifying the connection: {e}"))
                })?;
        }
        self.store.put(&self.key("config", name), &config).await?;
        // A pool that failed for the old settings is no longer this config's.
        self.forget_pool(name);
        Ok(())
    }

    fn pool_key(&self, name: &str) -> String {
        format!("{}/config/{name}", self.mount)
    }

    fn forget_pool(&self, name: &str) {
        let key = self.pool_key(name);
        for pools in self.catalog.pools() {
            pools.remove(&key);
        }
    }

    /// A connection config, without its password.
    pub async fn read_config(&self, name: &str) -> Result<Value, EngineError> {
        let config = self.config(name).await?;
        let mut details = Map::new();
        details.insert(
            "connection_url".into(),
            json!(redact_url(&config.connection_url)),
        );
        details.insert("username".into(), json!(config.username));
        if let Some(n) = config.max_open_connections {
            details.insert("max_open_connections".into(), json!(n));
        }
        for field in ["max_idle_connections", "max_connection_lifetime"] {
            if let Some(v) = config.extra.get(field) {
                details.insert(field.into(), v.clone());
            }
        }
        Ok(json!({
            "plugin_name": config.plugin_name,
            "connection_details": details,
            "allowed_roles": config.allowed_roles,
            "verify_connection": true,
        }))
    }

    async fn config(&self, name: &str) -> Result<DbConfig, EngineError> {
        self.store
            .get(&self.key("config", name))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no connection config named {name:?}")))
    }

    /// Deletes a connection config. Its leases keep what they need.
    pub async fn delete_config(&self, name: &str) -> Result<(), EngineError> {
        self.store.delete(&self.key("config", name)).await?;
        self.forget_pool(name);
        Ok(())
    }

    /// Names of connection configs.
    pub async fn list_configs(&self) -> Result<Vec<String>, EngineError> {
        self.list("config").await
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, EngineError> {
        let prefix = self.prefix(kind);
        Ok(self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .map(|k| k[prefix.len()..].to_owned())
            .collect())
    }

    /// Writes a role.
    pub async fn write_role(
        &self,
        name: &str,
        mut body: Map<String, Value>,
    ) -> Result<(), EngineError> {
        valid_name(name)?;
        for ttl in ["default_ttl", "max_ttl"] {
            if let Some(parsed) = Ttl::field(&body, ttl).map_err(EngineError::BadRequest)? {
                body.insert(ttl.into(), json!(parsed.secs()));
            }
        }
        let role: DbRole = serde_json::from_value(Value::Object(body))
            .map_err(|e| EngineError::BadRequest(format!("invalid role: {e}")))?;
        if role.db_name.is_empty() {
            return Err(EngineError::BadRequest("db_name is required".into()));
        }
        if role.max_ttl > 0 && role.default_ttl > role.max_ttl {
            return Err(EngineError::BadRequest(
                "default_ttl cannot be longer than max_ttl".into(),
            ));
        }
        self.store.put(&self.key("role", name), &role).await?;
        Ok(())
    }

    /// A role.
    pub async fn read_role(&self, name: &str) -> Result<Value, EngineError> {
        let role = self.role(name).await?;
        let mut out = role.fields.clone();
        // Vault answers every statement field, as a list, set or not.
        for field in [
            "creation_statements",
            "revocation_statements",
            "renew_statements",
            "rollback_statements",
        ] {
            let list = match out.remove(field) {
                Some(Value::String(s)) => vec![Value::String(s)],
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            out.insert(field.into(), Value::Array(list));
        }
        out.insert("credential_type".into(), json!("password"));
        out.insert("db_name".into(), json!(role.db_name));
        out.insert("default_ttl".into(), json!(role.default_ttl));
        out.insert("max_ttl".into(), json!(role.max_ttl));
        Ok(Value::Object(out))
    }

    async fn role(&self, name: &str) -> Result<DbRole, EngineError> {
        self.store
            .get(&self.key("role", name))
            .await?
            .ok_or_else(|| EngineError::BadRequest(format!("unknown role: {name}")))
    }

    /// Deletes a role. Its leases keep what they need.
    pub async fn delete_role(&self, name: &str) -> Result<(), EngineError> {
        self.store.delete(&self.key("role", name)).await?;
        Ok(())
    }

    /// Names of roles.
    pub async fn list_roles(&self) -> Result<Vec<String>, EngineError> {
        self.list("role").await
    }

    fn resolved(&self, name: &str, config: &DbConfig) -> Result<ResolvedConnection, EngineError> {
        let plugin = self.catalog.get(&config.plugin_name).ok_or_else(|| {
            EngineError::BadRequest(format!("unknown plugin_name {:?}", config.plugin_name))
        })?;
        let dialect = plugin.info().capabilities.iter().find_map(|c| match c {
            HostCapability::SqlPostgres => Some(Dialect::Postgres),
            HostCapability::SqlMysql => Some(Dialect::MySql),
            HostCapability::Signer => None,
        });
        // Read leniently: a config stored before the write-time check may
        // hold anything here. What is out of range reaches the pool, which
        // refuses it for this config alone, naming the field.
        let lifetime = match config.extra.get("max_connection_lifetime") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Ttl::deserialize(v).map(|t| t.0).map_err(|_| {
                EngineError::BadRequest(format!(
                    "connection config {name:?} has an unusable max_connection_lifetime; write the config again"
                ))
            })?),
        };
        let target = dialect.map(|d| {
            let t = SqlTarget::new(
                d,
                &config.connection_url,
                config.username.as_deref(),
                config.password.as_deref().map(String::as_str),
            )
            .with_max_connection_lifetime(lifetime);
            Arc::new(match config.max_open_connections {
                // Vault's meaning of 0: the default.
                Some(n) if n > 0 => t.with_max_open_connections(n),
                _ => t,
            })
        });
        // The plugin sees every field but the URL (which may hold a password) and the password.
        let mut view = config.extra.clone();
        view.insert("plugin_name".into(), json!(config.plugin_name));
        view.insert("username".into(), json!(config.username));
        Ok(ResolvedConnection {
            connection: ConnectionView {
                name: name.to_owned(),
                config: Value::Object(view),
            },
            target,
            signer: None,
        })
    }

    /// Issues a credential for `role_name` under a new lease.
    pub async fn creds(
        &self,
        leases: &Leases,
        role_name: &str,
        ttls: MountTtls,
        display_name: &str,
        token_accessor: Option<String>,
    ) -> Result<(LeaseRow, Map<String, Value>), EngineError> {
        let role = self.role(role_name).await?;
        let config = self.config(&role.db_name).await.map_err(|_| {
            EngineError::BadRequest(format!(
                "role {role_name:?} uses connection {:?}, which does not exist",
                role.db_name
            ))
        })?;
        if !config
            .allowed_roles
            .iter()
            .any(|r| r == "*" || r == role_name)
        {
            return Err(EngineError::BadRequest(format!(
                "role {role_name:?} is not allowed by connection {:?} (allowed_roles)",
                role.db_name
            )));
        }
        let max = if role.max_ttl > 0 {
            Duration::from_secs(role.max_ttl).min(ttls.max)
        } else {
            ttls.max
        };
        let ttl = if role.default_ttl > 0 {
            Duration::from_secs(role.default_ttl)
        } else {
            ttls.default
        }
        .min(max);
        let (row, credential) = leases
            .issue(IssueParams {
                mount: self.mount.clone(),
                endpoint: "creds",
                role_name: role_name.to_owned(),
                parameters: Value::Null,
                role: Value::Object(role.fields.clone()),
                config_name: role.db_name.clone(),
                plugin: config.plugin_name.clone(),
                connection: self.resolved(&role.db_name, &config)?,
                display_name: display_name.to_owned(),
                token_accessor,
                ttl,
                max_ttl: max,
            })
            .await?;
        Ok((row, credential.data))
    }

    /// Rotates the admin password of a connection config and stores the new one.
    pub async fn rotate_root(&self, name: &str) -> Result<(), EngineError> {
        let mut config = self.config(name).await?;
        let plugin = self.catalog.get(&config.plugin_name).ok_or_else(|| {
            EngineError::BadRequest(format!("unknown plugin_name {:?}", config.plugin_name))
        })?;
        let resolved = self.resolved(name, &config)?;
        let update = plugin
            .rotate_root(&context(&self.mount, name, &resolved), &resolved.connection)
            .await?;
        if let Some(pw) = update.get("password").and_then(Value::as_str) {
            config.password = Some(Zeroizing::new(pw.to_owned()));
        }
        self.store.put(&self.key("config", name), &config).await?;
        Ok(())
    }
}

fn context(mount: &str, name: &str, resolved: &ResolvedConnection) -> crate::plugin::CallContext {
    match &resolved.target {
        Some(t) => {
            crate::plugin::CallContext::new().with_sql(&format!("{mount}/config/{name}"), t.clone())
        }
        None => crate::plugin::CallContext::new(),
    }
}

/// A whole number from a request body, as Vault takes one: a JSON number
/// or its text (`"4"`). `None` for anything else.
fn whole_number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Checks Vault's numeric connection settings against their ranges (see
/// the module docs) and stores each in one form: a number, or nothing for
/// Vault's "unset" values. The error names the field, never the value.
fn check_numeric_fields(body: &mut Map<String, Value>) -> Result<(), EngineError> {
    let max = MAX_OPEN_CONNECTIONS as u64;
    for (field, what) in [
        (
            "max_open_connections",
            format!("must be a whole number from 0 to {max} (0 means the default, 4)"),
        ),
        (
            "max_idle_connections",
            format!("must be a whole number from 0 to {max}"),
        ),
    ] {
        match body.get(field) {
            None | Some(Value::Null) => {
                body.remove(field);
            }
            Some(v) => match whole_number(v) {
                Some(0) if field == "max_open_connections" => {
                    body.remove(field);
                }
                Some(n) if n <= max => {
                    body.insert(field.into(), json!(n));
                }
                _ => return Err(EngineError::BadRequest(format!("{field}: {what}"))),
            },
        }
    }
    let field = "max_connection_lifetime";
    let limit = MAX_CONNECTION_LIFETIME.as_secs();
    let lifetime = Ttl::field(body, field)
        .map_err(|_| {
            EngineError::BadRequest(format!(
                "{field}: must be a duration (seconds, or a form like \"5m\") of at most {limit} seconds"
            ))
        })?
        .map(Ttl::secs);
    match lifetime {
        None | Some(0) => {
            body.remove(field);
        }
        Some(secs) if secs <= limit => {
            body.insert(field.into(), json!(secs));
        }
        Some(_) => {
            return Err(EngineError::BadRequest(format!(
                "{field}: must be at most {limit} seconds (30 days)"
            )));
        }
    }
    Ok(())
}

/// What a masked password shows.
const MASK: &str = "*****";

/// Whether a URL parameter or a key/value DSN keyword names a password.
fn is_password_key(key: &str) -> bool {
    let key = percent_encoding::percent_decode_str(key.trim()).decode_utf8_lossy();
    ["password", "passwd", "pass", "pwd", "sslpassword"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k))
}

/// A connection URL or DSN fit to show: every password it may carry is
/// masked, in the userinfo (`postgres://u:*****@h/db`, `u:*****@tcp(h)/`),
/// in query parameters (`?password=*****`) and in libpq's key/value form
/// (`host=h password=*****`). The `{{password}}` placeholder is shown: it
/// is not a secret. Errs towards masking.
pub(crate) fn redact_url(url: &str) -> String {
    let is_url = url.contains("://");
    let shown = if !is_url && looks_key_value(url) {
        redact_key_values(url)
    } else {
        redact_query(&redact_userinfo(url))
    };
    mask_assignments(&shown, is_url)
}

/// The last net: any `password=…` (or `pwd = …`, any case) left in the
/// text is masked up to the next space (or `&`, in a URL's query).
fn mask_assignments(text: &str, is_url: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let keyword = ["sslpassword", "password", "passwd", "pass", "pwd"]
            .into_iter()
            .find(|k| at_word_start && bytes[i..].starts_with(k.as_bytes()));
        let Some(keyword) = keyword else {
            i += 1;
            continue;
        };
        let mut j = i + keyword.len();
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'=') {
            i += keyword.len();
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let value = &text[j..];
        if value.starts_with(MASK) || value.starts_with("{{password}}") {
            i = j;
            continue;
        }
        let end = if value.starts_with('\'') {
            // To the closing quote; an escaped one does not close it.
            let mut k = 1;
            let v = value.as_bytes();
            let close = loop {
                match v.get(k) {
                    None => break v.len(),
                    Some(b'\\') => k += 2,
                    Some(b'\'') => break k + 1,
                    Some(_) => k += 1,
                }
            };
            close.min(value.len())
        } else {
            value
                .find(|c: char| c.is_whitespace() || (is_url && c == '&'))
                .unwrap_or(value.len())
        };
        let end = j + end;
        if !text.is_char_boundary(end) {
            // An escape split a character: mask to the end.
            out.push_str(&text[copied..j]);
            out.push_str(MASK);
            return out;
        }
        out.push_str(&text[copied..j]);
        out.push_str(MASK);
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether `text` starts as libpq's key/value form does: a keyword (letters,
/// digits, `_`), then `=`. A Go DSN's userinfo has a `:` first.
fn looks_key_value(text: &str) -> bool {
    let text = text.trim_start();
    let key_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    key_end > 0 && text[key_end..].trim_start().starts_with('=')
}

fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    // A key/value DSN may hold an `@` in a value; it has no userinfo.
    if scheme.is_none() && userinfo.contains('=') {
        return url.to_owned();
    }
    match userinfo.split_once(':') {
        Some((user, password)) if password != "{{password}}" => match scheme {
            Some(scheme) => format!("{scheme}://{user}:{MASK}@{host}"),
            None => format!("{user}:{MASK}@{host}"),
        },
        _ => url.to_owned(),
    }
}

/// Masks password parameters after the first `?` (separated by `&`).
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    out.push('?');
    let mut rest = query;
    loop {
        let end = rest.find('&').unwrap_or(rest.len());
        let (param, tail) = rest.split_at(end);
        match param.split_once('=') {
            Some((key, value)) if is_password_key(key) && value != "{{password}}" => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(param),
        }
        let mut chars = tail.chars();
        match chars.next() {
            Some(separator) => {
                out.push(separator);
                rest = chars.as_str();
            }
            None => break,
        }
    }
    out
}

/// Masks the values of password keywords in libpq's `key=value` form,
/// where a value is a bare word or single-quoted with `\'` and `\\`
/// escapes, and spaces may surround the `=`. Text that does not parse as
/// that form is masked from the first password keyword on.
fn redact_key_values(dsn: &str) -> String {
    let bytes = dsn.as_bytes();
    let mut out = String::with_capacity(dsn.len());
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    while i < bytes.len() {
        let start = i;
        i = skip_space(i);
        out.push_str(&dsn[start..i]);
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &dsn[key_start..i];
        let eq = skip_space(i);
        if eq >= bytes.len() || bytes[eq] != b'=' {
            // Not key/value text: mask from the first password keyword on.
            return mask_from_password_keyword(dsn);
        }
        let value_start = skip_space(eq + 1);
        let mut j = value_start;
        if j < bytes.len() && bytes[j] == b'\'' {
            j += 1;
            loop {
                match bytes.get(j) {
                    None => return mask_from_password_keyword(dsn),
                    Some(b'\\') => j += 2,
                    Some(b'\'') => {
                        j += 1;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
        } else {
            while j < bytes.len() && !bytes[j].is_ascii_whitespace() {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
        }
        let j = j.min(bytes.len());
        out.push_str(&dsn[key_start..value_start]);
        if is_password_key(key) && !dsn.is_char_boundary(j) {
            return mask_from_password_keyword(dsn);
        }
        if is_password_key(key) && &dsn[value_start..j] != "{{password}}" {
            out.push_str(MASK);
        } else if dsn.is_char_boundary(j) {
            out.push_str(&dsn[value_start..j]);
        } else {
            return mask_from_password_keyword(dsn);
        }
        i = j;
    }
    out
}

/// Everything from the first word that names a password is masked.
fn mask_from_password_keyword(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match ["pass", "pwd"].iter().filter_map(|k| lower.find(k)).min() {
        Some(at) => format!("{}{MASK}", &text[..at]),
        None => text.to_owned(),
    }
}

#[async_trait::async_trait]
impl ConnectionResolver for DatabaseEngine {
    async fn resolve(&self, mount: &str, config_name: &str) -> Option<ResolvedConnection> {
        if mount != self.mount {
            return None;
        }
        let config = self.config(config_name).await.ok()?;
        self.resolved(config_name, &config).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn checked(fields: Value) -> Result<Map<String, Value>, String> {
        let Value::Object(mut body) = fields else {
            unreachable!()
        };
        check_numeric_fields(&mut body).map_err(|e| e.to_string())?;
        Ok(body)
    }

    #[test]
    fn numeric_fields_out_of_range_are_refused_naming_the_field() {
        for (field, value) in [
            ("max_open_connections", json!(100_000_000_000u64)),
            ("max_open_connections", json!(u64::MAX)),
            ("max_open_connections", json!(1001)),
            ("max_open_connections", json!(-1)),
            ("max_open_connections", json!(2.5)),
            ("max_open_connections", json!("many")),
            ("max_open_connections", json!([4])),
            ("max_idle_connections", json!(1001)),
            ("max_idle_connections", json!(-3)),
            ("max_connection_lifetime", json!("99999999999h")),
            ("max_connection_lifetime", json!(2_592_001)),
            ("max_connection_lifetime", json!("soon")),
            ("max_connection_lifetime", json!(-1)),
        ] {
            let e = checked(json!({ field: value })).unwrap_err();
            assert!(e.starts_with(field), "{field} = {value}: {e}");
            // The value itself is not echoed: it may be 50 KB.
            if let Value::String(text) = &value {
                assert!(!e.contains(text.as_str()), "{e}");
            }
        }
    }

    #[test]
    fn numeric_fields_in_vaults_forms_are_stored_as_numbers() {
        let body = checked(json!({
            "max_open_connections": "7",
            "max_idle_connections": 0,
            "max_connection_lifetime": "5m",
        }))
        .unwrap();
        assert_eq!(body["max_open_connections"], 7);
        assert_eq!(body["max_idle_connections"], 0);
        assert_eq!(body["max_connection_lifetime"], 300);
        // Vault's "unset" values: the defaults.
        let body = checked(json!({
            "max_open_connections": 0,
            "max_connection_lifetime": "0s",
            "max_idle_connections": null,
        }))
        .unwrap();
        assert!(body.is_empty(), "{body:?}");
    }

    #[test]
    fn hostile_urls_read_back_without_their_passwords() {
        let secret = "Zq9s3cr3t";
        for url in [
            format!("postgresql://admin:{secret}@db:5432/app"),
            format!("postgres://admin:p@ss:{secret}@db/app"),
            format!("postgresql://db/app?password={secret}"),
            format!("postgresql://db/app?sslmode=disable&password={secret}&user=u"),
            format!("postgresql://db/app?user=u;PASSWORD={secret}"),
            format!("postgresql://db/app?pass%77ord={secret}"),
            format!("postgresql://u@db/app?application_name=a@b&password={secret}"),
            format!("admin:{secret}@tcp(db:3306)/app"),
            format!("admin:{secret}@/app?password={secret}"),
            format!("{{{{username}}}}:{{{{password}}}}@tcp(db:3306)/?pwd={secret}"),
            format!("host=db user=admin password={secret} dbname=app"),
            format!("host=db password = {secret}"),
            format!("host=db password='{secret} with \\' quote' dbname=app"),
            format!("host=db password={secret}\\ more dbname=app"),
            format!("host=db password='{secret} unterminated"),
            format!("host=db  sslpassword={secret}"),
            format!("host=db password={secret}?x=1"),
            format!("host=db password=a@{secret}"),
        ] {
            let shown = redact_url(&url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        // What is not a password stays readable.
        assert_eq!(
            redact_url("host=db user=admin password=x dbname=app"),
            "host=db user=admin password=***** dbname=app"
        );
        assert_eq!(
            redact_url("postgresql://{{username}}:{{password}}@db/app?sslmode=disable"),
            "postgresql://{{username}}:{{password}}@db/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://db/app?sslmode=disable&password=x"),
            "postgresql://db/app?sslmode=disable&password=*****"
        );
        assert_eq!(
            redact_url("admin:x@tcp(db:3306)/app"),
            "admin:*****@tcp(db:3306)/app"
        );
    }

    /// A password: no whitespace (it ends a bare DSN value), none of the
    /// separators a value of each form ends at, and a prefix seen nowhere
    /// else in the URLs below.
    fn secret() -> impl Strategy<Value = String> {
        "Zq9[A-Za-z0-9!#$%()*+,./:<>\\[\\]^_`{|}~-]{4,24}"
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9.]{0,10}"
    }

    proptest! {
        #[test]
        fn no_form_of_url_shows_its_password(
            secret in secret(),
            host in word(),
            user in word(),
            db in word(),
            other in word(),
            form in 0..6usize,
        ) {
            let url = match form {
                0 => format!("postgresql://{user}:{secret}@{host}:5432/{db}"),
                1 => format!("postgresql://{user}@{host}/{db}?{other}=1&password={}", secret.replace(['&', ';'], "")),
                2 => format!("{user}:{secret}@tcp({host}:3306)/{db}"),
                3 => format!("host={host} user={user} password={secret} dbname={db}"),
                4 => format!("host={host} password='{}' dbname={db}", secret.replace(['\'', '\\'], "")),
                _ => format!("{other} = {host} PassWord = {secret}"),
            };
            let shown = redact_url(&url);
            let secret_part = &secret[..secret.len().min(8)];
            prop_assert!(!shown.contains(secret_part), "{} -> {}", url, shown);
        }

        #[test]
        fn any_text_is_redacted_without_panicking(text in any::<String>()) {
            let _ = redact_url(&text);
        }

        #[test]
        fn passwords_after_any_prefix_are_masked(
            prefix in "[ -~]{0,40}",
            secret in secret(),
        ) {
            // However odd the text before it, a libpq password keyword's
            // value is masked.
            let url = format!("host=h{} password={secret}", prefix.replace(['\'', '\\', '='], ""));
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&secret[..8.min(secret.len())]), "{} -> {}", url, shown);
        }
    }
}
