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
    /// A SCRAM verifier: a string, see [`Vars::scram_verifier`].
    Verifier,
}

/// The values a template may refer to, by placeholder name. `Debug` shows
/// names only: values are often passwords.
#[derive(Clone, Default)]
pub struct Vars {
    entries: Vec<(String, Kind, String)>,
}

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(name, kind, _)| (name, kind)))
            .finish()
    }
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

    /// Adds a PostgreSQL SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:
    /// <salt>$<StoredKey>:<ServerKey>`, base64) standing for a password. It
    /// is the one value that may hold `$` on PostgreSQL, in a string
    /// literal (or bare, quoted as one) outside any dollar-quoted body
    /// only: each of its `$` is
    /// followed by a digit or stands between base64 runs, so it can neither
    /// open nor close a body. Anything not of that exact form is refused
    /// when rendered, as any other value with `$` is.
    pub fn scram_verifier(mut self, name: &str, value: &str) -> Self {
        self.entries
            .push((name.to_owned(), Kind::Verifier, value.to_owned()));
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
    /// A value holds `$` on PostgreSQL, where it could open or close a
    /// dollar-quoted body.
    Dollar(String),
    /// A value inside a PostgreSQL dollar-quoted body holds something other
    /// than letters, digits, `_`, `.` and `-`; such bodies are usually
    /// PL/pgSQL that runs strings as SQL again.
    UnsafeInDollarBody(String),
    /// The statement ends inside a quoted string, a quoted name, a block
    /// comment or a dollar-quoted body.
    Unterminated,
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
            Self::Dollar(n) => write!(
                f,
                "value for '{{{{{n}}}}}' contains '$', which PostgreSQL statements cannot hold safely"
            ),
            Self::UnsafeInDollarBody(n) => write!(
                f,
                "value for '{{{{{n}}}}}' stands inside a dollar-quoted body and holds characters other than letters, digits, '_', '.' and '-'"
            ),
            Self::Unterminated => f.write_str(
                "statement ends inside a quoted string, quoted name, comment or dollar-quoted body",
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
    /// A string literal closed by `quote`. `pairs`: a backslash escapes the
    /// next character (MySQL strings, PostgreSQL `E'…'`). `double_backslash`:
    /// a backslash in a value must be doubled (those, and PostgreSQL `U&'…'`,
    /// where it starts a Unicode escape but never escapes the quote).
    Str {
        quote: char,
        pairs: bool,
        double_backslash: bool,
    },
    /// A quoted identifier closed by `quote`; `double_backslash` for `U&"…"`.
    Ident {
        quote: char,
        double_backslash: bool,
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

/// A character that may continue an identifier (PostgreSQL treats every
/// non-ASCII character as a letter).
fn is_ident_cont(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// A character that may start an identifier.
fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
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

    /// Whether the output ends with an identifier (not a number): then `$`
    /// continues it instead of opening a dollar-quoted body.
    fn ends_with_identifier(&self) -> bool {
        let run: Vec<char> = self
            .out
            .chars()
            .rev()
            .take_while(|&c| is_ident_cont(c))
            .collect();
        run.last().is_some_and(|&first| is_ident_start(first))
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
        // A template that ends inside a quote, comment or body is one the
        // lexer may have misread: refuse it rather than guess.
        match self.stack.as_slice() {
            [Context::Code] | [Context::Code, Context::LineComment] => Ok(self.out),
            _ => Err(TemplateError::Unterminated),
        }
    }

    /// Handles the character `c` at the start of `rest`; returns the bytes consumed.
    fn step(&mut self, c: char, rest: &str) -> usize {
        let next = rest[c.len_utf8()..].chars().next();
        let top = self.top().clone();
        match top {
            Context::Code | Context::Dollar { .. } => self.step_code(c, next, rest),
            Context::Str { .. } | Context::Ident { .. } => {
                let (quote, pairs) = match top {
                    Context::Str { quote, pairs, .. } => (quote, pairs),
                    Context::Ident { quote, .. } => (quote, false),
                    _ => return 0,
                };
                // Never pair with `$`: it may close an enclosing dollar body.
                if pairs
                    && c == '\\'
                    && let Some(n) = next.filter(|&n| n != '$')
                {
                    self.out.push(c);
                    self.out.push(n);
                    return c.len_utf8() + n.len_utf8();
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
        // E'…' and U&'…' / U&"…" on PostgreSQL: a prefix that is not the end of a longer word.
        let e_prefix = matches!(self.prev_char(0), Some('E' | 'e'))
            && !self.prev_char(1).is_some_and(is_ident_cont);
        let u_prefix = self.prev_char(0) == Some('&')
            && matches!(self.prev_char(1), Some('U' | 'u'))
            && !self.prev_char(2).is_some_and(is_ident_cont);
        let context = match c {
            '\'' if pg => Some(Context::Str {
                quote: '\'',
                pairs: e_prefix,
                double_backslash: e_prefix || u_prefix,
            }),
            '\'' | '"' if !pg => Some(Context::Str {
                quote: c,
                pairs: true,
                double_backslash: true,
            }),
            '"' => Some(Context::Ident {
                quote: '"',
                double_backslash: u_prefix,
            }),
            '`' if !pg => Some(Context::Ident {
                quote: '`',
                double_backslash: false,
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
            '$' if pg && !self.ends_with_identifier() => {
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
        let pg = self.dialect == Dialect::Postgres;
        // On PostgreSQL a `$` could open or close a dollar-quoted body, whatever
        // the quoting around it: no value may hold one, bar a well-formed
        // SCRAM verifier in a string literal, or bare (where it is quoted
        // as one), outside any body.
        let verifier_in_string = kind == Kind::Verifier
            && is_scram_verifier(value)
            && self.in_dollar().is_none()
            && matches!(self.top(), Context::Str { .. } | Context::Code);
        if pg && value.contains('$') && !verifier_in_string {
            return Err(TemplateError::Dollar(name.to_owned()));
        }
        // A dollar-quoted body is usually PL/pgSQL whose strings run as SQL
        // again (EXECUTE '…'), where one level of quoting means nothing: only
        // plain name characters may go there.
        if self.in_dollar().is_some()
            && !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(TemplateError::UnsafeInDollarBody(name.to_owned()));
        }
        match self.top().clone() {
            Context::LineComment | Context::BlockComment { .. } => {
                return Err(TemplateError::InComment(name.to_owned()));
            }
            Context::Str {
                quote,
                double_backslash,
                ..
            }
            | Context::Ident {
                quote,
                double_backslash,
            } => {
                escape_into(&mut self.out, value, quote, double_backslash);
            }
            Context::Code | Context::Dollar { .. } => match () {
                // `E{{v}}` must not become an escape string, nor `U&{{v}}` a
                // Unicode one: keep a bare value apart from a word before it.
                _ if self
                    .prev_char(0)
                    .is_some_and(|c| is_ident_cont(c) || c == '&') =>
                {
                    self.out.push(' ');
                    return self.placeholder_bare(kind, value);
                }
                _ => return self.placeholder_bare(kind, value),
            },
        }
        Ok(())
    }

    fn placeholder_bare(&mut self, kind: Kind, value: &str) -> Result<(), TemplateError> {
        let pg = self.dialect == Dialect::Postgres;
        match (kind, pg) {
            (Kind::Identifier, true) => quoted(&mut self.out, value, '"', false),
            (Kind::Identifier, false) => quoted(&mut self.out, value, '`', false),
            (Kind::Literal | Kind::Verifier, true) => quoted(&mut self.out, value, '\'', false),
            (Kind::Literal | Kind::Verifier, false) => quoted(&mut self.out, value, '\'', true),
        }
        Ok(())
    }
}

/// Whether `value` is exactly `SCRAM-SHA-256$<digits>:<base64>$<base64>:<base64>`.
fn is_scram_verifier(value: &str) -> bool {
    let base64 = |s: &str| {
        !s.is_empty()
            && s.len() <= 88
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    let Some(rest) = value.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((params, keys)) = rest.split_once('$') else {
        return false;
    };
    let (Some((iterations, salt)), Some((stored, server))) =
        (params.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    !iterations.is_empty()
        && iterations.len() <= 7
        && iterations.bytes().all(|b| b.is_ascii_digit())
        && base64(salt)
        && base64(stored)
        && base64(server)
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

    /// Quotes of every kind, a backslash, a statement break and comment openers.
    const HOSTILE: &str = "a'b\"c`d\\e;f-- g/*h*/";

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

    fn pg_with(t: &str, value: &str) -> Result<String, TemplateError> {
        Template::new(t).render(Dialect::Postgres, &Vars::new().literal("v", value))
    }

    #[test]
    fn postgres_quotes_by_context() {
        assert_eq!(
            pg(r#"CREATE ROLE "{{name}}" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#)
                .unwrap(),
            r#"CREATE ROLE "a'b""c`d\e;f-- g/*h*/" PASSWORD 'a''b"c`d\e;f-- g/*h*/' VALID UNTIL '2030-01-01';"#
        );
        // Bare placeholders become whole quoted tokens.
        assert_eq!(
            pg("DROP ROLE {{name}}; SELECT {{password}}").unwrap(),
            r#"DROP ROLE "a'b""c`d\e;f-- g/*h*/"; SELECT 'a''b"c`d\e;f-- g/*h*/'"#
        );
        // Escape strings and Unicode strings double backslashes too.
        assert_eq!(
            pg("SELECT E'{{password}}'").unwrap(),
            r#"SELECT E'a''b"c`d\\e;f-- g/*h*/'"#
        );
        assert_eq!(
            pg("SELECT U&'{{password}}'").unwrap(),
            r#"SELECT U&'a''b"c`d\\e;f-- g/*h*/'"#
        );
        assert_eq!(
            pg(r#"SELECT U&"{{name}}""#).unwrap(),
            r#"SELECT U&"a'b""c`d\\e;f-- g/*h*/""#
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
            r#"CREATE USER 'a''b"c`d\\e;f-- g/*h*/'@'%' IDENTIFIED BY "a'b""c`d\\e;f-- g/*h*/";"#
        );
        assert_eq!(
            my("GRANT SELECT ON db.* TO `{{name}}`").unwrap(),
            r#"GRANT SELECT ON db.* TO `a'b"c``d\e;f-- g/*h*/`"#
        );
        assert_eq!(
            my("DROP USER {{name}}").unwrap(),
            r#"DROP USER `a'b"c``d\e;f-- g/*h*/`"#
        );
        assert_eq!(
            my("SELECT {{password}}").unwrap(),
            r#"SELECT 'a''b"c`d\\e;f-- g/*h*/'"#
        );
        // `$` means nothing to MySQL.
        let v = Vars::new().literal("v", "a$$b");
        assert_eq!(
            Template::new("SELECT '{{v}}'")
                .render(Dialect::MySql, &v)
                .unwrap(),
            "SELECT 'a$$b'"
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
            r#"SELECT 'it''s a''b"c`d\e;f-- g/*h*/'"#
        );
        // MySQL: a backslash-escaped quote does not close the string.
        assert_eq!(
            my(r"SELECT 'x\' {{expiration}}'").unwrap(),
            r"SELECT 'x\' 2030-01-01'"
        );
        // PostgreSQL: in a standard string a backslash escapes nothing.
        assert_eq!(
            pg_with(r"SELECT 'x\', {{v}}", "1").unwrap(),
            r"SELECT 'x\', '1'"
        );
    }

    #[test]
    fn prefixes_cannot_turn_a_bare_value_into_another_kind_of_string() {
        // `E{{v}}` would make an escape string whose backslashes were not doubled.
        let attack = r"\'; DROP TABLE t; --";
        assert_eq!(
            pg_with("SELECT E{{v}}", attack).unwrap(),
            r"SELECT E '\''; DROP TABLE t; --'"
        );
        assert_eq!(
            pg_with("SELECT U&{{v}}", attack).unwrap(),
            r"SELECT U& '\''; DROP TABLE t; --'"
        );
        // In U&'…' a backslash never escapes the quote.
        assert_eq!(
            pg_with(r"SELECT U&'\' UESCAPE '!'{{v}}", " AS a; DROP TABLE t; --").unwrap(),
            r"SELECT U&'\' UESCAPE '!'' AS a; DROP TABLE t; --'"
        );
    }

    #[test]
    fn a_scram_verifier_may_stand_in_a_string_and_nowhere_else() {
        let v = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk+a/Q=:c2VydmVy";
        let render = |t: &str, value: &str| {
            Template::new(t).render(
                Dialect::Postgres,
                &Vars::new().scram_verifier("password", value),
            )
        };
        assert_eq!(
            render("ALTER ROLE x PASSWORD '{{password}}'", v).unwrap(),
            format!("ALTER ROLE x PASSWORD '{v}'")
        );
        // Bare, it is quoted as a string.
        assert_eq!(
            render("ALTER ROLE x PASSWORD {{password}}", v).unwrap(),
            format!("ALTER ROLE x PASSWORD '{v}'")
        );
        // Not in a dollar-quoted body, not as a name.
        for t in [
            "DO $$BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''{{password}}'''; END$$",
            "ALTER ROLE \"{{password}}\"",
        ] {
            assert!(render(t, v).is_err(), "{t}");
        }
        // Only that exact form.
        for bad in [
            "SCRAM-SHA-256$4096:a$$b:c",
            "SCRAM-SHA-256$x:a$b:c",
            "SCRAM-SHA-256$4096:a$b'; DROP ROLE y; --:c",
            "MD5$4096:a$b:c",
            "SCRAM-SHA-256$4096:a$b",
        ] {
            assert_eq!(
                render("SELECT '{{password}}'", bad),
                Err(TemplateError::Dollar("password".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn dollar_quoted_bodies_are_lexed_and_guarded() {
        let t = r#"DO $$BEGIN EXECUTE 'DROP ROLE "{{v}}"'; END$$"#;
        // Inside a body only name characters pass: its strings run as SQL again.
        assert_eq!(
            pg_with(t, "o'x"),
            Err(TemplateError::UnsafeInDollarBody("v".into()))
        );
        assert_eq!(
            pg_with(t, "x SUPERUSER"),
            Err(TemplateError::UnsafeInDollarBody("v".into()))
        );
        assert_eq!(
            pg_with(t, "v-app_1.x").unwrap(),
            r#"DO $$BEGIN EXECUTE 'DROP ROLE "v-app_1.x"'; END$$"#
        );
        // No value may hold `$` on PostgreSQL: it could open or close a body.
        assert_eq!(
            pg_with("SELECT '{{v}}'", "a$$b"),
            Err(TemplateError::Dollar("v".into()))
        );
        // After the body closes, quoting is normal again; `$1` is a parameter.
        assert_eq!(
            pg_with("DO $f$ SELECT 1 $f$; SELECT $1, '{{v}}'", "it's").unwrap(),
            "DO $f$ SELECT 1 $f$; SELECT $1, 'it''s'"
        );
        // A backslash in an E-string inside a body cannot swallow the body's end.
        assert_eq!(
            pg_with(
                r"SELECT $$a E'\$$ AS q, '{{v}}'",
                " AS y; DROP TABLE t; SELECT "
            )
            .unwrap(),
            r"SELECT $$a E'\$$ AS q, ' AS y; DROP TABLE t; SELECT '"
        );
        // `$$` after a number opens a body (PostgreSQL agrees); after a word it does not.
        assert_eq!(
            pg_with("SELECT 1$$ {{v}} $$", "a b"),
            Err(TemplateError::UnsafeInDollarBody("v".into()))
        );
        assert_eq!(
            pg_with("SELECT é$$ {{v}}", "a b").unwrap(),
            "SELECT é$$ 'a b'"
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
        // The comment ends at the line's end, and may end the template.
        assert!(pg("SELECT 1 -- note\nDROP ROLE {{name}} -- done").is_ok());
    }

    #[test]
    fn unterminated_templates_are_refused() {
        assert_eq!(
            pg_with("SELECT '{{v}}", "x"),
            Err(TemplateError::Unterminated)
        );
        assert_eq!(
            pg_with("SELECT {{v}} /* open", "x"),
            Err(TemplateError::Unterminated)
        );
        assert_eq!(
            pg_with("DO $$ SELECT {{v}}", "x"),
            Err(TemplateError::Unterminated)
        );
        assert_eq!(
            Template::new("SELECT `{{v}}").render(Dialect::MySql, &Vars::new().literal("v", "x")),
            Err(TemplateError::Unterminated)
        );
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
    fn error_messages_and_debug_never_hold_values() {
        let secret = "hunter2\0";
        let v = Vars::new().literal("password", secret);
        let e = Template::new("'{{password}}'")
            .render(Dialect::Postgres, &v)
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(!format!("{v:?}").contains("hunter2"), "{v:?}");
    }
}
