//! `sys/policies/acl` and the older `sys/policy` that some clients still
//! use (vaultrs, for one): writing, reading, listing and deleting ACL
//! policies. The two differ only in names: the older path lists with a
//! plain GET, and calls a policy's text `rules`.

use base64::Engine;
use serde_json::{Value, json};

use crate::core::Core;
use crate::framework::{Error, Reply, Request, data, no_content};
use crate::policy::{PolicyError, normalize_name};

/// Which of the two paths a request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Acl,
    Legacy,
}

impl Flavor {
    /// The field that holds a policy's text when it is read.
    fn text_field(self) -> &'static str {
        match self {
            Self::Acl => "policy",
            Self::Legacy => "rules",
        }
    }

    fn of(req: &Request) -> Self {
        if req.path.starts_with("sys/policy/") || req.path == "sys/policy" {
            Self::Legacy
        } else {
            Self::Acl
        }
    }
}

impl From<PolicyError> for Error {
    fn from(e: PolicyError) -> Self {
        match &e {
            PolicyError::Syntax(_) | PolicyError::Invalid(_) | PolicyError::BuiltIn(_) => {
                Self::invalid(e.to_string())
            }
            PolicyError::Storage(_) => Self::Internal(e.to_string()),
        }
    }
}

/// Whether a write to `sys/policies/acl/{name}` creates the policy
/// (policies grant `create` and `update` apart). A name that is not one is
/// "absent": the write itself then says why.
pub(crate) async fn exists(core: &Core, req: &Request) -> Result<bool, Error> {
    match core.policies().text(req.param("name")?).await {
        Ok(text) => Ok(text.is_some()),
        Err(PolicyError::Storage(e)) => Err(e.into()),
        Err(_) => Ok(false),
    }
}

/// `LIST sys/policies/acl`.
pub(crate) async fn list(core: &Core, _req: &Request) -> Result<Reply, Error> {
    Ok(data(json!({ "keys": core.policies().list().await? })))
}

/// `GET sys/policy`: the older listing, names under two keys.
pub(crate) async fn list_legacy(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let names = core.policies().list().await?;
    Ok(data(json!({ "keys": names, "policies": names })))
}

/// `GET sys/policies/acl/{name}` (or `sys/policy/{name}`).
pub(crate) async fn read(core: &Core, req: &Request) -> Result<Reply, Error> {
    let name = normalize_name(req.param("name")?)?;
    match core.policies().text(&name).await? {
        Some(text) => Ok(data(json!({
            "name": name,
            Flavor::of(req).text_field(): text,
        }))),
        None => Err(Error::NotFound(format!("no policy named {name:?}"))),
    }
}

/// `PUT sys/policies/acl/{name}` (or `sys/policy/{name}`).
pub(crate) async fn write(core: &Core, req: &Request) -> Result<Reply, Error> {
    let text = |field: &str| match req.data.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
        Some(Value::String(_) | Value::Null) | None => Ok(None),
        Some(_) => Err(Error::field(field, format!("{field} must be a string"))),
    };
    // The older path also takes the text as `rules`, as Vault does.
    let text = match (text("policy")?, Flavor::of(req)) {
        (Some(text), _) => text,
        (None, Flavor::Legacy) => text("rules")?.ok_or_else(|| {
            Error::field(
                "policy",
                "policy (or rules) is required: the policy's text, in HCL or JSON",
            )
        })?,
        (None, Flavor::Acl) => {
            return Err(Error::field(
                "policy",
                "policy is required: the policy's text, in HCL or JSON",
            ));
        }
    };
    // Vault takes the text base64-encoded too, to spare escaping. No
    // policy is valid base64 (it has spaces, quotes and braces).
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    core.policies()
        .put(req.param("name")?, decoded.as_deref().unwrap_or(text))
        .await?;
    Ok(no_content())
}

/// `DELETE sys/policies/acl/{name}` (or `sys/policy/{name}`).
pub(crate) async fn delete(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.policies().delete(req.param("name")?).await?;
    Ok(no_content())
}
