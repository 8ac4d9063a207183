//! What a policy rule grants on a path: Vault's capabilities, as a small set.

use std::fmt;

/// One capability a policy rule can grant (or, for `deny`, take away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Overrides every other capability on the path, in every policy.
    Deny,
    /// Write where nothing is yet (POST/PUT to a new item).
    Create,
    /// Read (GET).
    Read,
    /// Write over what is there (POST/PUT).
    Update,
    /// Partial write (PATCH).
    Patch,
    /// DELETE.
    Delete,
    /// LIST (or GET with `?list=true`).
    List,
    /// Root-protected paths (`sys/audit`, `sys/leases/revoke-force`, …)
    /// also need this.
    Sudo,
}

impl Capability {
    /// Every capability, in Vault's documentation order.
    pub const ALL: [Capability; 8] = [
        Self::Deny,
        Self::Create,
        Self::Read,
        Self::Update,
        Self::Patch,
        Self::Delete,
        Self::List,
        Self::Sudo,
    ];

    /// Its name in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Sudo => "sudo",
        }
    }

    /// The capability a policy names, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities. A set holding [`Capability::Deny`] allows
/// nothing, whatever else it holds: see [`Capabilities::allows`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    /// The empty set: what a path no rule matches gets.
    pub const NONE: Self = Self(0);

    /// Every capability but `deny`: what the `root` policy grants.
    pub const ROOT: Self = Self(
        Capability::Create.bit()
            | Capability::Read.bit()
            | Capability::Update.bit()
            | Capability::Patch.bit()
            | Capability::Delete.bit()
            | Capability::List.bit()
            | Capability::Sudo.bit(),
    );

    /// Whether the set names `capability` (as written, `deny` included).
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether the set lets a request that needs `capability` through:
    /// it names it, and does not name `deny`.
    pub fn allows(self, capability: Capability) -> bool {
        !self.contains(Capability::Deny) && self.contains(capability)
    }

    /// Adds `capability`.
    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    /// The union of two sets: how rules for the same path in several
    /// policies combine. `deny` in either survives, and wins.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The capabilities in effect: `[deny]` alone when the set denies or
    /// is empty. (For tests: what a request may do is [`Self::allows`].)
    #[cfg(test)]
    pub(crate) fn effective(self) -> Vec<Capability> {
        if self.contains(Capability::Deny) || self.0 == 0 {
            return vec![Capability::Deny];
        }
        Capability::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .collect()
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Self::NONE;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(Capability::ALL.into_iter().filter(|c| self.contains(*c)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_over_everything_it_is_combined_with() {
        let granted: Capabilities = [Capability::Read, Capability::List].into_iter().collect();
        assert!(granted.allows(Capability::Read));
        assert!(!granted.allows(Capability::Update));
        let denied = granted.union([Capability::Deny].into_iter().collect());
        assert!(!denied.allows(Capability::Read));
        assert_eq!(denied.effective(), vec![Capability::Deny]);
        assert_eq!(Capabilities::NONE.effective(), vec![Capability::Deny]);
    }

    #[test]
    fn names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.as_str()), Some(c));
        }
        assert_eq!(Capability::parse("root"), None);
        assert_eq!(Capability::parse("Read"), None);
    }
}
