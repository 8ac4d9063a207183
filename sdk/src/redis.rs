//! Commands to the mount's Redis server through the host's `redis`
//! capability.
//!
//! The plugin names no host, port or password: the host sends each command
//! on a connection it keeps for the calling mount, logged in as the admin
//! user. It refuses commands that could reconfigure, stop or take over the
//! server (`CONFIG`, `MODULE`, `SHUTDOWN`, scripting, …) or change the
//! shared connection's state (`AUTH`, `SELECT`, `MULTI`, …); `ACL SETUSER`
//! and `ACL DELUSER` are what user management needs.
//!
//! ```no_run
//! use broker_plugin_sdk::redis;
//! # fn f() -> broker_plugin_sdk::Result<()> {
//! redis::command(&["ACL", "SETUSER", "v-app", "on", ">s3cret-Pw", "~*", "+@read"])?;
//! redis::command(&["ACL", "DELUSER", "v-app"])?;
//! # Ok(()) }
//! ```

use crate::export::bindings::broker::plugin::redis as wit;
use crate::{Error, Result};

pub use wit::{Item, RedisError, RedisErrorKind, Reply};

/// Runs one command (its name, then its arguments) and returns the reply.
/// A server error (`ERR …`) is [`Error::InvalidRequest`]; an unreachable
/// server [`Error::Unavailable`]; a command the host refuses
/// [`Error::InvalidConfig`].
pub fn command(args: &[&str]) -> Result<Reply> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    Ok(wit::command(&args)?)
}

impl From<RedisError> for Error {
    fn from(e: RedisError) -> Self {
        match e.kind {
            RedisErrorKind::Unavailable => Self::Unavailable(e.message),
            RedisErrorKind::Command => Self::InvalidRequest(e.message),
            RedisErrorKind::Limit => Self::InvalidRequest(e.message),
            RedisErrorKind::Denied => Self::InvalidConfig(e.message),
        }
    }
}

impl Reply {
    /// Whether the server said `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Status(s) if s == "OK")
    }

    /// The reply as an integer, if it is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Self::Integer(n) => Some(*n),
            _ => None,
        }
    }
}
