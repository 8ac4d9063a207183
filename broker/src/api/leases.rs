//! `sys/leases/…`: lookup, renew, revoke, revoke-prefix, revoke-force.
//!
//! Prefixes are whole path segments (`database/creds/app` never reaches
//! role `app2`), and a stored time is shown only when it is a real date: a
//! lookup must never fail on what storage holds.

use serde_json::{Value, json};

use super::envelope::{ApiError, Reply, data, no_content, secret};
use super::{Operation, Request};
use crate::core::Core;
use crate::duration::Ttl;

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

/// The prefix of a revoke-prefix or revoke-force path: required, since an
/// empty one would name every lease.
fn prefix_of<'a>(rest: &'a str, op: &str) -> Result<&'a str, ApiError> {
    let prefix = rest
        .strip_prefix(op)
        .unwrap_or_default()
        .trim_start_matches('/');
    if prefix.is_empty() {
        return Err(ApiError::bad_request(format!(
            "prefix is required: sys/leases/{op}/<prefix>"
        )));
    }
    Ok(prefix)
}

/// Whether `rest` is `word` or a path below it (`lookup`, `lookup/…`), not
/// a longer word (`lookups`).
fn is_segment(rest: &str, word: &str) -> bool {
    rest.strip_prefix(word)
        .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
}

fn lease_id(req: &Request, suffix: &str) -> Result<String, ApiError> {
    let from_path = suffix.trim_matches('/');
    let id = if from_path.is_empty() {
        req.body
            .get("lease_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    } else {
        from_path
    };
    if id.is_empty() {
        return Err(ApiError::bad_request("lease_id is required"));
    }
    Ok(id.to_owned())
}

/// Vault's older lease paths (`sys/renew`, `sys/revoke`, `sys/revoke-prefix`,
/// `sys/revoke-force`, with or without a lease id or prefix below): the
/// `sys/leases/…` path they stand for, which clients written for older
/// Vaults still call.
pub(crate) fn legacy_alias(path: &str) -> Option<String> {
    let rest = path.strip_prefix("sys/")?;
    ["renew", "revoke", "revoke-prefix", "revoke-force"]
        .into_iter()
        .any(|word| is_segment(rest, word))
        .then(|| format!("sys/leases/{rest}"))
}

pub(crate) async fn handle(core: &Core, req: Request) -> Result<Reply, ApiError> {
    let rest = req
        .path
        .strip_prefix("sys/leases/")
        .unwrap_or_default()
        .to_owned();
    let leases = core.leases();
    let now = crate::clock::unix_now_signed();
    match (req.op, rest.as_str()) {
        (Operation::List, r) if is_segment(r, "lookup") => {
            // A listed path is a folder: `database/creds/app` lists `database/creds/app/`.
            let mut prefix = r
                .strip_prefix("lookup")
                .unwrap_or_default()
                .trim_matches('/')
                .to_owned();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            let ids = leases.list(&prefix, 10_000).await?;
            // Vault lists one level: the next path segment, with a trailing slash for folders.
            let mut keys: Vec<String> = ids
                .iter()
                .filter_map(|id| id.strip_prefix(prefix.as_str()))
                .map(|tail| match tail.split_once('/') {
                    Some((head, _)) => format!("{head}/"),
                    None => tail.to_owned(),
                })
                .collect();
            keys.dedup();
            if keys.is_empty() {
                return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, ""));
            }
            Ok(data(json!({ "keys": keys })))
        }
        (Operation::Write, "lookup") => {
            let id = lease_id(&req, "")?;
            let row = leases.lookup(&id).await?;
            Ok(data(json!({
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
        (Operation::Write, r) if r == "renew" || r.starts_with("renew/") => {
            let id = lease_id(&req, r.strip_prefix("renew").unwrap_or_default())?;
            let increment = Ttl::field(&req.body, "increment")
                .map_err(ApiError::bad_request)?
                .unwrap_or_default();
            let row = leases.renew(&id, increment.0).await?;
            Ok(secret(
                row.id.clone(),
                row.expires_at.saturating_sub(now).max(0),
                row.expires_at < row.max_expires_at,
                Value::Null,
            ))
        }
        (Operation::Write, r) if r == "revoke" || r.starts_with("revoke/") => {
            let id = lease_id(&req, r.strip_prefix("revoke").unwrap_or_default())?;
            leases.revoke(&id).await?;
            Ok(no_content())
        }
        (Operation::Write, r) if is_segment(r, "revoke-prefix") => {
            leases.revoke_prefix(prefix_of(r, "revoke-prefix")?).await?;
            Ok(no_content())
        }
        (Operation::Write, r) if is_segment(r, "revoke-force") => {
            leases.revoke_force(prefix_of(r, "revoke-force")?).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation on sys/leases",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::legacy_alias;

    #[test]
    fn legacy_paths_map_to_sys_leases_by_whole_words() {
        assert_eq!(
            legacy_alias("sys/renew").as_deref(),
            Some("sys/leases/renew")
        );
        assert_eq!(
            legacy_alias("sys/revoke/database/creds/app/x").as_deref(),
            Some("sys/leases/revoke/database/creds/app/x")
        );
        assert_eq!(
            legacy_alias("sys/revoke-prefix/database").as_deref(),
            Some("sys/leases/revoke-prefix/database")
        );
        for not_an_alias in [
            "sys/revokes",
            "sys/renewal/x",
            "sys/mounts",
            "renew",
            "sys/leases/renew",
        ] {
            assert_eq!(legacy_alias(not_an_alias), None, "{not_an_alias}");
        }
    }
}
