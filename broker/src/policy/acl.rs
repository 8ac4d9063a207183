//! The access-control list a token's policies make, and the one question it
//! answers: what may be done at this path?
//!
//! Matching follows Vault's documented rules, so policies written for Vault
//! mean the same here:
//! - an exact rule wins over any wildcard rule;
//! - among glob (`*`) and segment (`+`) rules that match, the most specific
//!   wins: the one whose first wildcard comes latest; then one without a
//!   trailing glob; then fewer `+` segments; then the longer pattern; then
//!   the lexically greater one;
//! - rules for the same pattern in several policies are merged, and `deny`
//!   in any of them wins;
//! - no match means no access.
//!
//! Built once per set of policies and shared: evaluation allocates nothing.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::{Capabilities, Capability, Policy};

/// What a set of policies grants, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// Holds the `root` policy: everything is allowed.
    root: bool,
    exact: HashMap<Box<str>, Capabilities>,
    /// Glob rules without `+` segments, by their prefix (the pattern less
    /// its `*`). Only the longest prefix that matches can win, so they are
    /// found by looking the path's own prefixes up, longest first.
    prefixes: HashMap<Box<str>, Capabilities>,
    /// The distinct lengths of `prefixes`' keys, longest first.
    prefix_lens: Vec<usize>,
    /// Rules with `+` segments, as a tree of their parts.
    segments: SegmentNode,
}

/// A node of the `+` rules' tree. A path walks it a segment at a time, down
/// both the literal child and the `+` child, so evaluation costs the
/// path's depth, not the number of rules.
#[derive(Debug, Clone, Default)]
struct SegmentNode {
    literal: HashMap<Box<str>, SegmentNode>,
    plus: Option<Box<SegmentNode>>,
    /// The rule whose parts end here (the path must end here too).
    end: Option<SegmentRule>,
    /// Glob rules whose last part is this depth's segment, by that part:
    /// the segment need only begin with it, and more may follow.
    globs: Vec<(Box<str>, SegmentRule)>,
}

/// A rule with at least one `+` segment.
#[derive(Debug, Clone)]
struct SegmentRule {
    pattern: Box<str>,
    rank: Rank,
    capabilities: Capabilities,
}

/// How specific a wildcard rule is; the greatest wins (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    first_wildcard: usize,
    no_glob: bool,
    fewer_plus: Reverse<usize>,
    len: usize,
}

