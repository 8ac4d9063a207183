//! A mount's Redis server: one multiplexed connection per mount config,
//! authenticated as its admin, and the commands a plugin may send on it.
//!
//! The deny-list is the host's, not the plugin's: a plugin that manages
//! ACL users has no business reconfiguring, stopping or replicating the
//! server, running scripts (which could do all of that), or changing the
//! state of a connection other calls share (`AUTH`, `SELECT`, `MULTI`…).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where a mount's Redis server is and how the host logs in to it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The admin user (`None`: Redis's `default` user).
    #[serde(default)]
    pub username: Option<String>,
    /// The admin password: never shown, never given to the plugin.
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RedisTarget {
    /// The same server, logged in to with `password` instead.
    pub fn with_password(&self, password: &str) -> Self {
        Self {
            password: Some(Zeroizing::new(password.to_owned())),
            ..self.clone()
        }
    }

    fn connection_info(&self) -> redis::ConnectionInfo {
        redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(self.host.clone(), self.port),
            redis: redis::RedisConnectionInfo {
                db: 0,
                username: self.username.clone(),
                password: self.password.as_ref().map(|p| p.to_string()),
                ..Default::default()
            },
        }
    }
}

/// A reply, as the host hands it to a plugin.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisReply {
    /// No value.
    Nil,
    /// An integer reply.
    Integer(i64),
    /// A simple-string reply (`OK`).
    Status(String),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// An array: its elements, with deeper arrays as text.
    Array(Vec<RedisItem>),
}

/// One element of an array reply.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisItem {
    /// No value.
    Nil,
    /// An integer.
    Integer(i64),
    /// A simple string.
    Status(String),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// A nested array or other aggregate, rendered as text.
    Nested(String),
}

/// Why a command did not run or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The server could not be reached, or the connection broke.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The server answered with an error.
    #[error("redis refused the command: {0}")]
    Command(String),
    /// A limit the host sets.
    #[error("{0}")]
    Limit(String),
    /// The host refused the command.
    #[error("{0}")]
    Denied(String),
}

/// Commands no plugin may send, by name (upper case).
const DENIED: &[&str] = &[
    // Reconfigure, extend, stop or move the server.
    "CONFIG",
    "MODULE",
    "DEBUG",
    "SHUTDOWN",
    "MIGRATE",
    "REPLICAOF",
    "SLAVEOF",
    "FAILOVER",
    "CLUSTER",
    "SYNC",
    "PSYNC",
    "REPLCONF",
    "MONITOR",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "LASTSAVE",
    "FLUSHALL",
    "FLUSHDB",
    "SWAPDB",
    "RESTORE",
    "RESTORE-ASKING",
    "LATENCY",
    "MEMORY",
    "SLOWLOG",
    // Scripting runs arbitrary commands server-side.
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "SCRIPT",
    "FUNCTION",
    "FCALL",
    "FCALL_RO",
    // The shared connection's identity and state.
    "AUTH",
    "HELLO",
    "SELECT",
    "CLIENT",
    "RESET",
    "QUIT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "READONLY",
    "READWRITE",
    "ASKING",
    // Pub/sub holds the connection.
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    // Blocking commands hold it too.
    "BLPOP",
    "BRPOP",
    "BLMOVE",
    "BRPOPLPUSH",
    "BZPOPMIN",
    "BZPOPMAX",
    "BLMPOP",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
    "XREAD",
    "XREADGROUP",
];

/// `ACL` subcommands no plugin may send: they replace every user at once.
const DENIED_ACL: &[&str] = &["LOAD", "SAVE"];

/// The most arguments one command may have, and their total size.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 64 << 10;

/// Whether the host lets a plugin send `args`; the refusal says why.
pub fn check_command(args: &[String]) -> Result<(), RedisError> {
    let Some(name) = args.first() else {
        return Err(RedisError::Denied("an empty command".into()));
    };
    if args.len() > MAX_ARGS {
        return Err(RedisError::Limit(format!(
            "a command may have at most {MAX_ARGS} arguments"
        )));
    }
    if args.iter().map(String::len).sum::<usize>() > MAX_ARG_BYTES {
        return Err(RedisError::Limit(format!(
            "a command's arguments may total at most {MAX_ARG_BYTES} bytes"
        )));
    }
    let name = name.to_ascii_uppercase();
    if DENIED.contains(&name.as_str()) {
        return Err(RedisError::Denied(format!(
            "the host does not let plugins run {name}"
        )));
    }
    if name == "ACL"
        && let Some(sub) = args.get(1).map(|s| s.to_ascii_uppercase())
        && DENIED_ACL.contains(&sub.as_str())
    {
        return Err(RedisError::Denied(format!(
            "the host does not let plugins run ACL {sub}"
        )));
    }
    Ok(())
}

/// One connection per mount config, shared by its calls (Redis pipelines
/// them), replaced when it breaks or the config changes.
#[derive(Default)]
pub struct RedisPools {
    conns: Mutex<HashMap<String, (Arc<RedisTarget>, redis::aio::MultiplexedConnection)>>,
}

impl std::fmt::Debug for RedisPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("RedisPools")
            .field("connections", &n)
            .finish()
    }
}

