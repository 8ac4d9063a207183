//! Statement templates: `{{name}}`-style placeholders rendered with the
//! quoting their position in the statement needs, for each SQL dialect.
//!
//! Operators write Vault-style statements such as
//! `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}';`. A value is
//! never pasted in as it is: the renderer lexes the statement, knows whether
//! each placeholder stands inside an identifier (`"…"`, `` `…` ``), a string
//! literal (`'…'`, `E'…'`) or bare SQL, and escapes the value for exactly
//! that place. A bare placeholder becomes a fully quoted identifier or
//! literal. Values that cannot be made safe are refused with a
//! [`TemplateError`]: a NUL byte anywhere, any placeholder inside a comment,
//! and a `$` inside a PostgreSQL dollar-quoted body.
//!
//! ```
//! use broker_plugin_sdk::template::{Template, Vars};
//! use broker_plugin_sdk::sql::Dialect;
//!
//! let vars = Vars::new().identifier("name", "o\"brien").literal("password", "it's");
//! let sql = Template::new(r#"CREATE ROLE "{{name}}" PASSWORD '{{password}}'"#)
//!     .render(Dialect::Postgres, &vars)
//!     .unwrap();
//! assert_eq!(sql, r#"CREATE ROLE "o""brien" PASSWORD 'it''s'"#);
//! ```

use std::fmt;

use crate::sql::Dialect;

/// How a value is quoted where it stands bare in a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A name: `"…"` on PostgreSQL, `` `…` `` on MySQL.
    Identifier,
    /// A string: `'…'`.
    Literal,
}

/// The values a template may refer to, by placeholder name.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    entries: Vec<(String, Kind, String)>,
}

impl Vars {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value that is a name (a role or user name).
    pub fn identifier(mut self, name: &str, value: &str) -> Self {
        self.entries
            .push((name.to_owned(), Kind::Identifier, value.to_owned()));
        self
    }

    /// Adds a value that is a string (a password, a timestamp).
    pub fn literal(mut self, name: &str, value: &str) -> Self {
        self.entries
            .push((name.to_owned(), Kind::Literal, value.to_owned()));
        self
    }

    fn get(&self, name: &str) -> Option<(Kind, &str)> {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, k, v)| (*k, v.as_str()))
    }
}

/// Why a template could not be rendered. Messages name the placeholder,
/// never its value (which may be a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` with no `}}` after it.
    Unclosed {
        /// Byte offset of the `{{`.
        offset: usize,
    },
    /// A placeholder the plugin offers no value for.
    Unknown(String),
    /// A value holds a NUL byte, which no SQL string or name can hold.
    Nul(String),
    /// A placeholder stands inside a comment, where no quoting is possible.
    InComment(String),
    /// A value holds `$`, a quote or a backslash inside a PostgreSQL
    /// dollar-quoted body, where it could close the body early or break out
    /// of dynamic SQL.
    DollarInDollarQuote(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unclosed { offset } => write!(
                f,
                "statement has '{{{{' at byte {offset} with no closing '}}}}'"
            ),
            Self::Unknown(n) => write!(f, "statement uses unknown placeholder '{{{{{n}}}}}'"),
            Self::Nul(n) => write!(f, "value for '{{{{{n}}}}}' contains a NUL byte"),
            Self::InComment(n) => {
                write!(f, "placeholder '{{{{{n}}}}}' stands inside an SQL comment")
            }
            Self::DollarInDollarQuote(n) => write!(
                f,
                "value for '{{{{{n}}}}}' contains a quote, a backslash or '$' and stands inside a dollar-quoted body"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A statement with `{{placeholder}}`s.
#[derive(Debug, Clone, Copy)]
pub struct Template<'a> {
    text: &'a str,
}

/// Where the lexer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Context {
    /// Plain SQL.
    Code,
    /// A string literal closed by `quote`; `backslash` when `\` escapes.
    Str {
        quote: char,
        backslash: bool,
    },
    /// A quoted identifier closed by `quote`; `backslash` for PostgreSQL's `U&"…"`.
    Ident {
        quote: char,
        backslash: bool,
    },
    LineComment,
    BlockComment {
        depth: u32,
    },
    /// A PostgreSQL dollar-quoted body, closed by `$tag$`. Its inside is lexed
    /// as SQL too, since it is usually PL/pgSQL.
    Dollar {
        tag: String,
    },
}

impl<'a> Template<'a> {
    /// A template over `text`.
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// Renders the statement for `dialect` with `vars`.
    pub fn render(&self, dialect: Dialect, vars: &Vars) -> Result<String, TemplateError> {
        Renderer {
            dialect,
            vars,
            out: String::with_capacity(self.text.len() + 64),
            stack: vec![Context::Code],
        }
        .run(self.text)
    }
}

