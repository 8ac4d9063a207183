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
//!
//! Passwords for new users are made here, by the host, from the config's
//! `password_policy` (a [password policy](crate::policy::password); the
//! broker's default when it names none), as Vault makes them. The
//! plugin gets the password in the issue request's role, under the
//! reserved key [`HOST_PASSWORD_KEY`]; a role written with a field of
//! that name is refused, so no one but the host sets it. A config naming
//! a policy that does not exist is refused when written, and issuing
//! through one whose policy was deleted since fails with a 400 saying so.
//!
//! On PostgreSQL, `password_authentication = "scram-sha-256"` (Vault's
//! field; the default for configs written since it exists, while older
//! configs keep sending passwords) makes the host compute the password's
//! SCRAM verifier too ([`crate::sql::scram`]) and hand it over under
//! [`HOST_VERIFIER_KEY`]: the plugin's statements carry the verifier, so
//! the password never reaches the server, and the server does not hash.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::valid_name;
use crate::duration::Ttl;
use crate::framework::{Error, Mount, StorageView};
use crate::lease::{IssueParams, LeaseKind, Leases, ResolvedConnection};
use crate::plugin::{Catalog, ConnectionView, HostCapability};
use crate::policy::{PasswordPolicies, PasswordPolicy, PasswordPolicyError};
use crate::sql::{Dialect, MAX_CONNECTION_LIFETIME, MAX_OPEN_CONNECTIONS, SqlTarget};
use crate::storage::LeaseRow;

mod egress_targets;
mod paths;
mod redact;
mod root;
mod rotation;
mod schedule;
mod static_role;

pub use paths::{DatabaseBackend, Flavor, factory, flavored};
use redact::redact_url;

/// The key of the issue request's role under which the host hands the
/// plugin the password it made (the SDK's `password::HOST_PASSWORD_KEY`).
pub const HOST_PASSWORD_KEY: &str = "password";

/// The key beside it for the password's SCRAM verifier (the SDK's
/// `password::HOST_VERIFIER_KEY`).
pub const HOST_VERIFIER_KEY: &str = "password_verifier";

/// `password_authentication`'s values: Vault's names.
const SCRAM: &str = "scram-sha-256";
const PLAINTEXT: &str = "password";

/// A stored connection config (`config/:name`).
#[derive(Clone, Serialize, Deserialize)]
pub struct DbConfig {
    /// The plugin, by catalog name or Vault alias.
    pub plugin_name: String,
    /// With `{{username}}` and `{{password}}` placeholders; for a plugin
    /// that imports `http`, the service's base URL (Vault's rabbitmq
    /// `connection_uri` is taken as this). Empty for Redis, whose
    /// configs name `host` and `port`.
    #[serde(default)]
    pub connection_url: Zeroizing<String>,
    /// The admin user.
    #[serde(default)]
    pub username: Option<String>,
    /// The admin password: sealed, never returned.
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// A root rotation's new password, until a login shows the database
    /// took it (see `root.rs`): sealed, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_password: Option<Zeroizing<String>>,
    /// Roles allowed to use this config (`*` for all).
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Pool size (range-checked when written, and again by the pool).
    #[serde(default)]
    pub max_open_connections: Option<usize>,
    /// The password policy new users' passwords are made from; `None`:
    /// the broker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_policy: Option<String>,
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
            .field("password_policy", &self.password_policy)
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

/// One mount of the database engine.
#[derive(Debug, Clone)]
pub struct DatabaseEngine {
    /// The mount's path without its `/`, as lease ids and pools name it.
    mount: String,
    store: StorageView,
    catalog: Arc<Catalog>,
    /// Where a config's `password_policy` is looked up.
    password_policies: PasswordPolicies,
    /// The mount's lease TTLs.
    default_ttl: Duration,
    max_ttl: Duration,
    /// Which of Vault's engines the mount answers as.
    flavor: Flavor,
}

/// A rabbitmq mount's `config/lease`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LeaseConfig {
    /// Lease TTL in seconds (0: the mount's default).
    pub ttl: u64,
    /// Max lease TTL in seconds (0: the mount's max).
    pub max_ttl: u64,
}

const LEASE_CONFIG_KEY: &str = "lease-config";

