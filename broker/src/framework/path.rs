//! Path patterns, the operations a path serves, and who may call it.
//!
//! A pattern is written as Vault documents its paths: literal segments,
//! `{name}` for one segment, and `{name+}` for one or more segments (a lease
//! id, a mount path), at most one of those per pattern. Matching is by
//! whole segments: `roles/{name}` never matches `roles` or `roles/a/b`.

use std::fmt;

/// What a request asks to do. HTTP methods map to these as in Vault:
/// GET reads (or lists, with `?list=true`), LIST lists, POST and PUT write
/// (create or update, told apart by the path's existence check), PATCH
/// patches, DELETE deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Read one object.
    Read,
    /// List the names below a path.
    List,
    /// Write an object that does not exist yet (paths with an existence check).
    Create,
    /// Write an object (that exists, for paths with an existence check).
    Update,
    /// Change some fields of an object (JSON merge patch).
    Patch,
    /// Delete an object.
    Delete,
}

impl Operation {
    /// The name Vault's audit log and policies use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }

    /// The operation an HTTP method asks for; `None` for a method the API
    /// does not take. `list` is the `?list=true` query flag.
    pub fn from_method(method: &str, list: bool) -> Option<Self> {
        Some(match method {
            "GET" if list => Self::List,
            "GET" => Self::Read,
            "LIST" => Self::List,
            "POST" | "PUT" => Self::Update,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Anyone, at any time, sealed or not: no token, no audit entry, no
    /// rate limit (`sys/health`: load balancers poll it).
    Open,
    /// Anyone: no token needed, but audited and rate limited (a CA
    /// certificate, a CRL: relying parties fetch them).
    Public,
    /// A valid token whose policies allow the operation.
    #[default]
    Token,
    /// A token with `sudo` on the path (root-protected, as Vault's
    /// `PathsSpecial.Root`).
    Sudo,
}

impl Access {
    /// Whether a request without a token may reach the handler.
    pub fn unauthenticated(self) -> bool {
        matches!(self, Self::Open | Self::Public)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// One non-empty segment.
    One(String),
    /// One or more segments, joined by `/`.
    Rest(String),
}

/// A path pattern: `roles/{name}`, `sys/leases/revoke/{lease_id+}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

/// Why a pattern is malformed (a bug in a table, caught by its tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path pattern {pattern:?}: {why}")]
pub struct PatternError {
    pattern: String,
    why: &'static str,
}

/// The values of a matched path's parameters, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl PatternError {
    /// A table's error about `pattern`.
    pub fn new(pattern: &str, why: &'static str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            why,
        }
    }
}

impl Params {
    /// The value of parameter `name`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl Pattern {
    /// Parses a pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let bad = |why| PatternError {
            pattern: text.to_owned(),
            why,
        };
        let mut segments = Vec::new();
        let mut rest_seen = false;
        let mut names = Vec::new();
        if !text.is_empty() {
            for part in text.split('/') {
                if part.is_empty() {
                    return Err(bad("empty segment"));
                }
                let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => {
                        let (name, rest) = match name.strip_suffix('+') {
                            Some(n) => (n, true),
                            None => (name, false),
                        };
                        if name.is_empty()
                            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            return Err(bad("a parameter is a name of letters, digits and '_'"));
                        }
                        if names.contains(&name) {
                            return Err(bad("a parameter appears twice"));
                        }
                        names.push(name);
                        if rest {
                            if rest_seen {
                                return Err(bad("at most one {name+} parameter"));
                            }
                            rest_seen = true;
                            Segment::Rest(name.to_owned())
                        } else {
                            Segment::One(name.to_owned())
                        }
                    }
                    None if part.contains(['{', '}']) => {
                        return Err(bad("braces only around a whole segment"));
                    }
                    None => Segment::Literal(part.to_owned()),
                };
                segments.push(segment);
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern as OpenAPI writes it: `{name+}` becomes `{name}`.
    pub fn openapi(&self) -> String {
        self.text.replace("+}", "}")
    }

    /// The parameter names, in order.
    pub fn parameters(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::One(n) | Segment::Rest(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Matches `path` (relative to the mount, without leading or trailing
    /// `/`), returning its parameters.
    pub fn matches(&self, path: &str) -> Option<Params> {
        let parts: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        self.matches_segments(&parts)
    }

    /// [`Self::matches`] on a path already split at `/` (a table splits
    /// once for all its patterns).
    pub fn matches_segments(&self, parts: &[&str]) -> Option<Params> {
        let rest_at = self
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Rest(_)));
        let mut params = Vec::new();
        match rest_at {
            None => {
                if parts.len() != self.segments.len() {
                    return None;
                }
                for (segment, part) in self.segments.iter().zip(parts) {
                    match_one(segment, part, &mut params)?;
                }
            }
            Some(at) => {
                let after = self.segments.len() - at - 1;
                if parts.len() < at + 1 + after {
                    return None;
                }
                for (segment, part) in self.segments[..at].iter().zip(parts) {
                    match_one(segment, part, &mut params)?;
                }
                let tail_end = parts.len() - after;
                // The handler judges what is inside (`a//b` is a bad mount
                // path, not an unknown route); it is never empty.
                let tail = parts[at..tail_end].join("/");
                if tail.is_empty() {
                    return None;
                }
                if let Segment::Rest(name) = &self.segments[at] {
                    params.push((name.clone(), tail));
                }
                for (segment, part) in self.segments[at + 1..].iter().zip(&parts[tail_end..]) {
                    match_one(segment, part, &mut params)?;
                }
            }
        }
        Some(Params(params))
    }
}

fn match_one(segment: &Segment, part: &str, params: &mut Vec<(String, String)>) -> Option<()> {
    match segment {
        Segment::Literal(l) if l == part => Some(()),
        Segment::One(name) if !part.is_empty() => {
            params.push((name.clone(), part.to_owned()));
            Some(())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn segments_match_whole() {
        assert_eq!(
            p("roles/{name}").matches("roles/app").unwrap().get("name"),
            Some("app")
        );
        assert!(p("roles/{name}").matches("roles").is_none());
        assert!(p("roles/{name}").matches("roles/a/b").is_none());
        assert!(p("roles/{name}").matches("rolesx/a").is_none());
        assert!(p("roles").matches("roles").unwrap().iter().next().is_none());
        assert!(p("").matches("").is_some());
        assert!(p("").matches("x").is_none());
    }

    #[test]
    fn a_rest_parameter_takes_one_or_more_segments_and_leaves_the_suffix() {
        let tune = p("sys/mounts/{path+}/tune");
        assert_eq!(
            tune.matches("sys/mounts/team/db/tune").unwrap().get("path"),
            Some("team/db")
        );
        assert!(tune.matches("sys/mounts/tune").is_none());
        let revoke = p("sys/leases/revoke/{lease_id+}");
        assert_eq!(
            revoke
                .matches("sys/leases/revoke/db/creds/r/x")
                .unwrap()
                .get("lease_id"),
            Some("db/creds/r/x")
        );
        assert!(revoke.matches("sys/leases/revoke").is_none());
        assert_eq!(
            revoke
                .matches("sys/leases/revoke/a//b")
                .unwrap()
                .get("lease_id"),
            Some("a//b")
        );
        assert!(tune.matches("sys/mounts//tune").is_none());
        assert_eq!(revoke.openapi(), "sys/leases/revoke/{lease_id}");
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "a//b",
            "a/{}",
            "a/{x}/{x}",
            "{a+}/{b+}",
            "a/b{c}",
            "/a",
            "a/{x-y}",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_map_to_operations_as_in_vault() {
        assert_eq!(Operation::from_method("GET", true), Some(Operation::List));
        assert_eq!(Operation::from_method("LIST", false), Some(Operation::List));
        assert_eq!(
            Operation::from_method("PUT", false),
            Some(Operation::Update)
        );
        assert_eq!(
            Operation::from_method("PATCH", false),
            Some(Operation::Patch)
        );
        assert_eq!(Operation::from_method("TRACE", false), None);
    }

    proptest! {
        /// A parameter is never empty, and putting the parameters back into the
        /// pattern gives the path again.
        #[test]
        fn matching_round_trips(path in "[a-z/]{0,24}", pattern in prop::sample::select(vec![
            "roles/{name}", "sys/mounts/{path+}/tune", "a/{x}/{y+}", "{x+}", "creds/{role}", "",
        ])) {
            let pattern = p(pattern);
            if let Some(params) = pattern.matches(&path) {
                let mut rebuilt = pattern.as_str().to_owned();
                for (name, value) in params.iter() {
                    prop_assert!(!value.is_empty());
                    rebuilt = rebuilt.replace(&format!("{{{name}+}}"), value).replace(&format!("{{{name}}}"), value);
                }
                prop_assert_eq!(rebuilt, path);
            }
        }
    }
}
