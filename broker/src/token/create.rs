//! What a new token may be: the rules that keep a child from holding more
//! than its parent, as pure functions of the request, the parent and the
//! role, so they are tested without a store.
//!
//! A child's policies are a subset of its parent's unless the parent holds
//! `root` or `sudo` on the create path (or a role allows them); `root`
//! itself only a root token can give, in whatever spelling it is asked
//! for; a child never outlives a parent that expires; `default` is
//! attached unless asked otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{RoleTokenType, TokenEntry, TokenError, TokenRole, TokenType};
use crate::policy::{Policy, normalize_name};

/// The longest a token lives without an explicit limit (Vault's system
/// max TTL default: 32 days).
pub const SYSTEM_MAX_TTL: Duration = crate::core::SYSTEM_DEFAULT_TTL;

/// A create request's fields, as parsed from the body.
#[derive(Default)]
pub struct CreateRequest {
    /// Policies asked for (`None`: the parent's).
    pub policies: Option<Vec<String>>,
    /// Leave `default` off.
    pub no_default_policy: bool,
    /// TTL asked for.
    pub ttl: Option<Duration>,
    /// Hard limit asked for.
    pub explicit_max_ttl: Option<Duration>,
    /// Period asked for.
    pub period: Option<Duration>,
    /// Uses (0: unlimited).
    pub num_uses: u32,
    /// Renewable, if said.
    pub renewable: Option<bool>,
    /// No parent (root or sudo only).
    pub no_parent: bool,
    /// The display name asked for.
    pub display_name: Option<String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// `service` or `batch`, if said.
    pub token_type: Option<TokenType>,
    /// A token value chosen by the caller (root or sudo only).
    pub id: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for CreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRequest")
            .field("policies", &self.policies)
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

/// The creator, as far as the rules care.
#[derive(Debug, Clone, Default)]
pub struct Parent {
    /// Its policies (normalized).
    pub policies: Vec<String>,
    /// The root token, or a token holding the `root` policy.
    pub root: bool,
    /// Holds `sudo` on the create path.
    pub sudo: bool,
    /// Its accessor (`None`: the root token, which is not in the store).
    pub accessor: Option<String>,
    /// The latest it may expire (0: never).
    pub max_expire_time: i64,
    /// Its type: batch tokens have no children.
    pub token_type: TokenType,
}

/// The most policies one token may hold.
pub const MAX_POLICIES: usize = 64;
/// The most metadata entries, and the longest key and value, in bytes.
pub const MAX_META: (usize, usize, usize) = (64, 128, 1024);
/// The longest display name, in bytes.
pub const MAX_DISPLAY_NAME: usize = 256;

/// Normalizes asked-for policy names once: trimmed, lowercased, checked,
/// sorted, deduplicated. So `" Root"` and `"ROOT"` are `root` here and in
/// every check that follows (the class of CVE-2025-5999).
pub fn normalize_policies(names: &[String]) -> Result<Vec<String>, TokenError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            continue;
        }
        let normalized = normalize_name(trimmed)
            .map_err(|e| TokenError::invalid("policies", format!("policies: {e}")))?;
        out.push(normalized);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_POLICIES {
        return Err(TokenError::invalid(
            "policies",
            format!("policies: at most {MAX_POLICIES} per token"),
        ));
    }
    Ok(out)
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn at(now: i64, d: u64) -> i64 {
    now.saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
}

