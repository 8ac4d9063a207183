//! `sys/policies/acl` and the older `sys/policy` that some clients still
//! use (vaultrs, for one): writing, reading, listing and deleting ACL
//! policies. The two differ only in names: the older path lists with a
//! plain GET, and calls a policy's text `rules`.
//!
//! Beside them, `sys/policies/password`: Vault's password policies
//! ([`crate::policy::password`]), written, read, listed, deleted, and
//! tried out with `sys/policies/password/{name}/generate`.

use base64::Engine;
use serde_json::{Value, json};

use crate::core::Core;
use crate::framework::{Error, Reply, Request, data, list as list_reply, no_content};
use crate::policy::{PasswordPolicyError, PolicyError, normalize_name};

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

/// The non-blank string in `field` of the body, if there is one.
fn text_field<'a>(req: &'a Request, field: &str) -> Result<Option<&'a String>, Error> {
    match req.data.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
        Some(Value::String(_) | Value::Null) | None => Ok(None),
        Some(_) => Err(Error::field(field, format!("{field} must be a string"))),
    }
}

/// A policy's text as sent: Vault takes it base64-encoded too, to spare
/// escaping. No policy is valid base64 (it has spaces, quotes or braces),
/// so text that decodes is taken decoded.
fn decoded(text: &str) -> std::borrow::Cow<'_, str> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map_or(std::borrow::Cow::Borrowed(text), std::borrow::Cow::Owned)
}

/// `PUT sys/policies/acl/{name}` (or `sys/policy/{name}`).
pub(crate) async fn write(core: &Core, req: &Request) -> Result<Reply, Error> {
    let text = |field: &str| text_field(req, field);
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
    core.policies()
        .put(req.param("name")?, &decoded(text))
        .await?;
    Ok(no_content())
}

/// `DELETE sys/policies/acl/{name}` (or `sys/policy/{name}`).
pub(crate) async fn delete(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.policies().delete(req.param("name")?).await?;
    Ok(no_content())
}

impl From<PasswordPolicyError> for Error {
    fn from(e: PasswordPolicyError) -> Self {
        match &e {
            PasswordPolicyError::Syntax(_) | PasswordPolicyError::Invalid(_) => {
                Self::field("policy", e.to_string())
            }
            PasswordPolicyError::Name(_) | PasswordPolicyError::Stored { .. } => {
                Self::invalid(e.to_string())
            }
            PasswordPolicyError::NotFound(_) => Self::NotFound(e.to_string()),
            PasswordPolicyError::Random(_) | PasswordPolicyError::Storage(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

/// Whether a write to `sys/policies/password/{name}` creates the policy.
/// A name that is not one is "absent": the write itself then says why.
pub(crate) async fn password_exists(core: &Core, req: &Request) -> Result<bool, Error> {
    match core.password_policies().text(req.param("name")?).await {
        Ok(text) => Ok(text.is_some()),
        Err(PasswordPolicyError::Storage(e)) => Err(e.into()),
        Err(_) => Ok(false),
    }
}

/// `LIST sys/policies/password`: an empty 404 when there are none, as
/// Vault answers.
pub(crate) async fn password_list(core: &Core, _req: &Request) -> Result<Reply, Error> {
    list_reply(core.password_policies().list().await?)
}

/// `GET sys/policies/password/{name}`: its text as written.
pub(crate) async fn password_read(core: &Core, req: &Request) -> Result<Reply, Error> {
    let name = req.param("name")?;
    match core.password_policies().text(name).await? {
        Some(text) => Ok(data(json!({ "policy": text }))),
        None => Err(PasswordPolicyError::NotFound(name.to_owned()).into()),
    }
}

/// `PUT sys/policies/password/{name}` with `policy`, HCL or JSON (or
/// either base64-encoded).
pub(crate) async fn password_write(core: &Core, req: &Request) -> Result<Reply, Error> {
    let text = text_field(req, "policy")?.ok_or_else(|| {
        Error::field(
            "policy",
            "policy is required: length = 20 and one or more rule \"charset\" { charset = \"...\" } blocks",
        )
    })?;
    core.password_policies()
        .put(req.param("name")?, &decoded(text))
        .await?;
    Ok(no_content())
}

/// `DELETE sys/policies/password/{name}`.
pub(crate) async fn password_delete(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.password_policies().delete(req.param("name")?).await?;
    Ok(no_content())
}

/// `GET sys/policies/password/{name}/generate`: a password from the
/// policy, as the database engine would make one.
pub(crate) async fn password_generate(core: &Core, req: &Request) -> Result<Reply, Error> {
    let name = req.param("name")?;
    let policy = core
        .password_policies()
        .get(name)
        .await?
        .ok_or_else(|| PasswordPolicyError::NotFound(name.to_owned()))?;
    let password = policy.try_generate()?;
    Ok(data(json!({ "password": password.as_str() })))
}
