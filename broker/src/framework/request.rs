//! What a handler is given: the request, the mount it reached, and who
//! made it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Error, Operation, Params, StorageView};

/// Who made a request. Today only the root token authenticates; the token
/// store (docs/architecture.md, "Invariants", 5) adds tokens with policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The root token.
    Root,
    /// No valid token: only [`super::Access::Open`] and
    /// [`super::Access::Public`] paths are reached this way.
    Anonymous,
}

impl Caller {
    /// The name leases and the audit log record.
    pub fn display_name(&self) -> &str {
        match self {
            Self::Root => "root",
            Self::Anonymous => "",
        }
    }

    /// The caller's token accessor, whose revocation revokes its leases.
    pub fn token_accessor(&self) -> Option<String> {
        None
    }
}

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
}
