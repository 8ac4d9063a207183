//! Usernames from a template, cut to the database's limit.
//!
//! The template language is small and Vault-like:
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{display_name}}` (or `{{.DisplayName}}`) | the requesting token's display name |
//! | `{{role_name}}` (or `{{.RoleName}}`) | the role's name |
//! | `{{random N}}` | N random letters and digits |
//! | `{{unix_time}}` | seconds since the Unix epoch |
//!
//! Any placeholder takes `| truncate N` to keep its first N characters, so
//! `v-{{display_name | truncate 8}}-{{role_name | truncate 8}}-{{random 20}}-{{unix_time}}`
//! is PostgreSQL's default. The result is then cut to the database's
//! [`Limit`]; put the random part early enough to survive that cut.
//!
//! Names are not sanitised: statements quote them (see [`crate::template`]).

use std::fmt;

/// The longest username a database accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// At most this many characters.
    pub max_chars: usize,
    /// At most this many bytes of UTF-8.
    pub max_bytes: usize,
}

/// The inputs of a username template.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The requesting token's display name.
    pub display_name: &'a str,
    /// The role's name.
    pub role_name: &'a str,
    /// Seconds since the Unix epoch.
    pub unix_time: u64,
}

/// Why a username template is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameTemplateError(String);

impl fmt::Display for UsernameTemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid username template: {}", self.0)
    }
}

impl std::error::Error for UsernameTemplateError {}

impl From<UsernameTemplateError> for crate::Error {
    fn from(e: UsernameTemplateError) -> Self {
        crate::Error::InvalidRequest(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    DisplayName,
    RoleName,
    Random(usize),
    UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field {
        source: Source,
        truncate: Option<usize>,
    },
}

/// A parsed username template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameTemplate {
    parts: Vec<Part>,
}

const RANDOM_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

impl UsernameTemplate {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Self, UsernameTemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| UsernameTemplateError("'{{' with no closing '}}'".into()))?;
            parts.push(parse_field(after[..close].trim())?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Renders a username, drawing random characters from `fill_random`,
    /// then cuts it to `limit`.
    pub fn render_with(
        &self,
        inputs: &Inputs<'_>,
        limit: Limit,
        mut fill_random: impl FnMut(&mut [u8]),
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field { source, truncate } => {
                    let value = match source {
                        Source::DisplayName => inputs.display_name.to_owned(),
                        Source::RoleName => inputs.role_name.to_owned(),
                        Source::UnixTime => inputs.unix_time.to_string(),
                        Source::Random(n) => random_chars(*n, &mut fill_random),
                    };
                    let cut = truncate.unwrap_or(usize::MAX);
                    out.extend(value.chars().take(cut));
                }
            }
        }
        cut_to(&out, limit)
    }

    /// Renders a username with the host's randomness and clock inputs.
    pub fn render(&self, inputs: &Inputs<'_>, limit: Limit) -> String {
        self.render_with(inputs, limit, crate::host::fill_random)
    }
}

fn parse_field(expr: &str) -> Result<Part, UsernameTemplateError> {
    let mut pipeline = expr.split('|').map(str::trim);
    let head = pipeline.next().unwrap_or_default();
    let mut words = head.split_whitespace();
    let source = match (words.next(), words.next(), words.next()) {
        (Some("display_name" | ".DisplayName"), None, None) => Source::DisplayName,
        (Some("role_name" | ".RoleName"), None, None) => Source::RoleName,
        (Some("unix_time"), None, None) => Source::UnixTime,
        (Some("random"), Some(n), None) => match n.parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => Source::Random(n),
            _ => {
                return Err(UsernameTemplateError(format!(
                    "'random {n}' needs a count from 1 to 64"
                )));
            }
        },
        _ => {
            return Err(UsernameTemplateError(format!(
                "unknown placeholder '{{{{{head}}}}}'"
            )));
        }
    };
    let mut truncate = None;
    for filter in pipeline {
        let mut words = filter.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("truncate"), Some(n), None) => match n.parse::<usize>() {
                Ok(n) => truncate = Some(n),
                Err(_) => {
                    return Err(UsernameTemplateError(format!(
                        "'truncate {n}' needs a number"
                    )));
                }
            },
            _ => return Err(UsernameTemplateError(format!("unknown filter '{filter}'"))),
        }
    }
    Ok(Part::Field { source, truncate })
}

fn random_chars(n: usize, fill_random: &mut impl FnMut(&mut [u8])) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    // Rejection sampling keeps the draw uniform over the alphabet.
    let bound = 256 - 256 % RANDOM_ALPHABET.len();
    while out.len() < n {
        fill_random(&mut buf);
        for b in buf {
            if (b as usize) < bound && out.len() < n {
                out.push(RANDOM_ALPHABET[b as usize % RANDOM_ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// `s` cut to at most `limit.max_chars` characters and `limit.max_bytes`
/// bytes, on a character boundary.
pub fn cut_to(s: &str, limit: Limit) -> String {
    let mut out = String::new();
    for (count, ch) in s.chars().enumerate() {
        if count >= limit.max_chars || out.len() + ch.len_utf8() > limit.max_bytes {
            break;
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut next = 0u8;
        move |buf: &mut [u8]| {
            for b in buf {
                *b = next;
                next = next.wrapping_add(1);
            }
        }
    }

    const PG: Limit = Limit {
        max_chars: 63,
        max_bytes: 63,
    };

    #[test]
    fn renders_vault_default_shape() {
        let t = UsernameTemplate::parse(
            "v-{{display_name | truncate 8}}-{{role_name | truncate 8}}-{{random 20}}-{{unix_time}}",
        )
        .unwrap();
        let inputs = Inputs {
            display_name: "token-ci-pipeline",
            role_name: "readonly-role",
            unix_time: 1_700_000_000,
        };
        let name = t.render_with(&inputs, PG, counter());
        assert_eq!(name, "v-token-ci-readonly-abcdefghijklmnopqrst-1700000000");
    }

    #[test]
    fn accepts_vault_field_names() {
        let t = UsernameTemplate::parse("{{.DisplayName}}_{{.RoleName}}").unwrap();
        let inputs = Inputs {
            display_name: "d",
            role_name: "r",
            unix_time: 0,
        };
        assert_eq!(t.render_with(&inputs, PG, counter()), "d_r");
    }

    #[test]
    fn cuts_to_bytes_on_char_boundary() {
        let t = UsernameTemplate::parse("{{role_name}}").unwrap();
        let role = "é".repeat(40); // 80 bytes
        let inputs = Inputs {
            display_name: "",
            role_name: &role,
            unix_time: 0,
        };
        let name = t.render_with(&inputs, PG, counter());
        assert_eq!(name.len(), 62);
        assert_eq!(name.chars().count(), 31);
        let mysql = Limit {
            max_chars: 32,
            max_bytes: 128,
        };
        let long = "x".repeat(100);
        let inputs = Inputs {
            display_name: "",
            role_name: &long,
            unix_time: 0,
        };
        assert_eq!(t.render_with(&inputs, mysql, counter()).chars().count(), 32);
    }

    #[test]
    fn random_is_uniform_alphabet_only() {
        let t = UsernameTemplate::parse("{{random 64}}").unwrap();
        let inputs = Inputs {
            display_name: "",
            role_name: "",
            unix_time: 0,
        };
        let name = t.render_with(
            &inputs,
            Limit {
                max_chars: 64,
                max_bytes: 64,
            },
            counter(),
        );
        assert_eq!(name.len(), 64);
        assert!(name.bytes().all(|b| RANDOM_ALPHABET.contains(&b)));
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "{{nope}}",
            "{{random}}",
            "{{random 0}}",
            "{{role_name | upper}}",
            "{{role_name",
            "{{role_name | truncate x}}",
        ] {
            assert!(
                UsernameTemplate::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }
}
