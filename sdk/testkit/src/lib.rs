//! Run a plugin's component in the broker's real host, sandbox and limits
//! included, against a real database, Redis server or HTTP service: the
//! test kit for plugin authors.
//!
//! ```no_run
//! use broker_plugin_testkit::PluginHarness;
//! use serde_json::json;
//!
//! # async fn t() -> Result<(), broker_plugin_testkit::HarnessError> {
//! let wasm = std::fs::read("target/wasm32-wasip2/release/my_plugin.wasm")?;
//! let harness = PluginHarness::new(wasm)
//!     .with_postgres("postgresql://postgres@127.0.0.1:5432/postgres")?;
//! let issued = harness.issue("readonly", json!({ "creation_statements": ["CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}'"] })).await?;
//! assert!(issued.data["username"].is_string());
//! harness.revoke(&issued).await?;
//! # Ok(()) }
//! ```
//!
//! Each call runs the way the broker runs it: a fresh instance, the
//! capabilities the component imports bound to the targets given here, the
//! admin credential held by the host. Revocation data is recorded as the
//! broker records it, so a plugin that creates before recording fails here
//! as it would in production.

use std::sync::Arc;

use broker::egress::{HttpTarget, RedisTarget};
use broker::plugin::{
    CallContext, ConnectionView, Credential, IssueRequest, Limits, Plugin, PluginError,
    PluginRuntime, RuntimeConfig,
};
use broker::sql::{Dialect, SqlTarget};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

/// What went wrong setting up or running a harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The component did not load, or a call failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A target URL or address did not parse.
    #[error("{0}")]
    Target(String),
    /// Reading the component failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A plugin's component in the real host, bound to real targets.
pub struct PluginHarness {
    wasm: Vec<u8>,
    limits: Limits,
    config: Value,
    sql: Option<Arc<SqlTarget>>,
    redis: Option<Arc<RedisTarget>>,
    http: Option<Arc<HttpTarget>>,
    key: String,
    plugin: OnceCell<(PluginRuntime, Plugin)>,
}

impl std::fmt::Debug for PluginHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHarness")
            .field("sql", &self.sql)
            .field("redis", &self.redis)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// A credential the harness issued: what the client gets, and what
/// revoking it takes.
#[derive(Debug, Clone)]
pub struct Issued {
    /// What the client receives (username, password…).
    pub data: serde_json::Map<String, Value>,
    /// What the plugin recorded for revocation.
    pub revocation: Value,
}

/// Splits the user and password out of `url`, for the host to hold.
fn credentials(url: &str) -> Result<(url::Url, Option<String>, Option<String>), HarnessError> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| HarnessError::Target(format!("bad URL: {e}")))?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let user = Some(parsed.username())
        .filter(|u| !u.is_empty())
        .and_then(decode);
    let password = parsed.password().and_then(decode);
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((parsed, user, password))
}