impl Acl {
    /// The ACL for `policies`, merged.
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut acl = Self::default();
        let mut segments: HashMap<&str, Capabilities> = HashMap::new();
        for policy in policies {
            if policy.is_root() {
                acl.root = true;
            }
            for rule in policy.rules() {
                let path = rule.path.as_str();
                let body = path.strip_suffix('*').unwrap_or(path);
                let slot = if body.split('/').any(|part| part == "+") {
                    segments.entry(path).or_default()
                } else if body.len() < path.len() {
                    acl.prefixes.entry(body.into()).or_default()
                } else {
                    acl.exact.entry(path.into()).or_default()
                };
                *slot = slot.union(rule.capabilities);
            }
        }
        acl.prefix_lens = acl.prefixes.keys().map(|k| k.len()).collect();
        acl.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        acl.prefix_lens.dedup();
        for (pattern, capabilities) in segments {
            acl.segments.insert(pattern, capabilities);
        }
        acl
    }

    /// What the policies grant at `path` (no leading `/`), before the
    /// list rule of [`Self::allows`].
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        self.exact(path)
            .or_else(|| self.wildcard(path))
            .unwrap_or(Capabilities::NONE)
    }

    /// Whether a request needing `capability` at `path` is allowed.
    ///
    /// A list request's path ends in `/`; as in Vault, a rule written
    /// without that slash also grants it (`path "secret/metadata"` lets one
    /// list `secret/metadata/`). Exact rules come first; then, as Vault
    /// does, wildcards are matched against the path without its slash
    /// before the path with it.
    pub fn allows(&self, path: &str, capability: Capability) -> bool {
        self.granted(path, capability == Capability::List)
            .allows(capability)
    }

    /// What the one rule deciding a request at `path` grants (a list's path
    /// ends in `/`, matched as [`Self::allows`] says). A request that needs
    /// two capabilities, an operation's and `sudo` on a root-protected
    /// path, takes both from this rule, as Vault does: `sudo` granted by
    /// another rule that does not decide the request does not count.
    pub fn granted(&self, path: &str, list: bool) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        let bare = if list { path.strip_suffix('/') } else { None };
        self.exact(path)
            .or_else(|| bare.and_then(|p| self.exact(p)))
            .or_else(|| bare.and_then(|p| self.wildcard(p)))
            .or_else(|| self.wildcard(path))
            .unwrap_or(Capabilities::NONE)
    }

    fn exact(&self, path: &str) -> Option<Capabilities> {
        self.exact.get(path).copied()
    }

    /// The most specific glob or segment rule matching `path`.
    fn wildcard(&self, path: &str) -> Option<Capabilities> {
        // A glob's one wildcard is its `*`, right after its prefix.
        let glob = self.prefix_lens.iter().find_map(|&len| {
            let capabilities = self.prefixes.get(path.get(..len)?)?;
            let rank = Rank {
                first_wildcard: len,
                no_glob: false,
                fewer_plus: Reverse(0),
                // The pattern's length, `*` included, as for `+` rules.
                len: len + 1,
            };
            Some((rank, *capabilities))
        });
        let mut segment = None;
        self.segments.walk(Some(path), &mut segment);
        // A glob and a segment rule never tie on rank (the latter has a `+`).
        match (glob, segment) {
            (Some((rank, capabilities)), Some(rule)) if rank > rule.rank => Some(capabilities),
            (_, Some(rule)) => Some(rule.capabilities),
            (glob, None) => glob.map(|(_, capabilities)| capabilities),
        }
    }
}

impl SegmentNode {
    fn insert(&mut self, pattern: &str, capabilities: Capabilities) {
        let body = pattern.strip_suffix('*').unwrap_or(pattern);
        let glob = body.len() < pattern.len();
        let parts: Vec<&str> = body.split('/').collect();
        // Where the first `+` starts; it comes before any trailing `*`.
        let first_wildcard = parts
            .iter()
            .take_while(|part| **part != "+")
            .map(|part| part.len() + 1)
            .sum();
        let rule = SegmentRule {
            pattern: pattern.into(),
            rank: Rank {
                first_wildcard,
                no_glob: !glob,
                fewer_plus: Reverse(parts.iter().filter(|p| **p == "+").count()),
                len: pattern.len(),
            },
            capabilities,
        };
        let (walked, last) = match (glob, parts.split_last()) {
            (true, Some((last, walked))) => (walked, Some(*last)),
            _ => (&parts[..], None),
        };
        let mut node = self;
        for part in walked {
            node = if *part == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.literal.entry((*part).into()).or_default()
            };
        }
        match last {
            Some(last) => node.globs.push((last.into(), rule)),
            None => node.end = Some(rule),
        }
    }

    /// Offers `best` every rule matching `rest` (the path from this node's
    /// depth on; `None` once every segment is used).
    fn walk<'a>(&'a self, rest: Option<&str>, best: &mut Option<&'a SegmentRule>) {
        let Some(rest) = rest else {
            if let Some(rule) = &self.end {
                offer(best, rule);
            }
            return;
        };
        let (segment, next) = match rest.split_once('/') {
            Some((segment, next)) => (segment, Some(next)),
            None => (rest, None),
        };
        for (prefix, rule) in &self.globs {
            if segment.starts_with(&**prefix) {
                offer(best, rule);
            }
        }
        if let Some(child) = self.literal.get(segment) {
            child.walk(next, best);
        }
        if let Some(plus) = &self.plus {
            plus.walk(next, best);
        }
    }
}

/// Keeps the more specific of `best` and `rule`; equal ranks go to the
/// lexically greater pattern.
fn offer<'a>(best: &mut Option<&'a SegmentRule>, rule: &'a SegmentRule) {
    let better = best.is_none_or(|b| (rule.rank, &rule.pattern) > (b.rank, &b.pattern));
    if better {
        *best = Some(rule);
    }
}
