//! Where a secret lives in a KV mount: a path of `/`-separated segments
//! (`app/db/password`), checked once when a request names it.
//!
//! A secret's path becomes a storage key, is listed as a folder and is
//! matched by policies, so it must never be able to name anything but its
//! own place: no empty segment (`a//b`), no `.` or `..`, no control
//! character, at most [`MAX_PATH_BYTES`] bytes. Everything else Vault
//! takes (spaces, `*`, `+`, any Unicode letter) is taken.

use std::fmt;

/// The longest path a secret may have, in bytes. Vault sets none; storage
/// keys and audit lines embed it, so ours is bounded.
pub const MAX_PATH_BYTES: usize = 512;

/// Why a path is refused. The path itself is not quoted back: it is
/// already in the URL the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing after the mount's `data/` (or its top, on version 1).
    #[error("path: a secret's path is required")]
    Empty,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("path: {0} bytes long; a secret's path is at most {MAX_PATH_BYTES} bytes")]
    TooLong(usize),
    /// `a//b`.
    #[error("path: it has an empty segment ('//')")]
    EmptySegment,
    /// `.` or `..` as a segment.
    #[error("path: '.' and '..' are not allowed as segments")]
    DotSegment,
    /// A control character (a newline, a NUL).
    #[error("path: control characters are not allowed")]
    Control,
}

/// A secret's path, checked: see the module's rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretPath(String);

impl SecretPath {
    /// Checks `raw` (a path parameter, without outer `/`).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        check(raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A folder to list: `""` for the mount's top, else a path checked as a
/// secret's is (a folder is named like the secrets in it).
pub fn folder(raw: &str) -> Result<&str, PathError> {
    let raw = raw.trim_matches('/');
    if raw.is_empty() {
        return Ok(raw);
    }
    check(raw)?;
    Ok(raw)
}

fn check(raw: &str) -> Result<(), PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(raw.len()));
    }
    if raw.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    for segment in raw.split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_vault_takes_are_taken() {
        for ok in [
            "a",
            "app/db/password",
            "with space/and*star+plus",
            "ünïcødé/秘密",
            "a.b/..c/.d",
            &"x".repeat(MAX_PATH_BYTES),
        ] {
            assert_eq!(SecretPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn hostile_paths_are_refused_with_their_reason() {
        assert_eq!(SecretPath::parse(""), Err(PathError::Empty));
        assert_eq!(SecretPath::parse("a//b"), Err(PathError::EmptySegment));
        assert_eq!(SecretPath::parse("/a"), Err(PathError::EmptySegment));
        assert_eq!(SecretPath::parse("a/"), Err(PathError::EmptySegment));
        assert_eq!(SecretPath::parse("a/../b"), Err(PathError::DotSegment));
        assert_eq!(SecretPath::parse(".."), Err(PathError::DotSegment));
        assert_eq!(SecretPath::parse("./a"), Err(PathError::DotSegment));
        assert_eq!(SecretPath::parse("a\nb"), Err(PathError::Control));
        assert_eq!(SecretPath::parse("a\0b"), Err(PathError::Control));
        assert_eq!(SecretPath::parse("a\u{7f}"), Err(PathError::Control));
        let long = "x".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(
            SecretPath::parse(&long),
            Err(PathError::TooLong(MAX_PATH_BYTES + 1))
        );
        // The message never quotes the path.
        let text = SecretPath::parse("secret\nname").unwrap_err().to_string();
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn a_folder_may_be_the_top() {
        assert_eq!(folder(""), Ok(""));
        assert_eq!(folder("/"), Ok(""));
        assert_eq!(folder("app/"), Ok("app"));
        assert_eq!(folder("a//b"), Err(PathError::EmptySegment));
        assert_eq!(folder("../x"), Err(PathError::DotSegment));
    }

    proptest! {
        /// Whatever is given, parsing never panics; what it accepts has only
        /// non-empty segments that are not `.` or `..`, no control
        /// character, and fits the bound.
        #[test]
        fn an_accepted_path_names_only_its_own_place(raw in "[a-z./\\n\\x00 é]{0,24}") {
            if let Ok(path) = SecretPath::parse(&raw) {
                let p = path.as_str();
                prop_assert!(p.len() <= MAX_PATH_BYTES);
                prop_assert!(!p.chars().any(char::is_control));
                for segment in p.split('/') {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                }
                prop_assert_eq!(p, raw.as_str());
            }
        }

        /// Any long input is refused by length alone, never accepted.
        #[test]
        fn long_paths_are_refused(raw in "[a-z/]{513,600}") {
            prop_assert!(SecretPath::parse(&raw).is_err());
        }
    }
}
