//! The `database` secrets engine, Vault-compatible: connection configs,
//! roles, and leased credentials made by the configured plugin.
//!
//! Connection configs are sealed in storage; the admin password is never
//! returned, and the plugin never sees it (the host opens connections).

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
use crate::sql::{Dialect, SqlTarget};
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
    /// Pool size.
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
        Ok(())
    }

    /// A connection config, without its password.
    pub async fn read_config(&self, name: &str) -> Result<Value, EngineError> {
        let config = self.config(name).await?;
        Ok(json!({
            "plugin_name": config.plugin_name,
            "connection_details": { "connection_url": redact_url(&config.connection_url), "username": config.username },
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
        let target = dialect.map(|d| {
            let t = SqlTarget::new(
                d,
                &config.connection_url,
                config.username.as_deref(),
                config.password.as_deref().map(String::as_str),
            );
            Arc::new(match config.max_open_connections {
                Some(n) => t.with_max_open_connections(n),
                None => t,
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

/// A URL with any inline password replaced: `postgres://u:***@h/db`.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host))
                if userinfo.contains(':') && !userinfo.contains("{{password}}") =>
            {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:*****@{host}")
            }
            _ => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((userinfo, rest))
                if userinfo.contains(':') && !userinfo.contains("{{password}}") =>
            {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{user}:*****@{rest}")
            }
            _ => url.to_owned(),
        },
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
