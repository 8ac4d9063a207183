//! `sys/policies/acl` and the older `sys/policy` that some clients still
//! use (vaultrs, for one): writing, reading, listing and deleting ACL
//! policies. The two differ only in names: the older path lists with a
//! plain GET, and calls a policy's text `rules`.

use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Value, json};

use super::envelope::{ApiError, Reply, data, no_content};
use super::{Operation, Request};
use crate::core::Core;
use crate::policy::{PolicyError, normalize_name};

/// The paths this module serves, with and without a policy name after them.
const PREFIXES: [(&str, Flavor); 2] = [
    ("sys/policies/acl", Flavor::Acl),
    ("sys/policy", Flavor::Legacy),
];

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
}

/// Whether `path` is one this module serves.
pub(crate) fn serves(path: &str) -> bool {
    split(path).is_some()
}

/// The flavour and the policy name (empty for the list) of `path`.
fn split(path: &str) -> Option<(Flavor, &str)> {
    PREFIXES.iter().find_map(|(prefix, flavor)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| (*flavor, rest.trim_matches('/')))
    })
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        let status = match &e {
            PolicyError::Syntax(_) | PolicyError::Invalid(_) | PolicyError::BuiltIn(_) => {
                StatusCode::BAD_REQUEST
            }
            PolicyError::Storage(_) => {
                tracing::error!(error = %e, "policy storage failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, e.to_string())
    }
}

pub(crate) async fn handle(core: &Core, req: Request) -> Result<Reply, ApiError> {
    let Some((flavor, name)) = split(&req.path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no handler for this path",
        ));
    };
    let policies = core.policies();
    match (req.op, name, flavor) {
        (Operation::List, "", Flavor::Acl) => Ok(data(json!({ "keys": policies.list().await? }))),
        (Operation::Read, "", Flavor::Legacy) => {
            let names = policies.list().await?;
            Ok(data(json!({ "keys": names, "policies": names })))
        }
        (Operation::Read, name, _) if !name.is_empty() => {
            let name = normalize_name(name)?;
            match policies.text(&name).await? {
                Some(text) => Ok(data(json!({
                    "name": name,
                    flavor.text_field(): text,
                }))),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no policy named {name:?}"),
                )),
            }
        }
        (Operation::Write, name, _) if !name.is_empty() => {
            let text = |field: &str| match req.body.get(field) {
                Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
                Some(Value::String(_) | Value::Null) | None => Ok(None),
                Some(_) => Err(ApiError::bad_request(format!("{field} must be a string"))),
            };
            // The older path also takes the text as `rules`, as Vault does.
            let text = match (text("policy")?, flavor) {
                (Some(text), _) => text,
                (None, Flavor::Legacy) => text("rules")?.ok_or_else(|| {
                    ApiError::bad_request(
                        "policy (or rules) is required: the policy's text, in HCL or JSON",
                    )
                })?,
                (None, Flavor::Acl) => {
                    return Err(ApiError::bad_request(
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
            policies
                .put(name, decoded.as_deref().unwrap_or(text))
                .await?;
            Ok(no_content())
        }
        (Operation::Delete, name, _) if !name.is_empty() => {
            policies.delete(name).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("unsupported operation on {}", req.path),
        )),
    }
}
