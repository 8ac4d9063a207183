//! The [`Plugin`] trait a plugin author implements, and the idiomatic types
//! its methods take and return.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// A host capability a plugin may ask for in [`Plugin::info`].
///
/// The broker links only what a plugin declares: a plugin that did not
/// declare [`Capability::SqlPostgres`] gets a `denied` error from
/// [`crate::sql::Database::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// A connection to the mount's PostgreSQL database.
    SqlPostgres,
    /// A connection to the mount's MySQL or MariaDB database.
    SqlMysql,
    /// Signing with the mount's CA key (held by the host).
    Signer,
}

/// What a plugin says about itself: its catalog name, version, capabilities
/// and the JSON Schemas of its connection and role configuration.
#[derive(Debug, Clone)]
pub struct Info {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) version: String,
    pub(crate) capabilities: Vec<Capability>,
    pub(crate) connection_schema: String,
    pub(crate) role_schema: String,
}

impl Info {
    /// A plugin named `name` (as registered in the catalog) at `version`,
    /// with no capabilities and permissive schemas.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            aliases: Vec::new(),
            version: version.to_owned(),
            capabilities: Vec::new(),
            connection_schema: r#"{"type":"object"}"#.to_owned(),
            role_schema: r#"{"type":"object"}"#.to_owned(),
        }
    }

    /// Another name operators may use for this plugin.
    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_owned());
        self
    }

    /// Asks for a host capability.
    pub fn capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }

    /// The JSON Schema of the connection configuration.
    pub fn connection_schema(mut self, schema: &str) -> Self {
        self.connection_schema = schema.to_owned();
        self
    }

    /// The JSON Schema of a role.
    pub fn role_schema(mut self, schema: &str) -> Self {
        self.role_schema = schema.to_owned();
        self
    }
}

/// The mount's connection configuration, as the plugin sees it: without the
/// secrets the host keeps (the admin password). The host opens the
/// database connection itself; see [`crate::sql`].
#[derive(Debug, Clone)]
pub struct Connection<C> {
    /// The configuration's name (`config/:name`).
    pub name: String,
    /// The configuration, parsed into the plugin's type.
    pub config: C,
}

/// A request for a new credential.
#[derive(Debug, Clone)]
pub struct IssueRequest<R> {
    /// The role's name (`roles/:name`).
    pub role_name: String,
    /// The role, parsed into the plugin's type.
    pub role: R,
    /// The display name of the token asking, for username templates.
    pub display_name: String,
    /// When the lease expires, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// A credential: what the client gets, and what the plugin needs to renew
/// or revoke it later.
#[derive(Debug, Clone)]
pub struct Credential {
    pub(crate) data: serde_json::Value,
    pub(crate) revocation: serde_json::Value,
}

impl Credential {
    /// Builds a credential from the client's `data` (a JSON object, e.g.
    /// username and password) and the `revocation` data the host seals and
    /// hands back to [`Plugin::renew`] and [`Plugin::revoke`].
    ///
    /// Put into `revocation` everything revocation needs (e.g. the role's
    /// revocation statements): the role may be gone by then.
    pub fn new(data: impl Serialize, revocation: impl Serialize) -> Result<Self> {
        let data = serde_json::to_value(data).map_err(Error::internal)?;
        if !data.is_object() {
            return Err(Error::internal("credential data must be a JSON object"));
        }
        let revocation = serde_json::to_value(revocation).map_err(Error::internal)?;
        Ok(Self { data, revocation })
    }
}

/// A credential plugin.
///
/// Every method runs in a fresh sandbox instance: keep no state between
/// calls (there is none to keep). Methods are associated functions for that
/// reason. Return [`Error::Unavailable`] when the database cannot be reached,
/// so the broker retries revocations instead of giving up.
pub trait Plugin {
    /// The connection configuration (`config/:name`), without secrets.
    type Config: DeserializeOwned;
    /// A role (`roles/:name`).
    type Role: DeserializeOwned;
    /// What [`Plugin::issue`] stores for renewal and revocation.
    type Revocation: DeserializeOwned;

    /// Who the plugin is and what it needs.
    fn info() -> Info;

    /// Checks the configuration, usually by connecting. The default accepts it.
    fn verify_connection(connection: &Connection<Self::Config>) -> Result<()> {
        let _ = connection;
        Ok(())
    }

    /// Creates a credential.
    fn issue(
        connection: &Connection<Self::Config>,
        request: &IssueRequest<Self::Role>,
    ) -> Result<Credential>;

    /// Moves a credential's expiry to `expires_at`. The default does nothing,
    /// for credentials that do not expire by themselves.
    fn renew(
        connection: &Connection<Self::Config>,
        revocation: Self::Revocation,
        expires_at: u64,
    ) -> Result<()> {
        let _ = (connection, revocation, expires_at);
        Ok(())
    }

    /// Destroys a credential. Must succeed when it is already gone.
    fn revoke(connection: &Connection<Self::Config>, revocation: Self::Revocation) -> Result<()>;

    /// Changes the admin credential and returns the fields of the connection
    /// configuration to overwrite (e.g. `{"password": "…"}`).
    fn rotate_root(connection: &Connection<Self::Config>) -> Result<serde_json::Value> {
        let _ = connection;
        Err(Error::request(
            "this plugin cannot rotate its root credential",
        ))
    }

    /// Sets a new secret for a static account and returns the credential's
    /// data.
    fn rotate_static(
        connection: &Connection<Self::Config>,
        role: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let _ = (connection, role);
        Err(Error::request("this plugin has no static roles"))
    }
}
