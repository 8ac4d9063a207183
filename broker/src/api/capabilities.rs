//! `sys/capabilities`, `sys/capabilities-self`, `sys/capabilities-accessor`:
//! what a token's policies grant on some paths, as Vault answers it
//! (`root` for a root token, `deny` where nothing is granted).

use serde_json::{Map, Value, json};

use crate::core::Core;
use crate::framework::{Caller, Error, Reply, Request, data};
use crate::policy::{Capabilities, Capability, Policy};

/// Capability names as Vault lists them for one path.
fn names(root: bool, granted: Capabilities) -> Vec<&'static str> {
    if root {
        return vec![Policy::ROOT];
    }
    if granted.contains(Capability::Deny) {
        return vec![Capability::Deny.as_str()];
    }
    let names: Vec<&'static str> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::Deny && granted.contains(*c))
        .map(Capability::as_str)
        .collect();
    if names.is_empty() {
        vec![Capability::Deny.as_str()]
    } else {
        names
    }
}

/// The paths asked about: `paths` (a list or comma-separated), or `path`.
fn paths(req: &Request) -> Result<Vec<String>, Error> {
    let paths = match req.list("paths")? {
        Some(p) if !p.is_empty() => p,
        _ => req.list("path")?.unwrap_or_default(),
    };
    if paths.is_empty() {
        return Err(Error::field("paths", "paths: name at least one path"));
    }
    Ok(paths
        .into_iter()
        .map(|p| p.trim_start_matches('/').to_owned())
        .collect())
}

async fn answer(core: &Core, policies: &[String], req: &Request) -> Result<Reply, Error> {
    let paths = paths(req)?;
    let root = policies.iter().any(|p| p == Policy::ROOT);
    let acl = core.policies().cached_acl(policies).await?;
    let mut out = Map::new();
    let mut all = Vec::new();
    for path in &paths {
        let listed = names(root, acl.capabilities(path));
        all.extend(listed.iter().copied());
        out.insert(path.clone(), json!(listed));
    }
    all.sort_unstable();
    all.dedup();
    out.insert("capabilities".into(), json!(all));
    Ok(data(Value::Object(out)))
}

/// `sys/capabilities-self`.
pub(crate) async fn of_self(core: &Core, req: &Request) -> Result<Reply, Error> {
    let policies = match &req.caller {
        Caller::Anonymous => return Err(Error::Forbidden("permission denied".into())),
        caller => caller.policies(),
    };
    answer(core, &policies, req).await
}

/// `sys/capabilities`: of the token in the body.
pub(crate) async fn of_token(core: &Core, req: &Request) -> Result<Reply, Error> {
    let token = req.str("token").unwrap_or_default();
    if core.is_root_token(token).await {
        return answer(core, &[Policy::ROOT.to_owned()], req).await;
    }
    let found = core
        .tokens()
        .find(token)
        .await?
        .ok_or_else(|| Error::invalid("bad token"))?;
    answer(core, &found.entry.policies, req).await
}

/// `sys/capabilities-accessor`.
pub(crate) async fn of_accessor(core: &Core, req: &Request) -> Result<Reply, Error> {
    let accessor = req.str("accessor").unwrap_or_default();
    let (_, entry) = core
        .tokens()
        .by_accessor(accessor)
        .await?
        .ok_or_else(|| Error::invalid("invalid accessor"))?;
    answer(core, &entry.policies, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_vault() {
        assert_eq!(names(true, Capabilities::NONE), ["root"]);
        assert_eq!(names(false, Capabilities::NONE), ["deny"]);
        let rl: Capabilities = [Capability::Read, Capability::List].into_iter().collect();
        assert_eq!(names(false, rl), ["read", "list"]);
        let denied = rl.union([Capability::Deny].into_iter().collect());
        assert_eq!(names(false, denied), ["deny"]);
    }
}
