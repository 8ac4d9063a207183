//! What a handler is given: the request, the mount it reached, and who
//! made it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Error, Operation, Params, StorageView};

/// Who made a request: the root token the operator was given at init, a
/// token of the token store (docs/architecture.md, "Tokens and
/// policies"), or no one.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The root token.
    Root,
    /// A token of the store; the API has checked its policies grant the
    /// request.
    Token(Arc<crate::token::TokenCaller>),
    /// No valid token: only [`super::Access::Open`] and
    /// [`super::Access::Public`] paths are reached this way.
    Anonymous,
}

impl Caller {
    /// The name leases and the audit log record.
    pub fn display_name(&self) -> &str {
        match self {
            Self::Root => "root",
            Self::Token(t) => &t.entry.display_name,
            Self::Anonymous => "",
        }
    }

    /// The accessor whose revocation revokes the leases this caller makes
    /// (a batch token's parent's; none for the root token).
    pub fn token_accessor(&self) -> Option<String> {
        match self {
            Self::Token(t) => t.lease_accessor(),
            Self::Root | Self::Anonymous => None,
        }
    }

    /// The caller's policies.
    pub fn policies(&self) -> Vec<String> {
        match self {
            Self::Root => vec![crate::policy::Policy::ROOT.to_owned()],
            Self::Token(t) => t.entry.policies.clone(),
            Self::Anonymous => Vec::new(),
        }
    }

    /// Whether the caller holds the `root` policy.
    pub fn is_root(&self) -> bool {
        match self {
            Self::Root => true,
            Self::Token(t) => t.entry.is_root(),
            Self::Anonymous => false,
        }
    }

    /// Who the leases this caller makes are issued to.
    pub fn lease_owner(&self) -> crate::lease::LeaseOwner {
        crate::lease::LeaseOwner {
            display_name: self.display_name().to_owned(),
            token_accessor: self.token_accessor(),
            deadline: self.lease_deadline(),
        }
    }

    /// The latest a lease this caller makes may last (Unix seconds): a
    /// batch token's leases end with it, since nothing else would revoke
    /// them once it is gone.
    pub fn lease_deadline(&self) -> Option<i64> {
        match self {
            Self::Token(t)
                if t.entry.token_type == crate::token::TokenType::Batch
                    && t.entry.expire_time > 0 =>
            {
                Some(t.entry.expire_time)
            }
            _ => None,
        }
    }
}

/// A mount's options, as `sys/mounts` takes and lists them (Vault's
/// `options`, text to text: `{"version": "2"}` for a KV version 2 mount).
/// Its engine checks them when the mount is enabled
/// ([`super::Backend::mount_options`]).
pub type MountOptions = std::collections::BTreeMap<String, String>;

/// The mount a request reached, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Its path, with a trailing `/` (`database/`; `sys/` for the system).
    pub path: String,
    /// Its type (`database`).
    pub kind: String,
    /// Its UUID, fixed when it was enabled; its storage is keyed by it.
    pub uuid: String,
    /// Its accessor, as Vault reports it.
    pub accessor: String,
    /// Default lease TTL.
    pub default_ttl: Duration,
    /// Max lease TTL.
    pub max_ttl: Duration,
    /// Its storage, rooted at `logical/<uuid>/`.
    pub storage: StorageView,
    /// Its options, fixed when it was enabled.
    pub options: MountOptions,
}

impl Mount {
    /// The path without its trailing `/` (`database`), as lease ids and
    /// pool names write it.
    pub fn name(&self) -> &str {
        self.path.trim_end_matches('/')
    }
}

/// A request, as a handler sees it. `Debug` leaves the body out: it may
/// hold a password.
pub struct Request {
    /// What it asks.
    pub operation: Operation,
    /// The whole request path (`database/roles/app`), for messages.
    pub path: String,
    /// The path's parameters.
    pub params: Params,
    /// The JSON body.
    pub data: Map<String, Value>,
    /// The mount it reached.
    pub mount: Arc<Mount>,
    /// Who made it.
    pub caller: Caller,
    /// The client's address (logins bound to networks check it).
    pub remote: std::net::IpAddr,
    /// The certificate chain the client presented over TLS, leaf first
    /// (`auth/cert` logs in with it). Not verified: the handshake only
    /// proved the client holds the leaf's key.
    pub peer_certificates: Option<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("mount", &self.mount.path)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The path parameter `name`. Tables are checked to give each handler
    /// the parameters it asks for, so a missing one is a bug: a 500.
    pub fn param(&self, name: &str) -> Result<&str, Error> {
        self.params
            .get(name)
            .ok_or_else(|| Error::Internal(format!("path parameter {name:?} is not in the table")))
    }

    /// The body field `name` as text, if given (the table checked its type).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.data.get(name).and_then(Value::as_str)
    }

    /// The body field `name` as a boolean (`true` or `"true"`), if given.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.data.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                _ => Err(Error::field(name, format!("{name} must be a boolean"))),
            },
            Some(_) => Err(Error::field(name, format!("{name} must be a boolean"))),
        }
    }

    /// The body field `name` as a whole number of at most `max`, if given.
    pub fn uint(&self, name: &str, max: u64) -> Result<Option<u64>, Error> {
        let bad = || {
            Error::field(
                name,
                format!("{name} must be a whole number from 0 to {max}"),
            )
        };
        let n = match self.data.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(bad)?,
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad())?,
            Some(_) => return Err(bad()),
        };
        if n > max {
            return Err(bad());
        }
        Ok(Some(n))
    }

    /// The body field `name` as a duration within the TTL range, if given.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, Error> {
        crate::duration::Ttl::field(&self.data, name)
            .map(|t| t.map(|t| t.0))
            .map_err(|m| Error::field(name, m))
    }

    /// The body field `name` as a list of strings: an array, or one string
    /// of comma-separated items. `None` when absent.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, Error> {
        match self.data.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    _ => Err(Error::field(
                        name,
                        format!("{name} must be a list of strings"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Error::field(
                name,
                format!("{name} must be a list of strings"),
            )),
        }
    }

    /// The body field `name` as a map of strings to strings, if given.
    pub fn string_map(
        &self,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, Error> {
        match self.data.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Error::field(
                        name,
                        format!("{name} must map strings to strings"),
                    )),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(Error::field(
                name,
                format!("{name} must map strings to strings"),
            )),
        }
    }
}
