//! Reading a policy document: Vault's HCL (`path "…" { capabilities = […] }`)
//! or the same structure in JSON, into checked [`PathRule`]s.
//!
//! A key this broker does not enforce (`allowed_parameters`,
//! `min_wrapping_ttl`, …) is refused, never skipped: a rule that was meant
//! to narrow access must not silently grant more.

use super::json::Json;
use super::{Capabilities, Capability, PolicyError};

/// Keys Vault accepts in a path rule that this broker does not enforce.
const UNSUPPORTED_KEYS: [&str; 8] = [
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

/// The longest policy name accepted.
const MAX_NAME_LEN: usize = 128;

/// A named, parsed policy. Its text stays in storage, where it is read
/// back from ([`super::PolicyStore::text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    name: String,
    rules: Vec<PathRule>,
}

/// One `path` block: a path pattern and what it grants there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// As written, less any leading `/`: exact (`secret/data/app`), a glob
    /// (`secret/data/*`), or with `+` segments (`secret/+/app`).
    pub path: String,
    /// What it grants (or, with `deny`, takes away).
    pub capabilities: Capabilities,
}

impl Policy {
    /// The name of the built-in policy that allows everything.
    pub const ROOT: &'static str = "root";
    /// The name of the built-in policy every token carries by default.
    pub const DEFAULT: &'static str = "default";
    /// The built-in policy of wrapping tokens.
    pub const RESPONSE_WRAPPING: &'static str = "response-wrapping";

    /// Parses `text` (HCL, or JSON when it starts with `{`) as the policy
    /// `name`. The name is lowercased, as Vault does.
    pub fn parse(name: &str, text: &str) -> Result<Self, PolicyError> {
        let name = normalize_name(name)?;
        if name == Self::ROOT {
            return Err(PolicyError::BuiltIn(
                "the root policy is built in and cannot be changed",
            ));
        }
        let raw = if text.trim_start().starts_with('{') {
            from_json(text)?
        } else {
            from_hcl(text)?
        };
        let rules = raw
            .into_iter()
            .map(RawRule::check)
            .collect::<Result<_, _>>()?;
        Ok(Self { name, rules })
    }

    /// The built-in `root` policy. It has no rules: an ACL that includes it
    /// allows everything (see [`super::Acl`]).
    pub fn root() -> Self {
        Self {
            name: Self::ROOT.to_owned(),
            rules: Vec::new(),
        }
    }

    /// Its name, lowercase.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its rules, in the order written.
    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    /// Whether this is the built-in `root` policy.
    pub fn is_root(&self) -> bool {
        self.name == Self::ROOT
    }
}