struct Renderer<'v> {
    dialect: Dialect,
    vars: &'v Vars,
    out: String,
    stack: Vec<Context>,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl Renderer<'_> {
    fn top(&self) -> &Context {
        // The stack always holds `Code` at the bottom: pops never remove it.
        self.stack.last().unwrap_or(&Context::Code)
    }

    fn in_dollar(&self) -> Option<&str> {
        self.stack.iter().rev().find_map(|c| match c {
            Context::Dollar { tag } => Some(tag.as_str()),
            _ => None,
        })
    }

    fn prev_char(&self, back: usize) -> Option<char> {
        self.out.chars().rev().nth(back)
    }

    fn run(mut self, text: &str) -> Result<String, TemplateError> {
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if let Some(after) = rest.strip_prefix("{{") {
                let close = after
                    .find("}}")
                    .ok_or(TemplateError::Unclosed { offset: i })?;
                let name = after[..close].trim();
                self.placeholder(name)?;
                i += 2 + close + 2;
                continue;
            }
            // A dollar-quoted body ends at the first `$tag$`, whatever the
            // lexer thinks of its inside.
            if let Some(tag) = self.in_dollar() {
                let closing = format!("${tag}$");
                if rest.starts_with(&closing) {
                    // Unwind whatever the body left open, then the body itself.
                    while let Some(ctx) = self.stack.pop() {
                        if matches!(ctx, Context::Dollar { .. }) {
                            break;
                        }
                    }
                    self.out.push_str(&closing);
                    i += closing.len();
                    continue;
                }
            }
            let Some(c) = rest.chars().next() else { break };
            let consumed = self.step(c, rest);
            i += consumed;
        }
        Ok(self.out)
    }

    /// Handles the character `c` at the start of `rest`; returns the bytes consumed.
    fn step(&mut self, c: char, rest: &str) -> usize {
        let next = rest[c.len_utf8()..].chars().next();
        let top = self.top().clone();
        match top {
            Context::Code | Context::Dollar { .. } => self.step_code(c, next, rest),
            Context::Str { quote, backslash } | Context::Ident { quote, backslash } => {
                if backslash && c == '\\' {
                    self.out.push(c);
                    if let Some(n) = next {
                        self.out.push(n);
                        return c.len_utf8() + n.len_utf8();
                    }
                    return c.len_utf8();
                }
                if c == quote {
                    if next == Some(quote) {
                        self.out.push(c);
                        self.out.push(c);
                        return 2 * c.len_utf8();
                    }
                    self.stack.pop();
                }
                self.out.push(c);
                c.len_utf8()
            }
            Context::LineComment => {
                if c == '\n' {
                    self.stack.pop();
                }
                self.out.push(c);
                c.len_utf8()
            }
            Context::BlockComment { depth } => {
                if rest.starts_with("*/") {
                    self.stack.pop();
                    if depth > 1 {
                        self.stack.push(Context::BlockComment { depth: depth - 1 });
                    }
                    self.out.push_str("*/");
                    return 2;
                }
                if rest.starts_with("/*") && self.dialect == Dialect::Postgres {
                    self.stack.pop();
                    self.stack.push(Context::BlockComment { depth: depth + 1 });
                    self.out.push_str("/*");
                    return 2;
                }
                self.out.push(c);
                c.len_utf8()
            }
        }
    }

    fn step_code(&mut self, c: char, next: Option<char>, rest: &str) -> usize {
        let pg = self.dialect == Dialect::Postgres;
        let prefix_escape = |r: &Self| {
            // E'…' (and U&'…') on PostgreSQL: a one-letter prefix not part of a longer word.
            let p0 = r.prev_char(0);
            let p1 = r.prev_char(1);
            match (p0, p1) {
                (Some('E' | 'e'), p1) => !p1.is_some_and(is_ident_char),
                (Some('&'), Some('U' | 'u')) => !r.prev_char(2).is_some_and(is_ident_char),
                _ => false,
            }
        };
        let context = match c {
            '\'' => Some(Context::Str {
                quote: '\'',
                backslash: !pg || prefix_escape(self),
            }),
            '"' if pg => Some(Context::Ident {
                quote: '"',
                backslash: prefix_escape(self),
            }),
            '"' => Some(Context::Str {
                quote: '"',
                backslash: true,
            }),
            '`' if !pg => Some(Context::Ident {
                quote: '`',
                backslash: false,
            }),
            '#' if !pg => Some(Context::LineComment),
            '-' if next == Some('-') => {
                // MySQL needs whitespace after `--` for a comment.
                let third = rest[2..].chars().next();
                if pg || third.is_none_or(|t| t.is_whitespace() || t.is_control()) {
                    Some(Context::LineComment)
                } else {
                    None
                }
            }
            '/' if next == Some('*') => {
                self.stack.push(Context::BlockComment { depth: 1 });
                self.out.push_str("/*");
                return 2;
            }
            '$' if pg && !self.prev_char(0).is_some_and(is_ident_char) => {
                // `$tag$` opens a dollar-quoted body; `$1` is a parameter.
                let body = &rest[1..];
                let end = body.find('$');
                match end {
                    Some(end)
                        if body[..end]
                            .chars()
                            .all(|ch| ch.is_alphanumeric() || ch == '_')
                            && !body[..end].starts_with(|ch: char| ch.is_ascii_digit()) =>
                    {
                        let tag = body[..end].to_owned();
                        let opener = format!("${tag}$");
                        self.stack.push(Context::Dollar { tag });
                        self.out.push_str(&opener);
                        return opener.len();
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(ctx) = context {
            self.stack.push(ctx);
        }
        self.out.push(c);
        c.len_utf8()
    }

    fn placeholder(&mut self, name: &str) -> Result<(), TemplateError> {
        let (kind, value) = self
            .vars
            .get(name)
            .ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
        if value.contains('\0') {
            return Err(TemplateError::Nul(name.to_owned()));
        }
        // A dollar-quoted body is usually PL/pgSQL whose strings are run as
        // SQL again (EXECUTE '…'): one level of quoting is not enough there,
        // so values holding any quoting character are refused outright.
        if self.in_dollar().is_some() && value.contains(['$', '\'', '"', '\\']) {
            return Err(TemplateError::DollarInDollarQuote(name.to_owned()));
        }
        let pg = self.dialect == Dialect::Postgres;
        match self.top().clone() {
            Context::LineComment | Context::BlockComment { .. } => {
                return Err(TemplateError::InComment(name.to_owned()));
            }
            Context::Str { quote, backslash } | Context::Ident { quote, backslash } => {
                escape_into(&mut self.out, value, quote, backslash);
            }
            Context::Code | Context::Dollar { .. } => match (kind, pg) {
                (Kind::Identifier, true) => quoted(&mut self.out, value, '"', false),
                (Kind::Identifier, false) => quoted(&mut self.out, value, '`', false),
                (Kind::Literal, true) => quoted(&mut self.out, value, '\'', false),
                (Kind::Literal, false) => quoted(&mut self.out, value, '\'', true),
            },
        }
        Ok(())
    }
}

fn escape_into(out: &mut String, value: &str, quote: char, backslash: bool) {
    for ch in value.chars() {
        if ch == quote || (backslash && ch == '\\') {
            out.push(ch);
        }
        out.push(ch);
    }
}

fn quoted(out: &mut String, value: &str, quote: char, backslash: bool) {
    out.push(quote);
    escape_into(out, value, quote, backslash);
    out.push(quote);
}

/// `value` as a quoted identifier for `dialect`. Fails on NUL.
pub fn quote_identifier(dialect: Dialect, value: &str) -> Result<String, TemplateError> {
    Template::new("{{v}}").render(dialect, &Vars::new().identifier("v", value))
}

/// `value` as a quoted string literal for `dialect`. Fails on NUL.
pub fn quote_literal(dialect: Dialect, value: &str) -> Result<String, TemplateError> {
    Template::new("{{v}}").render(dialect, &Vars::new().literal("v", value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a'b\"c`d\\e;f-- g/*h*/$i$";

    fn vars() -> Vars {
        Vars::new()
            .identifier("name", HOSTILE)
            .literal("password", HOSTILE)
            .literal("expiration", "2030-01-01")
    }

    fn pg(t: &str) -> Result<String, TemplateError> {
        Template::new(t).render(Dialect::Postgres, &vars())
    }

    fn my(t: &str) -> Result<String, TemplateError> {
        Template::new(t).render(Dialect::MySql, &vars())
    }

    #[test]
    fn postgres_quotes_by_context() {
        assert_eq!(
            pg(r#"CREATE ROLE "{{name}}" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#)
                .unwrap(),
            r#"CREATE ROLE "a'b""c`d\e;f-- g/*h*/$i$" PASSWORD 'a''b"c`d\e;f-- g/*h*/$i$' VALID UNTIL '2030-01-01';"#
        );
        // Bare placeholders become whole quoted tokens.
        assert_eq!(
            pg("DROP ROLE {{name}}; SELECT {{password}}").unwrap(),
            r#"DROP ROLE "a'b""c`d\e;f-- g/*h*/$i$"; SELECT 'a''b"c`d\e;f-- g/*h*/$i$'"#
        );
        // Escape strings double backslashes too.
        assert_eq!(
            pg("SELECT E'{{password}}'").unwrap(),
            r#"SELECT E'a''b"c`d\\e;f-- g/*h*/$i$'"#
        );
        // A word ending in E is not an escape-string prefix.
        assert_eq!(
            pg("SELECT 'x' AS TYPE'{{expiration}}'").unwrap(),
            "SELECT 'x' AS TYPE'2030-01-01'"
        );
    }

    #[test]
    fn mysql_quotes_by_context() {
        assert_eq!(
            my("CREATE USER '{{name}}'@'%' IDENTIFIED BY \"{{password}}\";").unwrap(),
            r#"CREATE USER 'a''b"c`d\\e;f-- g/*h*/$i$'@'%' IDENTIFIED BY "a'b""c`d\\e;f-- g/*h*/$i$";"#
        );
        assert_eq!(
            my("GRANT SELECT ON db.* TO `{{name}}`").unwrap(),
            r#"GRANT SELECT ON db.* TO `a'b"c``d\e;f-- g/*h*/$i$`"#
        );
        assert_eq!(
            my("DROP USER {{name}}").unwrap(),
            r#"DROP USER `a'b"c``d\e;f-- g/*h*/$i$`"#
        );
        assert_eq!(
            my("SELECT {{password}}").unwrap(),
            r#"SELECT 'a''b"c`d\\e;f-- g/*h*/$i$'"#
        );
    }

    #[test]
    fn quotes_in_the_template_itself_are_tracked() {
        // The `'` inside the identifier does not open a string.
        assert_eq!(
            pg(r#"SELECT "it's", '{{expiration}}'"#).unwrap(),
            r#"SELECT "it's", '2030-01-01'"#
        );
        // A doubled quote does not close the string.
        assert_eq!(
            pg("SELECT 'it''s {{password}}'").unwrap(),
            r#"SELECT 'it''s a''b"c`d\e;f-- g/*h*/$i$'"#
        );
        // MySQL: a backslash-escaped quote does not close the string.
        assert_eq!(
            my(r"SELECT 'x\' {{expiration}}'").unwrap(),
            r"SELECT 'x\' 2030-01-01'"
        );
    }

    #[test]
    fn dollar_quoted_bodies_are_lexed_and_guarded() {
        let t = r#"DO $$BEGIN EXECUTE 'DROP ROLE "{{name}}"'; END$$"#;
        assert_eq!(
            pg(t),
            Err(TemplateError::DollarInDollarQuote("name".into()))
        );
        let quote = Vars::new().identifier("name", "o'x");
        assert!(Template::new(t).render(Dialect::Postgres, &quote).is_err());
        let safe = Vars::new().identifier("name", "v-app;x");
        assert_eq!(
            Template::new(t).render(Dialect::Postgres, &safe).unwrap(),
            r#"DO $$BEGIN EXECUTE 'DROP ROLE "v-app;x"'; END$$"#
        );
        // After the body closes, `$` is allowed again; `$1` is a parameter.
        assert_eq!(
            pg("DO $f$ SELECT 1 $f$; SELECT $1, '{{password}}'").unwrap(),
            r#"DO $f$ SELECT 1 $f$; SELECT $1, 'a''b"c`d\e;f-- g/*h*/$i$'"#
        );
    }

    #[test]
    fn comments_and_nul_are_refused() {
        assert_eq!(
            pg("SELECT 1 -- {{name}}"),
            Err(TemplateError::InComment("name".into()))
        );
        assert_eq!(
            pg("SELECT 1 /* a /* b */ {{name}} */"),
            Err(TemplateError::InComment("name".into()))
        );
        assert_eq!(
            my("SELECT 1 # {{name}}"),
            Err(TemplateError::InComment("name".into()))
        );
        // MySQL needs a space after `--`.
        assert!(my("SELECT 1--{{expiration}}").is_ok());
        let nul = Vars::new().identifier("name", "a\0b");
        assert_eq!(
            Template::new("{{name}}").render(Dialect::MySql, &nul),
            Err(TemplateError::Nul("name".into()))
        );
        // The comment ends at the line's end.
        assert!(pg("SELECT 1 -- note\nDROP ROLE {{name}}").is_ok());
    }

    #[test]
    fn unknown_and_unclosed_placeholders() {
        assert_eq!(
            pg("SELECT {{nope}}"),
            Err(TemplateError::Unknown("nope".into()))
        );
        assert_eq!(
            pg("SELECT {{ name "),
            Err(TemplateError::Unclosed { offset: 7 })
        );
        // Whitespace inside braces is fine, and values are never re-expanded.
        let v = Vars::new()
            .literal("password", "{{name}}")
            .identifier("name", "n");
        assert_eq!(
            Template::new("'{{ password }}'")
                .render(Dialect::Postgres, &v)
                .unwrap(),
            "'{{name}}'"
        );
    }

    #[test]
    fn error_messages_never_hold_values() {
        let secret = "hunter2\0";
        let v = Vars::new().literal("password", secret);
        let e = Template::new("'{{password}}'")
            .render(Dialect::Postgres, &v)
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
