//! `sys/leases/…`: lookup, renew, revoke, revoke-prefix, revoke-force, and
//! Vault's older `sys/renew`, `sys/revoke`, `sys/revoke-prefix` and
//! `sys/revoke-force`, which clients written for older Vaults still call
//! (the system table routes both to the handlers here).
//!
//! Prefixes are whole path segments (`database/creds/app` never reaches
//! role `app2`), and a stored time is shown only when it is a real date: a
//! lookup must never fail on what storage holds.

use serde_json::{Value, json};

use crate::core::Core;
use crate::duration::Ttl;
use crate::framework::{Error, Reply, Request, data, list, no_content, secret};

/// `unix` as RFC 3339, or null when it is no date RFC 3339 can write
/// (before 1970 or after 9999): formatting it would fail.
fn rfc3339(unix: i64) -> Value {
    const LATEST: u64 = 253_402_300_799;
    match u64::try_from(unix) {
        Ok(secs) if secs <= LATEST => std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::from_secs(secs))
            .map_or(Value::Null, |t| {
                Value::String(humantime::format_rfc3339_seconds(t).to_string())
            }),
        _ => Value::Null,
    }
}

/// The lease id: from the path (`renew/{lease_id}`) or the body.
fn lease_id(req: &Request) -> Result<String, Error> {
    let id = match req.params.get("lease_id") {
        Some(id) => id,
        None => req.str("lease_id").unwrap_or_default(),
    };
    if id.is_empty() {
        return Err(Error::field("lease_id", "lease_id is required"));
    }
    Ok(id.to_owned())
}

/// `LIST sys/leases/lookup/{prefix}`: one level of lease ids below a
/// prefix, as Vault lists them (folders with a trailing slash).
pub(crate) async fn list_ids(core: &Core, req: &Request) -> Result<Reply, Error> {
    // A listed path is a folder: `database/creds/app` lists `database/creds/app/`.
    let mut prefix = req.params.get("prefix").unwrap_or_default().to_owned();
    if !prefix.is_empty() {
        prefix.push('/');
    }
    let ids = core.leases().list(&prefix, 10_000).await?;
    let mut keys: Vec<String> = ids
        .iter()
        .filter_map(|id| id.strip_prefix(prefix.as_str()))
        .map(|tail| match tail.split_once('/') {
            Some((head, _)) => format!("{head}/"),
            None => tail.to_owned(),
        })
        .collect();
    keys.dedup();
    list(keys)
}

/// `PUT sys/leases/lookup`.
pub(crate) async fn lookup(core: &Core, req: &Request) -> Result<Reply, Error> {
    let row = core.leases().lookup(&lease_id(req)?).await?;
    let now = crate::clock::unix_now_signed();
    // Which plugin made it, at which version and contract (Vault's
    // `plugin_version`); absent for leases from before they were recorded.
    let made_by = core.leases().data(&row).ok();
    let made_by = made_by.as_ref();
    Ok(data(json!({
        "plugin": made_by.map(|d| d.plugin.as_str()).filter(|p| !p.is_empty()),
        "plugin_version": made_by.and_then(|d| d.plugin_version.as_deref()),
        "contract_version": made_by.and_then(|d| d.contract_version.as_deref()),
        "id": row.id,
        "issue_time": rfc3339(row.issued_at),
        "expire_time": rfc3339(row.expires_at),
        "last_renewal": null,
        "renewable": row.state == crate::storage::LeaseState::Active && row.expires_at < row.max_expires_at,
        "ttl": row.expires_at.saturating_sub(now).max(0),
        "state": row.state.as_str(),
        "revocation_attempts": row.attempts,
        "last_revocation_error": row.last_error,
    })))
}

/// `PUT sys/leases/renew[/{lease_id}]`.
pub(crate) async fn renew(core: &Core, req: &Request) -> Result<Reply, Error> {
    let id = lease_id(req)?;
    let increment = Ttl::field(&req.data, "increment")
        .map_err(|e| Error::field("increment", e))?
        .unwrap_or_default();
    let (row, granted) = core.leases().renew(&id, increment.0).await?;
    Ok(secret(
        row.id.clone(),
        granted,
        row.expires_at < row.max_expires_at,
        Value::Null,
    ))
}

/// `PUT sys/leases/revoke[/{lease_id}]`.
pub(crate) async fn revoke(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.leases().revoke(&lease_id(req)?).await?;
    Ok(no_content())
}

/// The prefix of a revoke-prefix or revoke-force path: required, since an
/// empty one would name every lease.
fn prefix(req: &Request) -> Result<&str, Error> {
    match req.params.get("prefix") {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(Error::field(
            "prefix",
            "prefix is required: sys/leases/revoke-prefix/<prefix>",
        )),
    }
}

/// `PUT sys/leases/revoke-prefix/{prefix}`.
pub(crate) async fn revoke_prefix(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.leases().revoke_prefix(prefix(req)?).await?;
    Ok(no_content())
}

/// `PUT sys/leases/revoke-force/{prefix}`.
pub(crate) async fn revoke_force(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.leases().revoke_force(prefix(req)?).await?;
    Ok(no_content())
}