/// Lowercases a policy name and checks it can be a storage key and a
/// URL segment: letters, digits, `-`, `_` and `.`.
pub fn normalize_name(name: &str) -> Result<String, PolicyError> {
    let name = name.to_lowercase();
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if valid {
        Ok(name)
    } else {
        Err(PolicyError::Invalid(format!(
            "invalid policy name {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A value in a path block, before it is checked.
enum RawValue {
    Text(String),
    List(Vec<String>),
    /// Anything else, by the name of its kind, for the error.
    Other(&'static str),
}

impl RawValue {
    fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "a string",
            Self::List(_) => "a list",
            Self::Other(kind) => kind,
        }
    }
}

/// A path block as read, before its keys are checked.
struct RawRule {
    path: String,
    keys: Vec<(String, RawValue)>,
}

impl RawRule {
    fn check(self) -> Result<PathRule, PolicyError> {
        let at = |message: String| PolicyError::Invalid(format!("path {:?}: {message}", self.path));
        let path = self.path.strip_prefix('/').unwrap_or(&self.path).to_owned();
        if let Some(star) = path.find('*')
            && star != path.len() - 1
        {
            return Err(at(
                "'*' may only end a path (a glob); use '+' to match one segment".into(),
            ));
        }
        // Vault gives a `+` inside a segment, and `+*`, meanings of their
        // own (or refuses them); rather than half-mirror those, only a
        // whole-segment `+` is taken.
        let body = path.strip_suffix('*').unwrap_or(&path);
        if body
            .split('/')
            .any(|part| part != "+" && part.contains('+'))
            || path.contains("+*")
        {
            return Err(at(
                "'+' must be a whole path segment (as in secret/+/config), and cannot be followed by '*'".into(),
            ));
        }
        if path.contains("{{") {
            return Err(at(
                "templated paths ({{identity...}}) are not supported: they would match literally and be shared by every token".into(),
            ));
        }
        // A block without capabilities grants nothing, as in Vault.
        let mut capabilities = Capabilities::NONE;
        for (key, value) in &self.keys {
            match (key.as_str(), value) {
                ("comment", _) => {}
                ("capabilities", RawValue::List(names)) => {
                    for name in names {
                        let capability = Capability::parse(name).ok_or_else(|| {
                            at(format!(
                                "unknown capability {name:?}; known: {}",
                                Capability::ALL.map(Capability::as_str).join(", ")
                            ))
                        })?;
                        capabilities.insert(capability);
                    }
                }
                ("policy", RawValue::Text(legacy)) => {
                    capabilities = capabilities.union(legacy_policy(legacy).ok_or_else(|| {
                        at(format!(
                            "unknown policy {legacy:?}; known: deny, read, write, sudo"
                        ))
                    })?);
                }
                ("capabilities", other) => {
                    return Err(at(format!(
                        "capabilities must be a list of strings, not {}",
                        other.kind()
                    )));
                }
                ("policy", other) => {
                    return Err(at(format!("policy must be a string, not {}", other.kind())));
                }
                (key, _) if UNSUPPORTED_KEYS.contains(&key) => {
                    return Err(at(format!(
                        "{key} is not supported by this broker; a rule that narrows access cannot be ignored, so the policy is refused"
                    )));
                }
                (key, _) => {
                    return Err(at(format!(
                        "unknown key {key:?}; a path rule takes capabilities"
                    )));
                }
            }
        }
        Ok(PathRule { path, capabilities })
    }
}

/// Vault's older `policy = "…"` form, as the capabilities it stands for.
fn legacy_policy(name: &str) -> Option<Capabilities> {
    use Capability::*;
    let read = [Read, List];
    let write = [Read, List, Create, Update, Delete];
    Some(match name {
        "deny" => [Deny].into_iter().collect(),
        "read" => read.into_iter().collect(),
        "write" => write.into_iter().collect(),
        "sudo" => write.into_iter().chain([Sudo]).collect(),
        _ => return None,
    })
}

fn from_hcl(text: &str) -> Result<Vec<RawRule>, PolicyError> {
    use hcl::Expression;

    let body = hcl::parse(text).map_err(|e| {
        // One line, for an error body: where, then what.
        PolicyError::Syntax(match &e {
            hcl::Error::Parse(p) => format!(
                "line {}, column {}: {}",
                p.location().line(),
                p.location().column(),
                p.message()
            ),
            _ => e.to_string(),
        })
    })?;
    if let Some(attribute) = body.attributes().find(|a| a.key() != "name") {
        return Err(PolicyError::Invalid(format!(
            "unknown top-level key {:?}; a policy holds path blocks",
            attribute.key()
        )));
    }
    let value = |expression: &Expression| match expression {
        Expression::String(s) => RawValue::Text(s.clone()),
        Expression::Array(items) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|item| match item {
                    Expression::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            strings.map_or(RawValue::Other("a list of non-strings"), RawValue::List)
        }
        Expression::Null => RawValue::Other("null"),
        Expression::Bool(_) => RawValue::Other("a boolean"),
        Expression::Number(_) => RawValue::Other("a number"),
        Expression::Object(_) => RawValue::Other("an object"),
        _ => RawValue::Other("an expression"),
    };
    body.blocks()
        .map(|block| {
            let path = match (block.identifier(), block.labels()) {
                ("path", [label]) => label.as_str().to_owned(),
                ("path", _) => {
                    return Err(PolicyError::Invalid(
                        "a path block takes one label: path \"secret/*\" { … }".into(),
                    ));
                }
                (other, _) => {
                    return Err(PolicyError::Invalid(format!(
                        "unknown block {other:?}; a policy holds path blocks"
                    )));
                }
            };
            if let Some(nested) = block.body().blocks().next() {
                return Err(PolicyError::Invalid(format!(
                    "path {path:?}: unknown key {:?}; a path rule takes capabilities",
                    nested.identifier()
                )));
            }
            let keys = block
                .body()
                .attributes()
                .map(|a| (a.key().to_owned(), value(a.expr())))
                .collect();
            Ok(RawRule { path, keys })
        })
        .collect()
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "a string",
            Self::List(_) => "a list",
            Self::Object(_) => "an object",
            Self::Number(_) => "a number",
            Self::Other(kind) => kind,
        }
    }

    fn into_rule_value(self) -> RawValue {
        match self {
            Self::Text(s) => RawValue::Text(s),
            Self::List(items) => items
                .into_iter()
                .map(|item| match item {
                    Self::Text(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map_or(RawValue::Other("a list of non-strings"), RawValue::List),
            other => RawValue::Other(other.kind()),
        }
    }
}

/// Read through [`Json`], members in order: a repeated path must merge (so
/// that a `deny` in either copy wins), as Vault's parser does.
fn from_json(text: &str) -> Result<Vec<RawRule>, PolicyError> {
    let Json::Object(document) =
        serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?
    else {
        return Err(PolicyError::Invalid("a JSON policy is an object".into()));
    };
    let mut rules = Vec::new();
    for (key, paths) in document {
        match (key.as_str(), paths) {
            ("name", _) => {}
            ("path", Json::Object(paths)) => {
                for (path, block) in paths {
                    let Json::Object(block) = block else {
                        return Err(PolicyError::Invalid(format!(
                            "path {path:?}: a path rule is an object"
                        )));
                    };
                    let keys = block
                        .into_iter()
                        .map(|(key, value)| (key, value.into_rule_value()))
                        .collect();
                    rules.push(RawRule { path, keys });
                }
            }
            ("path", _) => {
                return Err(PolicyError::Invalid(
                    "\"path\" must be an object of path rules".into(),
                ));
            }
            (other, _) => {
                return Err(PolicyError::Invalid(format!(
                    "unknown top-level key {other:?}; a policy holds path rules"
                )));
            }
        }
    }
    Ok(rules)
}
