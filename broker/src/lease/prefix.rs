//! Lease-id prefixes as Vault reads them: whole path segments, never text.
//!
//! `database/creds/app` names role `app`'s leases (and a lease whose id is
//! exactly that), never role `app2`'s; `db` names mount `db`, never `db2`.
//! Everything that acts on leases by prefix (revoke-prefix, revoke-force,
//! listing, unmounting) goes through [`LeasePrefix`]; it must never match
//! an id whose segments merely start with the same characters.

/// A prefix of lease ids, on segment boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasePrefix {
    /// The prefix as a folder: it ends with `/`.
    folder: String,
    /// The prefix as given, when it did not end with `/`: a lease with
    /// exactly this id is named too, as in Vault.
    exact: Option<String>,
}

impl LeasePrefix {
    /// The prefix `text` (a leading `/` is ignored); `None` when it names
    /// nothing, which must not be read as "every lease".
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim_start_matches('/');
        if text.is_empty() {
            return None;
        }
        Some(if text.ends_with('/') {
            Self {
                folder: text.to_owned(),
                exact: None,
            }
        } else {
            Self {
                folder: format!("{text}/"),
                exact: Some(text.to_owned()),
            }
        })
    }

    /// The folder form, ending with `/`: ids under it start with it.
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// The id a lease would need to be named exactly.
    pub fn exact(&self) -> Option<&str> {
        self.exact.as_deref()
    }

    /// Whether the lease `id` is under this prefix.
    pub fn matches(&self, id: &str) -> bool {
        id.starts_with(&self.folder) || self.exact.as_deref() == Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::LeasePrefix;
    use proptest::prelude::*;

    #[test]
    fn whole_segments_only() {
        let app = LeasePrefix::new("database/creds/app").unwrap();
        assert!(app.matches("database/creds/app/abc"));
        assert!(!app.matches("database/creds/app2/abc"));
        assert!(!app.matches("database/creds/ap"));
        assert!(
            app.matches("database/creds/app"),
            "an exact id, as in Vault"
        );
        let slash = LeasePrefix::new("database/creds/app/").unwrap();
        assert!(slash.matches("database/creds/app/abc"));
        assert!(!slash.matches("database/creds/app"));
        assert!(!slash.matches("database/creds/app2/abc"));
        let db = LeasePrefix::new("/db").unwrap();
        assert!(db.matches("db/creds/r/x"));
        assert!(!db.matches("db2/creds/r/x"));
        assert!(!db.matches("db4b/creds/r/x"));
        assert_eq!(db.folder(), "db/");
        assert!(LeasePrefix::new("").is_none());
        assert!(LeasePrefix::new("/").is_none());
        assert!(LeasePrefix::new("//").is_none());
    }

    fn segment() -> impl Strategy<Value = String> {
        // Few letters, so that ids and prefixes often share text; `%` and
        // `_` as LIKE would read them, `.` and `-` as names use them.
        "[ab%_.-]{1,3}"
    }

    proptest! {
        /// A prefix matches an id exactly when the id's segments begin with
        /// the prefix's segments (a prefix without a trailing slash also
        /// names the id equal to it), whatever text the two share.
        #[test]
        fn matches_iff_segments_begin_the_id(
            id in prop::collection::vec(segment(), 1..5),
            prefix in prop::collection::vec(segment(), 1..4),
            slash in any::<bool>(),
        ) {
            let id_text = id.join("/");
            let mut text = prefix.join("/");
            if slash {
                text.push('/');
            }
            let p = LeasePrefix::new(&text).unwrap();
            let under = id.len() > prefix.len() && id[..prefix.len()] == prefix[..];
            let equal = !slash && id == prefix;
            prop_assert_eq!(p.matches(&id_text), under || equal, "{} vs {}", text, id_text);
        }

        /// Appending text to a segment of a matched id never keeps the match
        /// unless the segment stays under the prefix.
        #[test]
        fn a_longer_sibling_never_matches(
            prefix in prop::collection::vec(segment(), 1..4),
            extra in segment(),
            rest in prop::collection::vec(segment(), 0..3),
        ) {
            let mut sibling = prefix.clone();
            if let Some(last) = sibling.last_mut() {
                last.push_str(&extra);
            }
            sibling.extend(rest);
            let p = LeasePrefix::new(&prefix.join("/")).unwrap();
            prop_assert!(!p.matches(&sibling.join("/")));
        }
    }
}
