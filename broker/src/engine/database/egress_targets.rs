//! The Redis server and HTTP service a connection config names, for the
//! plugins that import `redis` or `http`: built here, by the host, from the
//! stored config, with the admin password the plugin never sees.
//!
//! Redis configs use Vault's `redis-database-plugin` fields (`host`,
//! `port`, `username`, `password`, `tls`); HTTP configs a base URL
//! (`connection_url`, or Vault rabbitmq's `connection_uri`), `username`,
//! `password` and an optional `ca_cert` to verify its TLS certificate.

use serde_json::Value;

use super::DbConfig;
use crate::egress::{HttpTarget, RedisTarget};
use crate::framework::Error;

const DEFAULT_REDIS_PORT: u16 = 6379;

fn text<'a>(config: &'a DbConfig, field: &str) -> Result<Option<&'a str>, Error> {
    match config.extra.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(Error::field(field, "must be a string")),
    }
}

fn flag(config: &DbConfig, field: &str) -> Result<bool, Error> {
    match config.extra.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| Error::field(field, "must be true or false")),
        Some(_) => Err(Error::field(field, "must be true or false")),
    }
}

/// The Redis server `config` names.
pub(super) fn redis(config: &DbConfig) -> Result<RedisTarget, Error> {
    let host = text(config, "host")?
        .ok_or_else(|| Error::field("host", "the Redis server's host is required"))?
        .to_owned();
    let port = match config.extra.get("port") {
        None | Some(Value::Null) => DEFAULT_REDIS_PORT,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::field("port", "must be a port number from 1 to 65535"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::field("port", "must be a port number from 1 to 65535"))?,
        Some(_) => return Err(Error::field("port", "must be a port number from 1 to 65535")),
    };
    if flag(config, "tls")? {
        return Err(Error::field(
            "tls",
            "TLS to Redis is not supported by this broker yet; reach the server over a private network or a TLS tunnel",
        ));
    }
    Ok(RedisTarget {
        host,
        port,
        username: config.username.clone(),
        password: config.password.clone(),
    })
}

/// The HTTP service `config` names.
pub(super) fn http(config: &DbConfig) -> Result<HttpTarget, Error> {
    let target = HttpTarget {
        base_url: config.connection_url.to_string(),
        username: config.username.clone(),
        password: config.password.clone(),
        ca_cert: text(config, "ca_cert")?.map(str::to_owned),
    };
    // The URL is checked here so a bad one is a 400 naming the field;
    // the error never echoes it (it may carry a password).
    target
        .base()
        .map_err(|e| Error::field("connection_url", e.to_string()))?;
    Ok(target)
}