fn unavailable(e: &redis::RedisError) -> RedisError {
    RedisError::Unavailable(e.to_string())
}

impl RedisPools {
    /// No connections yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the connection kept for `key`.
    pub fn remove(&self, key: &str) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    async fn connection(
        &self,
        key: &str,
        target: &Arc<RedisTarget>,
    ) -> Result<redis::aio::MultiplexedConnection, RedisError> {
        if let Some((t, conn)) = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            && t == target
        {
            return Ok(conn.clone());
        }
        let conn = connect(target).await?;
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), (target.clone(), conn.clone()));
        Ok(conn)
    }

    /// Runs `args` on `target`'s server by `deadline`, after the deny-list.
    pub async fn command(
        &self,
        key: &str,
        target: &Arc<RedisTarget>,
        args: &[String],
        deadline: Instant,
    ) -> Result<RedisReply, RedisError> {
        check_command(args)?;
        let deadline = tokio::time::Instant::from_std(deadline);
        let run = async {
            let mut conn = self.connection(key, target).await?;
            let mut cmd = redis::cmd(&args[0]);
            for a in &args[1..] {
                cmd.arg(a.as_bytes());
            }
            match cmd.query_async::<redis::Value>(&mut conn).await {
                Ok(v) => Ok(reply(v)),
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    self.remove(key);
                    Err(unavailable(&e))
                }
                Err(e) => Err(RedisError::Command(e.to_string())),
            }
        };
        match tokio::time::timeout_at(deadline, run).await {
            Ok(result) => result,
            Err(_) => {
                // The reply may still come: this connection's next reader
                // must not get it.
                self.remove(key);
                Err(RedisError::Unavailable(
                    "the call's deadline passed before Redis answered".into(),
                ))
            }
        }
    }
}

/// A fresh connection to `target`, logged in.
pub async fn connect(
    target: &RedisTarget,
) -> Result<redis::aio::MultiplexedConnection, RedisError> {
    let client = redis::Client::open(target.connection_info()).map_err(|e| unavailable(&e))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| match e.kind() {
            redis::ErrorKind::AuthenticationFailed => {
                RedisError::Command(format!("cannot log in to Redis: {e}"))
            }
            _ => unavailable(&e),
        })
}

fn item(v: redis::Value) -> RedisItem {
    match v {
        redis::Value::Nil => RedisItem::Nil,
        redis::Value::Int(i) => RedisItem::Integer(i),
        redis::Value::Okay => RedisItem::Status("OK".into()),
        redis::Value::SimpleString(s) => RedisItem::Status(s),
        redis::Value::BulkString(b) => RedisItem::Bulk(b),
        other => RedisItem::Nested(format!("{other:?}")),
    }
}

fn reply(v: redis::Value) -> RedisReply {
    match v {
        redis::Value::Nil => RedisReply::Nil,
        redis::Value::Int(i) => RedisReply::Integer(i),
        redis::Value::Okay => RedisReply::Status("OK".into()),
        redis::Value::SimpleString(s) => RedisReply::Status(s),
        redis::Value::BulkString(b) => RedisReply::Bulk(b),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            RedisReply::Array(items.into_iter().map(item).collect())
        }
        redis::Value::Map(pairs) => RedisReply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [item(k), item(v)])
                .collect(),
        ),
        other => RedisReply::Status(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn acl_user_management_is_allowed() {
        for a in [
            &["ACL", "SETUSER", "v-1", "on", ">pw", "+@read"][..],
            &["acl", "deluser", "v-1"],
            &["ACL", "GETUSER", "v-1"],
            &["PING"],
        ] {
            check_command(&args(a)).unwrap();
        }
    }

    #[test]
    fn the_deny_list_is_enforced_whatever_the_case() {
        for a in [
            &["CONFIG", "SET", "dir", "/tmp"][..],
            &["config", "get", "*"],
            &["EVAL", "return 1", "0"],
            &["eVaLsHa", "abc", "0"],
            &["SHUTDOWN", "NOSAVE"],
            &["MODULE", "LOAD", "/x.so"],
            &["REPLICAOF", "evil", "6379"],
            &["SLAVEOF", "evil", "6379"],
            &["FUNCTION", "LOAD", "x"],
            &["AUTH", "default", "x"],
            &["SELECT", "3"],
            &["ACL", "LOAD"],
            &["acl", "save"],
            &["MIGRATE", "h", "1", "k", "0", "1"],
            &["DEBUG", "SEGFAULT"],
        ] {
            assert!(
                matches!(check_command(&args(a)), Err(RedisError::Denied(_))),
                "{a:?}"
            );
        }
        assert!(check_command(&[]).is_err());
    }

    proptest! {
        #[test]
        fn a_denied_name_is_refused_with_any_arguments(
            i in 0..DENIED.len(),
            rest in proptest::collection::vec(".{0,12}", 0..5),
            upper in any::<bool>(),
        ) {
            let name = if upper { DENIED[i].to_owned() } else { DENIED[i].to_ascii_lowercase() };
            let mut a = vec![name];
            a.extend(rest);
            prop_assert!(matches!(check_command(&a), Err(RedisError::Denied(_))));
        }
    }
}