/// The entry a create request makes (without its accessor), or why not.
/// `orphan_path` is true at `create-orphan`; `role` at `create/{role}`.
pub fn plan(
    req: &CreateRequest,
    parent: &Parent,
    role: Option<&TokenRole>,
    orphan_path: bool,
    now: i64,
) -> Result<TokenEntry, TokenError> {
    let privileged = parent.root || parent.sudo;
    if parent.token_type == TokenType::Batch {
        return Err(TokenError::Forbidden(
            "batch tokens cannot create tokens".into(),
        ));
    }
    if req.no_parent && !privileged {
        return Err(TokenError::Forbidden(
            "root or sudo privileges required to create an orphan token with no_parent".into(),
        ));
    }
    if req.id.is_some() && !privileged {
        return Err(TokenError::Forbidden(
            "root or sudo privileges required to choose a token's id".into(),
        ));
    }
    let token_type = match (role.map(|r| r.token_type), req.token_type) {
        (Some(RoleTokenType::Service), Some(TokenType::Batch)) => {
            return Err(TokenError::invalid(
                "type",
                "type: the role's tokens are service tokens",
            ));
        }
        (Some(RoleTokenType::Batch), Some(TokenType::Service)) => {
            return Err(TokenError::invalid(
                "type",
                "type: the role's tokens are batch tokens",
            ));
        }
        (_, Some(t)) => t,
        (Some(RoleTokenType::Batch | RoleTokenType::DefaultBatch), None) => TokenType::Batch,
        _ => TokenType::Service,
    };
    let orphan = req.no_parent || orphan_path || role.is_some_and(|r| r.orphan);
    let (max_entries, max_key, max_value) = MAX_META;
    if req.meta.len() > max_entries
        || req
            .meta
            .iter()
            .any(|(k, v)| k.len() > max_key || v.len() > max_value)
    {
        return Err(TokenError::invalid(
            "meta",
            format!(
                "meta: at most {max_entries} entries, keys of at most {max_key} bytes and values of at most {max_value}"
            ),
        ));
    }
    if req
        .display_name
        .as_ref()
        .is_some_and(|n| n.len() > MAX_DISPLAY_NAME)
    {
        return Err(TokenError::invalid(
            "display_name",
            format!("display_name: at most {MAX_DISPLAY_NAME} bytes"),
        ));
    }

    // Policies.
    let asked = match &req.policies {
        Some(p) => Some(normalize_policies(p)?),
        None => None,
    };
    let allowed = role
        .map(|r| normalize_policies(&r.allowed_policies))
        .transpose()?
        .unwrap_or_default();
    let disallowed = role
        .map(|r| normalize_policies(&r.disallowed_policies))
        .transpose()?
        .unwrap_or_default();
    let mut policies = match asked {
        Some(p) => p,
        None if !allowed.is_empty() => allowed.clone(),
        None => parent.policies.clone(),
    };
    if policies.iter().any(|p| p == Policy::ROOT) && !parent.root {
        return Err(TokenError::Forbidden(
            "only a root token may create a token with the root policy".into(),
        ));
    }
    let granted = |p: &String| p == Policy::DEFAULT || parent.policies.contains(p);
    if !allowed.is_empty() {
        if let Some(p) = policies
            .iter()
            .find(|p| *p != Policy::DEFAULT && !allowed.contains(p))
        {
            return Err(TokenError::Forbidden(format!(
                "policy {p:?} is not among the role's allowed_policies"
            )));
        }
    } else if !privileged && let Some(p) = policies.iter().find(|p| !granted(p)) {
        return Err(TokenError::Forbidden(format!(
            "child policies must be a subset of the parent's: the parent does not hold {p:?}"
        )));
    }
    if let Some(p) = policies.iter().find(|p| disallowed.contains(p)) {
        return Err(TokenError::Forbidden(format!(
            "policy {p:?} is among the role's disallowed_policies"
        )));
    }
    let root = policies.iter().any(|p| p == Policy::ROOT);
    if !req.no_default_policy && !root && !policies.iter().any(|p| p == Policy::DEFAULT) {
        policies.push(Policy::DEFAULT.to_owned());
        policies.sort();
    }
    if req.no_default_policy {
        policies.retain(|p| p != Policy::DEFAULT);
    }

    // Lifetime.
    let explicit_max = req
        .explicit_max_ttl
        .map(secs)
        .filter(|s| *s > 0)
        .into_iter()
        .chain(role.map(|r| r.explicit_max_ttl).filter(|s| *s > 0))
        .min()
        .unwrap_or(0);
    let period = req
        .period
        .map(secs)
        .filter(|s| *s > 0)
        .or(role.map(|r| r.period).filter(|s| *s > 0))
        .unwrap_or(0);
    if token_type == TokenType::Batch {
        if period > 0 {
            return Err(TokenError::invalid(
                "period",
                "period: batch tokens cannot be periodic",
            ));
        }
        if req.renewable == Some(true) {
            return Err(TokenError::invalid(
                "renewable",
                "renewable: batch tokens cannot be renewed",
            ));
        }
        if req.num_uses > 0 {
            return Err(TokenError::invalid(
                "num_uses",
                "num_uses: batch tokens cannot be limited in uses",
            ));
        }
        if req.id.is_some() {
            return Err(TokenError::invalid(
                "id",
                "id: a batch token's value cannot be chosen",
            ));
        }
    }
    let mut max_expire_time = if explicit_max > 0 {
        at(now, explicit_max)
    } else {
        0
    };
    // A child dies with its parent: asking to outlive it is refused, and
    // a child that did not ask is bounded by it.
    if !orphan && parent.max_expire_time > 0 {
        if max_expire_time > parent.max_expire_time {
            return Err(TokenError::Forbidden(
                "explicit_max_ttl: a child token cannot outlive its parent's explicit max TTL"
                    .into(),
            ));
        }
        if max_expire_time == 0 {
            max_expire_time = parent.max_expire_time;
        }
    }
    let ttl = if period > 0 {
        period
    } else {
        match req.ttl.map(secs).filter(|s| *s > 0) {
            Some(ttl) => ttl,
            // A root token made without a TTL never expires, as in Vault.
            None if root && explicit_max == 0 => 0,
            None => secs(SYSTEM_MAX_TTL),
        }
    };
    // Only root tokens (and periodic ones, renewed each period) may live
    // past the system's max TTL.
    if !root && period == 0 {
        let system = at(now, secs(SYSTEM_MAX_TTL));
        max_expire_time = if max_expire_time > 0 {
            max_expire_time.min(system)
        } else {
            system
        };
    }
    let mut expire_time = if ttl > 0 { at(now, ttl) } else { 0 };
    if max_expire_time > 0 && (expire_time == 0 || expire_time > max_expire_time) {
        expire_time = max_expire_time;
    }
    if expire_time > 0 && expire_time <= now {
        return Err(TokenError::invalid(
            "ttl",
            "ttl: the token would expire at once",
        ));
    }
    let renewable = token_type == TokenType::Service
        && req.renewable.unwrap_or(true)
        && role.is_none_or(|r| r.renewable);
    let display_name = match req.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => format!("token-{name}"),
        _ => "token".to_owned(),
    };
    let path = match (role, orphan_path) {
        (Some(r), _) => format!("auth/token/create/{}", r.name),
        (None, true) => "auth/token/create-orphan".to_owned(),
        (None, false) => "auth/token/create".to_owned(),
    };
    Ok(TokenEntry {
        accessor: String::new(),
        parent: if orphan {
            None
        } else {
            parent.accessor.clone()
        },
        policies,
        path,
        display_name,
        meta: req.meta.clone(),
        num_uses: req.num_uses,
        creation_time: now,
        creation_ttl: u64::try_from(expire_time.saturating_sub(now)).unwrap_or(0),
        expire_time,
        explicit_max_ttl: explicit_max,
        max_expire_time,
        period,
        renewable,
        orphan,
        role: role.map(|r| r.name.clone()),
        token_type,
        revoking: false,
        mount_accessor: None,
        bound_cidrs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn app_parent() -> Parent {
        Parent {
            policies: vec!["app".into(), "default".into()],
            accessor: Some("parent-accessor".into()),
            ..Parent::default()
        }
    }

    fn asking(policies: &[&str]) -> CreateRequest {
        CreateRequest {
            policies: Some(policies.iter().map(|p| p.to_string()).collect()),
            ..CreateRequest::default()
        }
    }

    #[test]
    fn a_child_gets_a_subset_of_its_parents_policies_and_default() {
        let entry = plan(&asking(&["app"]), &app_parent(), None, false, NOW).unwrap();
        assert_eq!(entry.policies, ["app", "default"]);
        assert_eq!(entry.parent.as_deref(), Some("parent-accessor"));
        assert!(entry.renewable);
        let err = plan(&asking(&["app", "admin"]), &app_parent(), None, false, NOW).unwrap_err();
        assert!(matches!(err, TokenError::Forbidden(m) if m.contains("admin")));
        // Not asking means the parent's.
        let entry = plan(&CreateRequest::default(), &app_parent(), None, false, NOW).unwrap();
        assert_eq!(entry.policies, ["app", "default"]);
    }

    #[test]
    fn root_in_any_spelling_needs_a_root_parent() {
        let sudo = Parent {
            sudo: true,
            ..app_parent()
        };
        for spelling in ["root", "ROOT", " root", "Root ", "rOOt"] {
            for parent in [app_parent(), sudo.clone()] {
                let err = plan(&asking(&[spelling]), &parent, None, false, NOW).unwrap_err();
                assert!(matches!(err, TokenError::Forbidden(_)), "{spelling:?}");
            }
        }
        let root = Parent {
            root: true,
            policies: vec!["root".into()],
            ..Parent::default()
        };
        let entry = plan(&asking(&[" ROOT"]), &root, None, false, NOW).unwrap();
        assert_eq!(entry.policies, ["root"]);
        assert_eq!(
            entry.expire_time, 0,
            "a root token made without a TTL never expires"
        );
    }

    #[test]
    fn sudo_lifts_the_subset_rule_but_not_root() {
        let sudo = Parent {
            sudo: true,
            ..app_parent()
        };
        let entry = plan(&asking(&["admin"]), &sudo, None, false, NOW).unwrap();
        assert_eq!(entry.policies, ["admin", "default"]);
        let no_parent = CreateRequest {
            no_parent: true,
            ..asking(&["app"])
        };
        assert!(plan(&no_parent, &app_parent(), None, false, NOW).is_err());
        assert!(plan(&no_parent, &sudo, None, false, NOW).unwrap().orphan);
    }

    #[test]
    fn a_child_cannot_outlive_its_parent() {
        let parent = Parent {
            max_expire_time: NOW + 3600,
            ..app_parent()
        };
        let longer = CreateRequest {
            explicit_max_ttl: Some(Duration::from_secs(7200)),
            ..asking(&["app"])
        };
        assert!(matches!(
            plan(&longer, &parent, None, false, NOW),
            Err(TokenError::Forbidden(_))
        ));
        let unbounded = plan(&asking(&["app"]), &parent, None, false, NOW).unwrap();
        assert_eq!(unbounded.expire_time, NOW + 3600);
        // An orphan is not bound by a parent it does not have.
        let orphan = plan(&longer, &parent, None, true, NOW).unwrap();
        assert_eq!(orphan.expire_time, NOW + 7200);
    }

    #[test]
    fn roles_bound_policies_type_and_life() {
        let role = TokenRole {
            name: "ci".into(),
            allowed_policies: vec!["deploy".into()],
            disallowed_policies: vec!["admin".into()],
            orphan: true,
            explicit_max_ttl: 600,
            renewable: true,
            token_type: RoleTokenType::DefaultBatch,
            ..TokenRole::default()
        };
        // The role allows what the parent does not hold.
        let entry = plan(&asking(&["deploy"]), &app_parent(), Some(&role), false, NOW).unwrap();
        assert_eq!(entry.policies, ["default", "deploy"]);
        assert_eq!(entry.token_type, TokenType::Batch);
        assert!(entry.orphan && !entry.renewable);
        assert_eq!(entry.expire_time, NOW + 600);
        assert_eq!(entry.path, "auth/token/create/ci");
        assert!(plan(&asking(&["app"]), &app_parent(), Some(&role), false, NOW).is_err());
        assert!(plan(&asking(&["admin"]), &app_parent(), Some(&role), false, NOW).is_err());
    }

    #[test]
    fn batch_tokens_are_plain() {
        let batch = CreateRequest {
            token_type: Some(TokenType::Batch),
            ..asking(&["app"])
        };
        let entry = plan(&batch, &app_parent(), None, false, NOW).unwrap();
        assert!(!entry.renewable);
        let parent = Parent {
            token_type: TokenType::Batch,
            ..app_parent()
        };
        assert!(plan(&asking(&["app"]), &parent, None, false, NOW).is_err());
        let periodic = CreateRequest {
            period: Some(Duration::from_secs(60)),
            ..batch
        };
        assert!(plan(&periodic, &app_parent(), None, false, NOW).is_err());
    }

    #[test]
    fn oversized_requests_are_refused_by_field() {
        let many: Vec<String> = (0..=MAX_POLICIES).map(|i| format!("p{i}")).collect();
        let sudo = Parent {
            sudo: true,
            ..app_parent()
        };
        let req = CreateRequest {
            policies: Some(many),
            ..CreateRequest::default()
        };
        assert!(matches!(
            plan(&req, &sudo, None, false, NOW),
            Err(TokenError::Invalid {
                field: "policies",
                ..
            })
        ));
        let req = CreateRequest {
            meta: [("k".to_owned(), "v".repeat(MAX_META.2 + 1))].into(),
            ..CreateRequest::default()
        };
        assert!(matches!(
            plan(&req, &app_parent(), None, false, NOW),
            Err(TokenError::Invalid { field: "meta", .. })
        ));
        let req = CreateRequest {
            display_name: Some("n".repeat(MAX_DISPLAY_NAME + 1)),
            ..CreateRequest::default()
        };
        assert!(matches!(
            plan(&req, &app_parent(), None, false, NOW),
            Err(TokenError::Invalid {
                field: "display_name",
                ..
            })
        ));
    }

    proptest::proptest! {
        /// Whatever a non-root parent asks, the child holds nothing the
        /// parent lacks (but `default`), and never `root`.
        #[test]
        fn no_request_escalates(
            names in proptest::collection::vec("[ a-zA-Z0-9_.-]{0,12}", 0..6),
            sudo in proptest::bool::ANY,
            max in proptest::option::of(0u64..100_000),
        ) {
            let parent = Parent { sudo, max_expire_time: NOW + 50_000, ..app_parent() };
            let req = CreateRequest {
                policies: Some(names),
                explicit_max_ttl: max.map(Duration::from_secs),
                ..CreateRequest::default()
            };
            if let Ok(entry) = plan(&req, &parent, None, false, NOW) {
                proptest::prop_assert!(!entry.is_root());
                if !sudo {
                    for p in &entry.policies {
                        proptest::prop_assert!(p == "default" || parent.policies.contains(p));
                    }
                }
                proptest::prop_assert!(entry.expire_time <= parent.max_expire_time);
                proptest::prop_assert!(entry.expire_time > NOW);
            }
        }
    }
}