impl PluginHarness {
    /// A harness for the component `wasm`, reaching nothing yet.
    pub fn new(wasm: impl Into<Vec<u8>>) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            wasm: wasm.into(),
            limits: Limits::default(),
            config: json!({}),
            sql: None,
            redis: None,
            http: None,
            key: format!("harness/{}/{n}", std::process::id()),
            plugin: OnceCell::new(),
        }
    }

    /// A harness for the component in the file at `path`.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, HarnessError> {
        Ok(Self::new(std::fs::read(path)?))
    }

    /// Binds `sql` to the PostgreSQL database at `url`
    /// (`postgresql://user:password@host:5432/db`).
    pub fn with_postgres(self, url: &str) -> Result<Self, HarnessError> {
        self.with_sql(Dialect::Postgres, url)
    }

    /// Binds `sql` to the MySQL or MariaDB server at `url`
    /// (`mysql://user:password@host:3306/`).
    pub fn with_mysql(self, url: &str) -> Result<Self, HarnessError> {
        self.with_sql(Dialect::MySql, url)
    }

    fn with_sql(mut self, dialect: Dialect, url: &str) -> Result<Self, HarnessError> {
        let (parsed, user, password) = credentials(url)?;
        let host = parsed
            .host_str()
            .ok_or_else(|| HarnessError::Target(format!("{url:?} names no host")))?;
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let rest = &parsed[url::Position::BeforePath..];
        // The host's URL forms (Vault's): it puts the admin's name and
        // password in itself.
        let templated = match dialect {
            Dialect::Postgres => format!(
                "{}://{{{{username}}}}:{{{{password}}}}@{host}{port}{rest}",
                parsed.scheme()
            ),
            Dialect::MySql => format!("{{{{username}}}}:{{{{password}}}}@tcp({host}{port}){rest}"),
        };
        self.sql = Some(Arc::new(SqlTarget::new(
            dialect,
            &templated,
            user.as_deref(),
            password.as_deref(),
        )));
        Ok(self)
    }

    /// Binds `redis` to the server at `host:port`, logged in as `user`
    /// with `password` (`None`: the `default` user, no password).
    pub fn with_redis(
        mut self,
        addr: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, HarnessError> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
            .ok_or_else(|| HarnessError::Target(format!("{addr:?} is not host:port")))?;
        self.redis = Some(Arc::new(RedisTarget {
            host,
            port,
            username: user.map(str::to_owned),
            password: password.map(|p| Zeroizing::new(p.to_owned())),
        }));
        Ok(self)
    }

    /// Binds `http` to the service at `base_url`, authenticated with HTTP
    /// basic authentication as `user`.
    pub fn with_http(
        mut self,
        base_url: &str,
        user: &str,
        password: &str,
    ) -> Result<Self, HarnessError> {
        let target = HttpTarget {
            base_url: base_url.to_owned(),
            username: Some(user.to_owned()),
            password: Some(Zeroizing::new(password.to_owned())),
            ca_cert: None,
        };
        target
            .base()
            .map_err(|e| HarnessError::Target(e.to_string()))?;
        self.http = Some(Arc::new(target));
        Ok(self)
    }

    /// The connection config the plugin sees (default `{}`).
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Per-call limits other than the broker's defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The loaded plugin (loaded on first use).
    pub async fn plugin(&self) -> Result<&Plugin, HarnessError> {
        let (_, plugin) = self
            .plugin
            .get_or_try_init(|| async {
                let runtime = PluginRuntime::new(RuntimeConfig {
                    cache_dir: RuntimeConfig::default_cache_dir(),
                    limits: self.limits,
                })?;
                let plugin = runtime.load(&self.wasm).await?;
                Ok::<_, PluginError>((runtime, plugin))
            })
            .await?;
        Ok(plugin)
    }

    fn context(&self) -> CallContext {
        let mut ctx = CallContext::new();
        if let Some(t) = &self.sql {
            ctx = ctx.with_sql(&self.key, t.clone());
        }
        if let Some(t) = &self.redis {
            ctx = ctx.with_redis(&self.key, t.clone());
        }
        if let Some(t) = &self.http {
            ctx = ctx.with_http(&self.key, t.clone());
        }
        ctx
    }

    fn connection(&self) -> ConnectionView {
        ConnectionView {
            name: "harness".into(),
            config: self.config.clone(),
        }
    }

    /// Checks the connection config, as writing it to the broker would.
    pub async fn verify_connection(&self) -> Result<(), HarnessError> {
        let plugin = self.plugin().await?;
        Ok(plugin
            .verify_connection(&self.context(), &self.connection())
            .await?)
    }

    /// Issues a credential for a role named `role_name` with the fields
    /// `role`, for a lease of an hour.
    pub async fn issue(&self, role_name: &str, role: Value) -> Result<Issued, HarnessError> {
        let plugin = self.plugin().await?;
        let request = IssueRequest {
            role_name: role_name.to_owned(),
            role,
            display_name: "harness".into(),
            expires_at: broker::clock::unix_now() + 3600,
            parameters: Value::Null,
        };
        let Credential { data, revocation } = plugin
            .issue(&self.context(), &self.connection(), &request)
            .await?;
        Ok(Issued { data, revocation })
    }

    /// Moves a credential's expiry to `expires_at` (Unix seconds).
    pub async fn renew(&self, issued: &Issued, expires_at: u64) -> Result<(), HarnessError> {
        let plugin = self.plugin().await?;
        Ok(plugin
            .renew(
                &self.context(),
                &self.connection(),
                &issued.revocation,
                expires_at,
            )
            .await?)
    }

    /// Revokes a credential.
    pub async fn revoke(&self, issued: &Issued) -> Result<(), HarnessError> {
        let plugin = self.plugin().await?;
        Ok(plugin
            .revoke(&self.context(), &self.connection(), &issued.revocation)
            .await?)
    }

    /// Rotates the admin credential, with `new_password` as the host would
    /// hand it over; the config fields the plugin asks to overwrite.
    pub async fn rotate_root(
        &self,
        new_password: &str,
    ) -> Result<serde_json::Map<String, Value>, HarnessError> {
        let plugin = self.plugin().await?;
        let mut connection = self.connection();
        if let Value::Object(fields) = &mut connection.config {
            fields.insert("new_password".into(), json!(new_password));
        }
        Ok(plugin.rotate_root(&self.context(), &connection).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_urls() {
        let (url, user, password) =
            credentials("postgresql://app:p%40ss@db:5432/x?sslmode=disable").unwrap();
        assert_eq!(user.as_deref(), Some("app"));
        assert_eq!(password.as_deref(), Some("p@ss"));
        assert_eq!(url.as_str(), "postgresql://db:5432/x?sslmode=disable");
        assert!(credentials("not a url").is_err());
    }
}
