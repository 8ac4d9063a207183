//! A database a mount is configured to reach, with the admin credentials
//! the host keeps for it.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{MAX_CONNECTION_LIFETIME, MAX_OPEN_CONNECTIONS, SqlError, SqlErrorKind};

/// Which wire protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

/// A database target. `Debug` shows the dialect and the user only: the URL
/// may carry a password inline.
#[derive(Clone)]
pub struct SqlTarget {
    dialect: Dialect,
    connection_url: Zeroizing<String>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
    max_open_connections: usize,
    max_connection_lifetime: Option<std::time::Duration>,
    /// Whether `username` and `password` win over a user and password the
    /// URL names: a login check must log in as the account it checks.
    login_only: bool,
}

impl std::fmt::Debug for SqlTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTarget")
            .field("dialect", &self.dialect)
            .field("connection_url", &"<redacted>")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SqlTarget {
    /// A target. `connection_url` may hold `{{username}}` and `{{password}}`
    /// (Vault's convention), which are filled in from `username` and
    /// `password`, percent-encoded.
    pub fn new(
        dialect: Dialect,
        connection_url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Self {
        Self {
            dialect,
            connection_url: Zeroizing::new(connection_url.to_owned()),
            username: username.map(str::to_owned),
            password: password.map(|p| Zeroizing::new(p.to_owned())),
            max_open_connections: 4,
            max_connection_lifetime: None,
            login_only: false,
        }
    }

    /// The same database, logged in to as `username` with `password`
    /// whatever the URL says: for checking that an account's password
    /// works (see [`super::check_login`]).
    pub fn as_login(&self, username: &str, password: &str) -> Self {
        Self {
            username: Some(username.to_owned()),
            password: Some(Zeroizing::new(password.to_owned())),
            max_open_connections: 1,
            max_connection_lifetime: None,
            login_only: true,
            ..self.clone()
        }
    }

    /// Whether the target's user and password win over the URL's.
    pub(crate) fn login_only(&self) -> bool {
        self.login_only
    }

    /// Caps the pool's size (Vault's `max_open_connections`; default 4).
    /// A size past [`MAX_OPEN_CONNECTIONS`] is kept as given and refused
    /// when a pool is built (see [`SqlTarget::check`]): a stored config
    /// written before the range was checked must fail clearly, not be
    /// silently changed.
    pub fn with_max_open_connections(mut self, n: usize) -> Self {
        self.max_open_connections = n.max(1);
        self
    }

    /// Closes pooled connections older than `lifetime` (Vault's
    /// `max_connection_lifetime`; `None` keeps them).
    pub fn with_max_connection_lifetime(mut self, lifetime: Option<std::time::Duration>) -> Self {
        self.max_connection_lifetime = lifetime.filter(|l| !l.is_zero());
        self
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The admin user, if set apart from the URL.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref().map(String::as_str)
    }

    pub(crate) fn max_open_connections(&self) -> usize {
        self.max_open_connections
    }

    pub(crate) fn max_connection_lifetime(&self) -> Option<std::time::Duration> {
        self.max_connection_lifetime
    }

    /// Refuses settings no pool may be built with. Writes are checked
    /// against the same ranges, so only a config stored before they were
    /// checked fails here; it fails alone, with an error naming the field.
    pub(crate) fn check(&self) -> Result<(), SqlError> {
        if self.max_open_connections > MAX_OPEN_CONNECTIONS {
            return Err(field_error(
                "max_open_connections",
                &format!(
                    "is {}; it must be from 1 to {MAX_OPEN_CONNECTIONS}",
                    self.max_open_connections
                ),
            ));
        }
        if let Some(lifetime) = self.max_connection_lifetime
            && lifetime > MAX_CONNECTION_LIFETIME
        {
            return Err(field_error(
                "max_connection_lifetime",
                &format!(
                    "is {}s; it must be at most {}s",
                    lifetime.as_secs(),
                    MAX_CONNECTION_LIFETIME.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// Tells two versions of a target apart (a rotated password makes a new pool).
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([self.dialect as u8, u8::from(self.login_only)]);
        for part in [
            Some(self.connection_url.as_str()),
            self.username.as_deref(),
            self.password(),
        ] {
            let part = part.unwrap_or("\u{0}none");
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update((self.max_open_connections as u64).to_le_bytes());
        h.update(
            self.max_connection_lifetime
                .map_or(u64::MAX, |l| l.as_secs())
                .to_le_bytes(),
        );
        h.finalize().into()
    }

    /// The URL with its placeholders filled, percent-encoded for a URL's userinfo.
    pub(crate) fn rendered_url(&self) -> Zeroizing<String> {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let user = utf8_percent_encode(self.username().unwrap_or(""), NON_ALPHANUMERIC).to_string();
        let pass = Zeroizing::new(
            utf8_percent_encode(self.password().unwrap_or(""), NON_ALPHANUMERIC).to_string(),
        );
        Zeroizing::new(
            self.connection_url
                .replace("{{username}}", &user)
                .replace("{{password}}", &pass),
        )
    }

    /// The raw URL template, for parsers that fill placeholders themselves.
    pub(crate) fn url_template(&self) -> &str {
        &self.connection_url
    }
}

/// An error about the target's configuration, naming no part of the URL.
pub(crate) fn config_error(what: &str) -> SqlError {
    SqlError::new(
        SqlErrorKind::Denied,
        format!("connection_url is not usable: {what}"),
    )
}

/// A stored setting no pool can be built with.
fn field_error(field: &str, what: &str) -> SqlError {
    SqlError::new(
        SqlErrorKind::Denied,
        format!(
            "the connection config's {field} {what}: write the connection config again with a value in range"
        ),
    )
}

/// A target as it is sealed into storage (with its password): leases keep
/// one so revocation works even after the connection config is deleted.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SqlTargetSpec {
    /// The dialect.
    pub dialect: Dialect,
    /// The URL template.
    pub connection_url: Zeroizing<String>,
    /// The admin user.
    pub username: Option<String>,
    /// The admin password.
    pub password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for SqlTargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTargetSpec")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl From<&SqlTarget> for SqlTargetSpec {
    fn from(t: &SqlTarget) -> Self {
        Self {
            dialect: t.dialect,
            connection_url: t.connection_url.clone(),
            username: t.username.clone(),
            password: t.password.clone(),
        }
    }
}

impl From<&SqlTargetSpec> for SqlTarget {
    fn from(s: &SqlTargetSpec) -> Self {
        SqlTarget::new(
            s.dialect,
            &s.connection_url,
            s.username.as_deref(),
            s.password.as_deref().map(String::as_str),
        )
    }
}