/// What a `rabbitmq` mount's config and roles default to (Vault's
/// rabbitmq engine has one connection and no `db_name`).
const RABBITMQ_PLUGIN: &str = "rabbitmq-database-plugin";
const RABBITMQ_CONNECTION: &str = "connection";

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

impl DatabaseEngine {
    /// The engine at `mount`.
    pub fn new(
        mount: &Mount,
        catalog: Arc<Catalog>,
        password_policies: PasswordPolicies,
    ) -> Self {
        Self {
            mount: mount.name().to_owned(),
            store: mount.storage.clone(),
            catalog,
            password_policies,
            default_ttl: mount.default_ttl,
            max_ttl: mount.max_ttl,
            flavor: Flavor::Database,
        }
    }

    /// The engine answering as `flavor`.
    pub fn flavored(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{kind}/{name}")
    }

    /// Writes a connection config, after checking it with the plugin unless
    /// `verify_connection` is false.
    pub async fn write_config(&self, name: &str, body: Map<String, Value>) -> Result<(), Error> {
        valid_name(name)?;
        let mut body = body;
        if self.flavor == Flavor::RabbitMq {
            if name != RABBITMQ_CONNECTION {
                return Err(Error::NotFound(format!(
                    "a rabbitmq mount has one connection: config/{RABBITMQ_CONNECTION}"
                )));
            }
            body.entry("plugin_name")
                .or_insert_with(|| json!(RABBITMQ_PLUGIN));
            body.entry("allowed_roles").or_insert_with(|| json!("*"));
        }
        let verify = body
            .remove("verify_connection")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        // serde's type errors quote the offending value; a secret must never
        // reach an error message, so the secret fields are checked first.
        for secret_field in ["password", "connection_url"] {
            if body.get(secret_field).is_some_and(|v| !v.is_string()) {
                return Err(Error::invalid(format!("{secret_field} must be a string")));
            }
        }
        // Only a root rotation sets this one.
        body.remove("pending_password");
        // Vault's rabbitmq engine names the service's URL so.
        if !body.contains_key("connection_url")
            && let Some(uri) = body.remove("connection_uri")
        {
            body.insert("connection_url".into(), uri);
        }
        let existing: Option<DbConfig> = self.store.get(&self.key("config", name)).await?;
        // Vault keeps the stored password when an update leaves it out, and
        // so a root rotation's pending one with it; a new password written
        // by the operator ends that rotation.
        if !body.contains_key("password")
            && let Some(existing) = &existing
        {
            if let Some(pw) = &existing.password {
                body.insert("password".into(), Value::String(pw.to_string()));
            }
            if let Some(pw) = &existing.pending_password {
                body.insert("pending_password".into(), Value::String(pw.to_string()));
            }
        }
        if let Some(roles) = body.get("allowed_roles").cloned() {
            body.insert("allowed_roles".into(), json!(string_list(Some(&roles))));
        }
        check_numeric_fields(&mut body)?;
        let authentication = match body.remove("password_authentication") {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) if v == SCRAM || v == PLAINTEXT => Some(v),
            Some(_) => {
                return Err(Error::field(
                    "password_authentication",
                    "must be \"scram-sha-256\" or \"password\"",
                ));
            }
        };
        Self::normalize_password_policy(&mut body)?;
        check_username_template(&mut body)?;
        let mut config: DbConfig = serde_json::from_value(Value::Object(body))
            .map_err(|e| Error::invalid(format!("invalid connection config: {e}")))?;
        let plugin = self
            .catalog
            .lookup(&config.plugin_name)
            .map_err(Error::invalid)?;
        let needs_url = plugin.info().capabilities.iter().any(|c| {
            matches!(
                c,
                HostCapability::SqlPostgres | HostCapability::SqlMysql | HostCapability::Http
            )
        });
        if needs_url && config.connection_url.trim().is_empty() {
            return Err(Error::field(
                "connection_url",
                format!("plugin {:?} needs a connection_url", config.plugin_name),
            ));
        }
        // Left out: as it was (an older config keeps sending passwords);
        // a new PostgreSQL config sends verifiers.
        let kept = existing
            .as_ref()
            .and_then(|c| c.extra.get("password_authentication"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let postgres = self.dialect(&config) == Some(Dialect::Postgres);
        let authentication = match (authentication, existing.is_some()) {
            (Some(v), _) => Some(v),
            (None, true) => kept,
            (None, false) => postgres.then(|| SCRAM.to_owned()),
        };
        match authentication {
            Some(v) if v == SCRAM && !postgres => {
                return Err(Error::field(
                    "password_authentication",
                    "scram-sha-256 is for PostgreSQL connections",
                ));
            }
            Some(v) => {
                config
                    .extra
                    .insert("password_authentication".into(), Value::String(v));
            }
            None => {}
        }
        self.password_policy(&config).await?;
        if verify {
            let resolved = self.resolved(name, &config)?;
            let ctx = context(&self.mount, name, &resolved);
            plugin
                .verify_connection(&ctx, &resolved.connection)
                .await
                .map_err(|e| Error::invalid(format!("error verifying the connection: {e}")))?;
        }
        self.store.put(&self.key("config", name), &config).await?;
        // A pool that failed for the old settings is no longer this config's.
        self.forget_pool(name);
        Ok(())
    }

    /// Reads a config's `password_policy` into one form: a policy's name,
    /// or nothing for empty (the default).
    fn normalize_password_policy(body: &mut Map<String, Value>) -> Result<(), Error> {
        let field = "password_policy";
        match body.get(field) {
            None | Some(Value::Null) => {
                body.remove(field);
            }
            Some(Value::String(name)) if name.trim().is_empty() => {
                body.remove(field);
            }
            Some(Value::String(name)) => {
                let name = name.trim().to_owned();
                body.insert(field.into(), Value::String(name));
            }
            Some(_) => {
                return Err(Error::field(
                    field,
                    "must be a string: a password policy's name",
                ));
            }
        }
        Ok(())
    }

    /// A new password from `config`'s policy (users', static accounts' and
    /// the root's alike).
    pub(super) async fn new_password(&self, config: &DbConfig) -> Result<Zeroizing<String>, Error> {
        self.password_policy(config)
            .await?
            .try_generate()
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The policy new users' passwords are made from for `config`: the one
    /// it names, which must exist, or the default; and one whose passwords
    /// the plugin's statements can hold. A 400 about `password_policy`.
    pub(super) async fn password_policy(&self, config: &DbConfig) -> Result<PasswordPolicy, Error> {
        let field = "password_policy";
        let policy = self
            .password_policies
            .resolve(config.password_policy.as_deref())
            .await
            .map_err(|e| match e {
                PasswordPolicyError::Storage(e) => e.into(),
                PasswordPolicyError::NotFound(name) => Error::field(
                    field,
                    format!(
                        "password policy {name:?} does not exist; write it first (sys/policies/password/{name})"
                    ),
                ),
                e => Error::field(field, e.to_string()),
            })?;
        // The SDK's statement templates refuse a '$' in any PostgreSQL value
        // (it could open or close a dollar-quoted body): a policy that can
        // draw one would fail issuances at random. Refused whole, up front.
        if self.dialect(config) == Some(Dialect::Postgres) && policy.alphabet().contains('$') {
            return Err(Error::field(
                field,
                format!(
                    "password policy {:?} can make passwords holding '$', which PostgreSQL statements cannot hold safely; take '$' out of its charsets",
                    config.password_policy.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok(policy)
    }

    /// Whether `config` sends SCRAM verifiers instead of passwords.
    pub(super) fn scram(&self, config: &DbConfig) -> bool {
        config.extra.get("password_authentication").and_then(Value::as_str) == Some(SCRAM)
            && self.dialect(config) == Some(Dialect::Postgres)
    }

    /// `password`'s SCRAM verifier, when `config` sends verifiers.
    pub(super) fn verifier(&self, config: &DbConfig, password: &str) -> Result<Option<String>, Error> {
        if !self.scram(config) {
            return Ok(None);
        }
        crate::sql::scram::verifier(password)
            .map(Some)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The SQL dialect of `config`'s plugin, if it speaks one.
    fn dialect(&self, config: &DbConfig) -> Option<Dialect> {
        let plugin = self.catalog.get(&config.plugin_name)?;
        plugin.info().capabilities.iter().find_map(|c| match c {
            HostCapability::SqlPostgres => Some(Dialect::Postgres),
            HostCapability::SqlMysql => Some(Dialect::MySql),
            _ => None,
        })
    }

    fn pool_key(&self, name: &str) -> String {
        format!("{}/config/{name}", self.mount)
    }

    fn forget_pool(&self, name: &str) {
        self.catalog.forget_connections(&self.pool_key(name));
    }

    /// A connection config, without its password.
    pub async fn read_config(&self, name: &str) -> Result<Value, Error> {
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
        // Redis's and HTTP services' own fields (none of them secret).
        for field in [
            "max_idle_connections",
            "max_connection_lifetime",
            "host",
            "port",
            "tls",
            "ca_cert",
        ] {
            if let Some(v) = config.extra.get(field) {
                details.insert(field.into(), v.clone());
            }
        }
        if self.dialect(&config) == Some(Dialect::Postgres) {
            details.insert(
                "password_authentication".into(),
                json!(if self.scram(&config) { SCRAM } else { PLAINTEXT }),
            );
        }
        Ok(json!({
            "plugin_name": config.plugin_name,
            "connection_details": details,
            "allowed_roles": config.allowed_roles,
            "password_policy": config.password_policy.unwrap_or_default(),
            "verify_connection": true,
        }))
    }

    async fn config(&self, name: &str) -> Result<DbConfig, Error> {
        self.store
            .get(&self.key("config", name))
            .await?
            .ok_or_else(|| Error::NotFound(format!("no connection config named {name:?}")))
    }

    /// A rabbitmq mount's `config/lease` (Vault's): the TTLs of roles that
    /// set none; zeros elsewhere.
    pub async fn lease_config(&self) -> Result<LeaseConfig, Error> {
        if self.flavor != Flavor::RabbitMq {
            return Ok(LeaseConfig::default());
        }
        Ok(self.store.get(LEASE_CONFIG_KEY).await?.unwrap_or_default())
    }

    /// Writes `config/lease`: `ttl` and `max_ttl` (seconds or "1h").
    pub async fn write_lease_config(&self, body: &Map<String, Value>) -> Result<(), Error> {
        let read = |field: &str| -> Result<u64, Error> {
            Ok(Ttl::field(body, field)
                .map_err(|e| Error::field(field, e))?
                .map_or(0, Ttl::secs))
        };
        let config = LeaseConfig {
            ttl: read("ttl")?,
            max_ttl: read("max_ttl")?,
        };
        if config.max_ttl > 0 && config.ttl > config.max_ttl {
            return Err(Error::invalid("ttl cannot be longer than max_ttl"));
        }
        self.store.put(LEASE_CONFIG_KEY, &config).await?;
        Ok(())
    }

    /// Deletes a connection config. Its leases keep what they need.
    pub async fn delete_config(&self, name: &str) -> Result<(), Error> {
        self.store.delete(&self.key("config", name)).await?;
        self.store.delete(&self.key("root-pending", name)).await?;
        self.forget_pool(name);
        Ok(())
    }

    /// Names of connection configs.
    pub async fn list_configs(&self) -> Result<Vec<String>, Error> {
        self.list("config").await
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, Error> {
        Ok(self.store.list(kind).await?)
    }

    /// Writes a role.
    pub async fn write_role(&self, name: &str, mut body: Map<String, Value>) -> Result<(), Error> {
        valid_name(name)?;
        if self.flavor == Flavor::RabbitMq {
            body.entry("db_name")
                .or_insert_with(|| json!(RABBITMQ_CONNECTION));
        }
        // The issue request's role carries the host's password (and its
        // verifier) under these keys: a role must not be able to choose them.
        for key in [HOST_PASSWORD_KEY, HOST_VERIFIER_KEY] {
            if body.contains_key(key) {
                return Err(Error::field(
                    key,
                    "a role cannot set a password: the broker generates each one from the connection's password_policy",
                ));
            }
        }
        for ttl in ["default_ttl", "max_ttl"] {
            if let Some(parsed) = Ttl::field(&body, ttl).map_err(Error::invalid)? {
                body.insert(ttl.into(), json!(parsed.secs()));
            }
        }
        let role: DbRole = serde_json::from_value(Value::Object(body))
            .map_err(|e| Error::invalid(format!("invalid role: {e}")))?;
        if role.db_name.is_empty() {
            return Err(Error::invalid("db_name is required"));
        }
        if role.max_ttl > 0 && role.default_ttl > role.max_ttl {
            return Err(Error::invalid("default_ttl cannot be longer than max_ttl"));
        }
        self.store.put(&self.key("role", name), &role).await?;
        Ok(())
    }

    /// A role.
    pub async fn read_role(&self, name: &str) -> Result<Value, Error> {
        let role = self.role(name).await?;
        let mut out = role.fields.clone();
        if self.flavor == Flavor::RabbitMq {
            // Vault's rabbitmq roles: their three fields, as written.
            let field = |k: &str| out.get(k).cloned().unwrap_or_else(|| json!(""));
            return Ok(json!({
                "tags": field("tags"),
                "vhosts": field("vhosts"),
                "vhost_topics": field("vhost_topics"),
            }));
        }
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

    async fn role(&self, name: &str) -> Result<DbRole, Error> {
        self.store
            .get(&self.key("role", name))
            .await?
            .ok_or_else(|| Error::NotFound(format!("unknown role: {name}")))
    }

    /// Deletes a role. Its leases keep what they need.
    pub async fn delete_role(&self, name: &str) -> Result<(), Error> {
        self.store.delete(&self.key("role", name)).await?;
        Ok(())
    }

    /// Names of roles.
    pub async fn list_roles(&self) -> Result<Vec<String>, Error> {
        self.list("role").await
    }

    fn resolved(&self, name: &str, config: &DbConfig) -> Result<ResolvedConnection, Error> {
        let plugin = self
            .catalog
            .lookup(&config.plugin_name)
            .map_err(Error::invalid)?;
        let capabilities = &plugin.info().capabilities;
        let dialect = capabilities.iter().find_map(|c| match c {
            HostCapability::SqlPostgres => Some(Dialect::Postgres),
            HostCapability::SqlMysql => Some(Dialect::MySql),
            _ => None,
        });
        let redis = match capabilities.contains(&HostCapability::Redis) {
            true => Some(Arc::new(egress_targets::redis(config)?)),
            false => None,
        };
        let http = match capabilities.contains(&HostCapability::Http) {
            true => Some(Arc::new(egress_targets::http(config)?)),
            false => None,
        };
        // Read leniently: a config stored before the write-time check may
        // hold anything here. What is out of range reaches the pool, which
        // refuses it for this config alone, naming the field.
        let lifetime = match config.extra.get("max_connection_lifetime") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Ttl::deserialize(v).map(|t| t.0).map_err(|_| {
                Error::invalid(format!(
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
            redis,
            http,
        })
    }

    /// Issues a credential for `role_name` under a new lease.
    pub async fn creds(
        &self,
        leases: &Leases,
        role_name: &str,
        owner: &crate::lease::LeaseOwner,
    ) -> Result<(LeaseRow, Map<String, Value>), Error> {
        // Vault answers a 400 for credentials of a role that does not exist.
        let role = self.role(role_name).await.map_err(|e| match e {
            Error::NotFound(m) => Error::invalid(m),
            e => e,
        })?;
        let config = self.config(&role.db_name).await.map_err(|_| {
            Error::invalid(format!(
                "role {role_name:?} uses connection {:?}, which does not exist",
                role.db_name
            ))
        })?;
        if !config
            .allowed_roles
            .iter()
            .any(|r| r == "*" || r == role_name)
        {
            return Err(Error::invalid(format!(
                "role {role_name:?} is not allowed by connection {:?} (allowed_roles)",
                role.db_name
            )));
        }
        // A rabbitmq mount's `config/lease` stands in for roles' TTLs.
        let lease = self.lease_config().await?;
        let role_max = if role.max_ttl > 0 { role.max_ttl } else { lease.max_ttl };
        let role_ttl = if role.default_ttl > 0 { role.default_ttl } else { lease.ttl };
        let max = if role_max > 0 {
            Duration::from_secs(role_max).min(self.max_ttl)
        } else {
            self.max_ttl
        };
        let ttl = if role_ttl > 0 {
            Duration::from_secs(role_ttl)
        } else {
            self.default_ttl
        }
        .min(max);
        // The policy may have been deleted or rewritten since the config
        // was written: checked again, and a 400 naming the connection.
        let policy = self
            .password_policy(&config)
            .await
            .map_err(|e| match e {
                Error::Invalid { message, .. } => Error::invalid(format!(
                    "connection {:?} cannot make a password: {message}",
                    role.db_name
                )),
                e => e,
            })?;
        let password = policy
            .try_generate()
            .map_err(|e| Error::Internal(e.to_string()))?;
        // The stored role never holds this key (refused when written); one
        // stored before that rule is overwritten here.
        let mut role_fields = role.fields.clone();
        role_fields.insert(
            HOST_PASSWORD_KEY.into(),
            Value::String(password.as_str().to_owned()),
        );
        if let Some(verifier) = self.verifier(&config, &password)? {
            role_fields.insert(HOST_VERIFIER_KEY.into(), Value::String(verifier));
        }
        drop(password);
        let (row, credential) = leases
            .issue(IssueParams {
                kind: LeaseKind::Credential,
                mount: self.mount.clone(),
                endpoint: "creds",
                role_name: role_name.to_owned(),
                parameters: Value::Null,
                role: Value::Object(role_fields),
                config_name: role.db_name.clone(),
                plugin: config.plugin_name.clone(),
                connection: self.resolved(&role.db_name, &config)?,
                display_name: owner.display_name.clone(),
                token_accessor: owner.token_accessor.clone(),
                deadline: owner.deadline,
                ttl,
                max_ttl: max,
            })
            .await?;
        Ok((row, credential.data))
    }
}

fn context(mount: &str, name: &str, resolved: &ResolvedConnection) -> crate::plugin::CallContext {
    resolved.context(&format!("{mount}/config/{name}"))
}

/// Checks a config's `username_template` with the parser the plugins use
/// (the SDK's, Vault's syntax), so a template that cannot work is refused
/// when written rather than at every issuance. An empty one is dropped:
/// the plugin's default, as in Vault.
fn check_username_template(body: &mut Map<String, Value>) -> Result<(), Error> {
    let field = "username_template";
    match body.get(field) {
        None => Ok(()),
        Some(Value::Null) => {
            body.remove(field);
            Ok(())
        }
        Some(Value::String(text)) if text.trim().is_empty() => {
            body.remove(field);
            Ok(())
        }
        Some(Value::String(text)) => broker_plugin_sdk::username::UsernameTemplate::parse(text)
            .map(drop)
            .map_err(|e| Error::field(field, e.to_string())),
        Some(_) => Err(Error::field(field, "must be a string")),
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
fn check_numeric_fields(body: &mut Map<String, Value>) -> Result<(), Error> {
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
                _ => return Err(Error::invalid(format!("{field}: {what}"))),
            },
        }
    }
    let field = "max_connection_lifetime";
    let limit = MAX_CONNECTION_LIFETIME.as_secs();
    let lifetime = Ttl::field(body, field)
        .map_err(|_| {
            Error::invalid(format!(
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
            return Err(Error::invalid(format!(
                "{field}: must be at most {limit} seconds (30 days)"
            )));
        }
    }
    Ok(())
}

impl DatabaseEngine {
    /// The connection config `name` as stored now, for revoking a lease
    /// made through it; `None` when it is gone or unusable.
    pub async fn connection(&self, name: &str) -> Option<ResolvedConnection> {
        let config = self.config(name).await.ok()?;
        self.resolved(name, &config).ok()
    }

    /// Drops the pools of every connection config of this mount.
    pub async fn forget_pools(&self) {
        if let Ok(names) = self.list_configs().await {
            for name in names {
                self.forget_pool(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn username_templates_are_checked_when_written() {
        let Value::Object(mut body) = json!({
            "username_template": r#"{{ printf "v-%s-%s" (.RoleName | truncate 8) (random 8) | lowercase }}"#,
        }) else {
            unreachable!()
        };
        check_username_template(&mut body).unwrap();
        assert!(body.contains_key("username_template"));
        for (template, reason) in [
            (json!("{{ .Nope }}"), "unknown field .Nope"),
            (json!("{{ random 0 }}"), "from 1 to 64"),
            (json!("v-{{ .RoleName"), "no closing"),
            (json!(7), "must be a string"),
        ] {
            let Value::Object(mut body) = json!({ "username_template": template }) else {
                unreachable!()
            };
            let e = check_username_template(&mut body).unwrap_err();
            assert_eq!(e.field_name(), Some("username_template"));
            assert!(e.to_string().contains(reason), "{e}");
        }
        // Empty: the plugin's default.
        let Value::Object(mut body) = json!({ "username_template": " " }) else {
            unreachable!()
        };
        check_username_template(&mut body).unwrap();
        assert!(body.is_empty());
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
}
