//! The [`Plugin`] trait a plugin author implements, and the idiomatic types
//! its methods take and return.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// A host capability a plugin uses, named in [`Plugin::info`].
///
/// The broker grants a plugin exactly the host interfaces its component
/// imports, and a component imports only those its code calls: a plugin
/// that never calls [`crate::redis`] cannot reach Redis. What must be
/// declared is the SQL dialect: a plugin using [`crate::sql`] names
/// [`Capability::SqlPostgres`] or [`Capability::SqlMysql`], and the host
/// binds it only to a mount's database of that dialect. The other cases
/// document what the plugin uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// A connection to the mount's PostgreSQL database ([`crate::sql`]).
    SqlPostgres,
    /// A connection to the mount's MySQL or MariaDB database ([`crate::sql`]).
    SqlMysql,
    /// Signing with the mount's CA key, held by the host ([`crate::signer`]).
    Signer,
    /// Commands to the mount's Redis server ([`crate::redis`]).
    Redis,
    /// Requests to the mount's HTTP service ([`crate::http`]).
    Http,
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

/// A request for a new credential. `Debug` leaves out the password.
#[derive(Clone)]
pub struct IssueRequest<R> {
    /// The role's name (`roles/:name`).
    pub role_name: String,
    /// The role, parsed into the plugin's type.
    pub role: R,
    /// The display name of the token asking, for username templates.
    pub display_name: String,
    /// When the lease expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The request's own fields (e.g. a certificate's `common_name`): a
    /// JSON object, empty when the request had none.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The password the broker made for this credential from the
    /// connection's password policy; `None` from a broker that sends none.
    /// Use it through [`crate::password::provided_or_generate`].
    pub password: Option<String>,
    /// What the database should store for that password instead of the
    /// password itself (a PostgreSQL SCRAM-SHA-256 verifier), when the
    /// connection asks for it; render it with
    /// [`crate::template::Vars::scram_verifier`].
    pub password_verifier: Option<String>,
}

impl<R: std::fmt::Debug> std::fmt::Debug for IssueRequest<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueRequest")
            .field("role_name", &self.role_name)
            .field("role", &self.role)
            .field("display_name", &self.display_name)
            .field("expires_at", &self.expires_at)
            .field("parameters", &self.parameters)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "password_verifier",
                &self.password_verifier.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A credential decided but not yet created: what the client will get, and
/// what revoking it takes.
///
/// [`Plugin::prepare`] makes one without touching anything outside the
/// sandbox; the SDK then has the broker durably record `revocation` with the
/// pending lease, and only then calls [`Plugin::create`]. A crash at any
/// point therefore leaves nothing the broker cannot revoke.
#[derive(Clone)]
pub struct Prepared<R> {
    /// What the client receives (e.g. username and password).
    pub data: serde_json::Map<String, serde_json::Value>,
    /// What renewal and revocation need. Put everything revocation needs
    /// here (e.g. the role's revocation statements): the role may be gone
    /// by then.
    pub revocation: R,
}

/// Shows field names only: the data holds secrets.
impl<R> std::fmt::Debug for Prepared<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<R> Prepared<R> {
    /// A prepared credential from the client's `data` (must serialise to a
    /// JSON object) and its `revocation` data.
    pub fn new(data: impl Serialize, revocation: R) -> Result<Self> {
        match serde_json::to_value(data).map_err(Error::internal)? {
            serde_json::Value::Object(data) => Ok(Self { data, revocation }),
            _ => Err(Error::internal("credential data must be a JSON object")),
        }
    }

    /// A text field of `data`, e.g. the password `prepare` generated.
    pub fn field(&self, key: &str) -> Result<&str> {
        self.data
            .get(key)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                Error::internal(format!("prepared credential has no text field {key:?}"))
            })
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
    type Revocation: Serialize + DeserializeOwned;

    /// Who the plugin is and what it needs.
    fn info() -> Info;

    /// Checks the configuration, usually by connecting. The default accepts it.
    fn verify_connection(connection: &Connection<Self::Config>) -> Result<()> {
        let _ = connection;
        Ok(())
    }

    /// Decides a new credential (names, secrets) without creating anything.
    fn prepare(
        connection: &Connection<Self::Config>,
        request: &IssueRequest<Self::Role>,
    ) -> Result<Prepared<Self::Revocation>>;

    /// Creates what [`Plugin::prepare`] decided. By the time it runs the
    /// broker has recorded `prepared.revocation`; on failure, undo what was
    /// done (MySQL's DDL is not transactional) or leave it to revocation.
    fn create(
        connection: &Connection<Self::Config>,
        request: &IssueRequest<Self::Role>,
        prepared: &Prepared<Self::Revocation>,
    ) -> Result<()>;

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
