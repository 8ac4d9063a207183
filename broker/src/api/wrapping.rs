//! Response wrapping: a response put in the cubbyhole of a single-use
//! token (`X-Vault-Wrap-TTL`, `sys/wrapping/wrap`), so a secret can pass
//! through hands and logs that must not see it. Unwrapping takes it out
//! once: the take is one atomic delete, so of two racing unwraps exactly
//! one gets the response; the wrapping token dies with it, or at its TTL.

use std::time::Duration;

use serde_json::{Value, json};

use super::ApiError;
use crate::clock;
use crate::core::Core;
use crate::framework::{Caller, Error, Reply, Request, data};
use crate::policy::Policy;
use crate::token::{TokenEntry, TokenType};

/// Where a wrapped response waits in its token's cubbyhole.
const RESPONSE: &str = "response";

/// The wrap TTL `sys/wrapping/wrap` uses when the client names none.
pub(crate) const DEFAULT_WRAP_TTL: Duration = Duration::from_secs(300);

/// The longest a response may stay wrapped (the system max TTL).
const MAX_WRAP_TTL: Duration = crate::core::SYSTEM_DEFAULT_TTL;

fn rfc3339(unix: i64) -> String {
    let secs = u64::try_from(unix).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Puts `reply` behind a new wrapping token living `ttl`. Replies that are
/// not Vault's envelope (a PEM, `sys/health`, a 204) are not wrapped.
pub(super) async fn wrap(
    core: &Core,
    reply: Reply,
    ttl: Duration,
    path: &str,
) -> Result<Reply, ApiError> {
    let body = match &reply {
        Reply::Envelope {
            lease_id,
            lease_duration,
            renewable,
            data,
            ..
        } => json!({
            "lease_id": lease_id,
            "lease_duration": lease_duration,
            "renewable": renewable,
            "data": data,
            "auth": null,
        }),
        Reply::Auth { auth } => json!({
            "lease_id": "",
            "lease_duration": 0,
            "renewable": false,
            "data": null,
            "auth": auth,
        }),
        _ => return Ok(reply),
    };
    wrap_value(core, body, ttl, path)
        .await
        .map_err(ApiError::from)
}

/// Stores `body` behind a new wrapping token; the reply shows only the
/// token and its life.
async fn wrap_value(core: &Core, body: Value, ttl: Duration, path: &str) -> Result<Reply, Error> {
    if ttl > MAX_WRAP_TTL {
        return Err(Error::invalid(format!(
            "wrap TTL {}s is longer than the longest, {}s",
            ttl.as_secs(),
            MAX_WRAP_TTL.as_secs()
        )));
    }
    let now = clock::unix_now_signed();
    let expire_time = now.saturating_add(crate::duration::capped_secs(ttl));
    let entry = TokenEntry {
        policies: vec![Policy::RESPONSE_WRAPPING.to_owned()],
        path: path.to_owned(),
        display_name: "response-wrapping".into(),
        num_uses: 1,
        creation_time: now,
        creation_ttl: ttl.as_secs(),
        expire_time,
        max_expire_time: expire_time,
        renewable: false,
        orphan: true,
        token_type: TokenType::Service,
        ..TokenEntry::default()
    };
    let wrapped_accessor = body
        .pointer("/auth/accessor")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (token, entry) = core.tokens().create(entry, None).await?;
    core.tokens()
        .cubby_put(&entry.accessor, RESPONSE, &body)
        .await?;
    let mut wrap_info = json!({
        "token": token.as_str(),
        "accessor": entry.accessor,
        "ttl": ttl.as_secs(),
        "creation_time": rfc3339(now),
        "creation_path": path,
    });
    if !wrapped_accessor.is_empty() {
        wrap_info["wrapped_accessor"] = json!(wrapped_accessor);
    }
    Ok(Reply::Wrapped { wrap_info })
}

/// The wrapping token a request names: in the body, else the caller's own.
/// Only a live token holding nothing but the response-wrapping policy is one.
async fn wrapping_token(core: &Core, req: &Request) -> Result<TokenEntry, Error> {
    let invalid = || Error::invalid("wrapping token is not valid or does not exist");
    let entry = match req.str("token").filter(|t| !t.is_empty()) {
        Some(token) => core.tokens().find(token).await?.ok_or_else(invalid)?.entry,
        None => match &req.caller {
            Caller::Token(t) => t.entry.clone(),
            _ => return Err(invalid()),
        },
    };
    if entry.policies != [Policy::RESPONSE_WRAPPING] {
        return Err(invalid());
    }
    Ok(entry)
}

/// The wrapped response, taken out (once) and its token revoked.
async fn take(core: &Core, req: &Request) -> Result<(TokenEntry, Value), Error> {
    let entry = wrapping_token(core, req).await?;
    let body = core
        .tokens()
        .cubby_take(&entry.accessor, RESPONSE)
        .await?
        .ok_or_else(|| Error::invalid("wrapping token is not valid or does not exist"))?;
    core.tokens().revoke_tree(&entry.accessor).await?;
    Ok((entry, body))
}

/// `sys/wrapping/wrap`: the body becomes the wrapped response's data (the
/// API wraps it, with the header's TTL or five minutes).
pub(crate) async fn wrap_data(_core: &Core, req: &Request) -> Result<Reply, Error> {
    if req.data.is_empty() {
        return Err(Error::invalid("sys/wrapping/wrap needs some data to wrap"));
    }
    Ok(data(Value::Object(req.data.clone())))
}

/// `sys/wrapping/unwrap`: the wrapped response, once.
pub(crate) async fn unwrap(core: &Core, req: &Request) -> Result<Reply, Error> {
    let (_, body) = take(core, req).await?;
    if let Some(auth) = body.get("auth").filter(|a| !a.is_null()) {
        return Ok(Reply::Auth { auth: auth.clone() });
    }
    Ok(Reply::Envelope {
        lease_id: body["lease_id"].as_str().unwrap_or_default().to_owned(),
        lease_duration: body["lease_duration"].as_i64().unwrap_or(0),
        renewable: body["renewable"].as_bool().unwrap_or(false),
        data: body.get("data").cloned().unwrap_or(Value::Null),
        credential: true,
    })
}

/// `sys/wrapping/lookup`: when and where a wrapping token was made; it
/// does not spend the token.
pub(crate) async fn lookup(core: &Core, req: &Request) -> Result<Reply, Error> {
    let entry = wrapping_token(core, req).await?;
    Ok(data(json!({
        "creation_path": entry.path,
        "creation_time": rfc3339(entry.creation_time),
        "creation_ttl": entry.creation_ttl,
    })))
}

/// `sys/wrapping/rewrap`: the same response behind a new token with the
/// same TTL; the old token is spent.
pub(crate) async fn rewrap(core: &Core, req: &Request) -> Result<Reply, Error> {
    let (entry, body) = take(core, req).await?;
    wrap_value(
        core,
        body,
        Duration::from_secs(entry.creation_ttl.max(1)),
        &entry.path,
    )
    .await
}
