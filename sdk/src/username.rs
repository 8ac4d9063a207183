//! Usernames from a template, cut to the database's limit.
//!
//! The template language is Vault's (a subset of Go's `text/template`):
//! text, and actions in `{{ … }}` whose value is written in their place.
//! An action is a pipeline: a value, then functions separated by `|`,
//! each taking the value before it as its last argument, so
//! `{{.DisplayName | truncate 8}}` is `{{truncate 8 .DisplayName}}`.
//!
//! ```
//! use broker_plugin_sdk::username::{Inputs, Limit, UsernameTemplate};
//!
//! let template = UsernameTemplate::parse(
//!     r#"v-{{.RoleName | lowercase | replace "_" "-"}}-{{.DisplayName | truncate_sha256 12}}"#,
//! ).unwrap();
//! let inputs = Inputs { display_name: "token-ci-pipeline", role_name: "Read_Only", unix_time: 0 };
//! let name = template.render_with(&inputs, Limit { max_chars: 63, max_bytes: 63 }, |_| {});
//! // The display name is longer than 12: its first 4 characters, and 8
//! // hex digits of the SHA-256 of the rest.
//! assert!(name.starts_with("v-read-only-toke"));
//! assert_eq!(name.len(), "v-read-only-".len() + 12);
//! ```
//!
//! | value | |
//! | --- | --- |
//! | `.DisplayName` (or `display_name`) | the requesting token's display name |
//! | `.RoleName` (or `role_name`) | the role's name |
//! | `"text"`, `` `text` ``, `42` | a string or a number |
//! | `( … )` | a pipeline's value, as an argument |
//!
//! | function | value |
//! | --- | --- |
//! | `random N` | N random letters and digits, N from 1 to 64 |
//! | `truncate N S` | the first N characters of S (N ≥ 1) |
//! | `truncate_sha256 N S` | S if it has at most N characters; else its first N−8 characters and the first 8 hex digits of the SHA-256 of the rest (N > 8) |
//! | `uppercase S`, `lowercase S` | S in upper or lower case |
//! | `replace FIND WITH S` | S with every FIND replaced by WITH |
//! | `sha256 S`, `base64 S` | S's SHA-256 (hex) or base64 (standard, padded) |
//! | `unix_time`, `unix_time_millis` | seconds or milliseconds since the Unix epoch |
//! | `timestamp "LAYOUT"` | the time (UTC) in a Go layout (below) |
//! | `uuid` | a random (version 4) UUID |
//! | `printf "FORMAT" ARGS…` | FORMAT with `%s` and `%v` (any value), `%d` (a number) and `%%` |
//!
//! `timestamp` takes Go's reference-time layout tokens: `2006` and `06`
//! (year), `01`, `1`, `Jan`, `January` (month), `02`, `2`, `_2` (day),
//! `002` (day of the year), `Mon`, `Monday`, `15`, `03`, `3` (hour),
//! `04`, `4` (minute), `05`, `5` (second), `PM`, `pm`, `.000` … `.000000000`
//! and `.9…` (fractions of a second, to the millisecond), `MST` (always
//! `UTC`), and the zone offsets `Z07:00`, `Z0700`, `Z07`, `-07:00`,
//! `-0700`, `-07`. Anything else is written as it is, as in Go.
//!
//! Differences from Vault, each on the side of a clear error or a bounded
//! name: lengths count characters, not bytes (the same for ASCII); a
//! template is checked whole when parsed (an unknown function, a number
//! where a string belongs, or a `truncate 0` is refused then, not when a
//! user is made); a value is capped at 4 KiB as it is built, so that
//! `replace` cannot grow a name without bound; templates are at most 4 KiB
//! with at most 64 actions. Go's control structures (`if`, `range`,
//! variables) are not supported. The result is then cut to the database's
//! [`Limit`]: put the random part early enough to survive that cut.
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

/// The longest template text accepted.
const MAX_TEMPLATE_BYTES: usize = 4096;
/// The most actions (`{{ … }}`) in a template.
const MAX_ACTIONS: usize = 64;
/// The deepest `( … )` nesting.
const MAX_DEPTH: usize = 8;
/// A value is cut to this many bytes as it is built.
const MAX_VALUE_BYTES: usize = 4096;
/// The most characters `random` draws.
const MAX_RANDOM: usize = 64;
/// The most functions in one pipeline, and arguments to one function.
const MAX_COMMANDS: usize = 16;

const RANDOM_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn error(message: impl Into<String>) -> UsernameTemplateError {
    UsernameTemplateError(message.into())
}

/// A request's input a template reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    DisplayName,
    RoleName,
}

/// A string-valued expression, checked when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Text(String),
    Field(Field),
    Random(usize),
    UnixTime,
    UnixTimeMillis,
    Timestamp(Vec<Chunk>),
    Uuid,
    Truncate(usize, Box<Expr>),
    TruncateSha256(usize, Box<Expr>),
    Uppercase(Box<Expr>),
    Lowercase(Box<Expr>),
    Replace(String, String, Box<Expr>),
    Sha256(Box<Expr>),
    Base64(Box<Expr>),
    Printf(Vec<Piece>, Vec<Arg>),
}

/// A value while parsing: numbers are constants, known when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Str(Expr),
    Int(i64),
}

impl Arg {
    fn kind(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Int(_) => "a number",
        }
    }
}

/// A piece of a `printf` format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `%s` or `%v`: the argument as text.
    Value,
    /// `%d`: a number.
    Number,
}

/// A piece of a Go time layout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Text(String),
    Year4,
    Year2,
    MonthLong,
    MonthShort,
    Month2,
    Month,
    Day2,
    Day,
    DaySpace,
    YearDay3,
    WeekdayLong,
    WeekdayShort,
    Hour24,
    Hour12Pad,
    Hour12,
    Minute2,
    Minute,
    Second2,
    Second,
    PmUpper,
    PmLower,
    ZoneName,
    /// A zone offset: `Z` for UTC when `z`, else `+00`, then `:00` or
    /// `00` per `minutes`.
    Offset {
        z: bool,
        minutes: Option<bool>,
    },
    /// `.000`-style fractions of a second, `digits` long (`trim`: `.999`).
    Fraction {
        separator: char,
        digits: usize,
        trim: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Action(Expr),
}

/// A parsed username template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameTemplate {
    parts: Vec<Part>,
}

/// A token inside an action.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Pipe,
    Open,
    Close,
    Str(String),
    Int(i64),
    Field(String),
    Ident(String),
}

/// Splits one action's text into tokens.
fn lex(body: &str) -> Result<Vec<Tok>, UsernameTemplateError> {
    let mut tokens = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                tokens.push(Tok::Pipe);
            }
            '(' => {
                chars.next();
                tokens.push(Tok::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some((_, '\n')) => {
                            return Err(error("a string is not closed with '\"'"));
                        }
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => s.push('\\'),
                            Some((_, '"')) => s.push('"'),
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, other)) => {
                                return Err(error(format!(
                                    "unknown escape '\\{other}' in a string (use \\\\, \\\", \\n, \\t or \\r)"
                                )));
                            }
                            None => return Err(error("a string is not closed with '\"'")),
                        },
                        Some((_, ch)) => s.push(ch),
                    }
                }
                tokens.push(Tok::Str(s));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(error("a raw string is not closed with '`'")),
                        Some((_, '`')) => break,
                        Some((_, ch)) => s.push(ch),
                    }
                }
                tokens.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                chars.next();
                let mut end = start + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == '.' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let text = &body[start..end];
                let n = text
                    .parse::<i64>()
                    .map_err(|_| error(format!("{} is not a whole number", shown(text))))?;
                tokens.push(Tok::Int(n));
            }
            '.' | '_' | 'a'..='z' | 'A'..='Z' => {
                let start = i;
                chars.next();
                let mut end = start + 1;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' {
                        end = j + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                let text = &body[start..end];
                tokens.push(match text.strip_prefix('.') {
                    Some(name) => Tok::Field(name.to_owned()),
                    None => Tok::Ident(text.to_owned()),
                });
            }
            other => {
                return Err(error(format!(
                    "unexpected {other:?} in an action; an action is a value and functions, as {{{{.RoleName | truncate 8}}}}"
                )));
            }
        }
    }
    Ok(tokens)
}

/// `s` quoted for an error, cut short.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Reads a pipeline from tokens.
struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn pipeline(&mut self, depth: usize) -> Result<Arg, UsernameTemplateError> {
        if depth > MAX_DEPTH {
            return Err(error(format!("'(' nested deeper than {MAX_DEPTH}")));
        }
        let mut value: Option<Arg> = None;
        let mut commands = 0;
        loop {
            commands += 1;
            if commands > MAX_COMMANDS {
                return Err(error(format!(
                    "a pipeline of more than {MAX_COMMANDS} functions"
                )));
            }
            value = Some(self.command(value, depth)?);
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                _ => break,
            }
        }
        value.ok_or_else(|| error("an empty pipeline"))
    }

    /// One command: a value alone, or a function and its arguments, with
    /// `piped` (the value before a `|`) as its last argument.
    fn command(&mut self, piped: Option<Arg>, depth: usize) -> Result<Arg, UsernameTemplateError> {
        let head = match self.peek() {
            None | Some(Tok::Pipe | Tok::Close) => {
                return Err(error(if piped.is_some() {
                    "'|' is not followed by a function"
                } else {
                    "an empty action; write a value, as {{.RoleName}}"
                }));
            }
            Some(Tok::Ident(name)) if function_name(name) => name.clone(),
            Some(_) => {
                let value = self.operand(depth)?;
                if piped.is_some() {
                    return Err(error(
                        "only a function can follow '|' (the value before it becomes the function's last argument)",
                    ));
                }
                if !matches!(self.peek(), None | Some(Tok::Pipe | Tok::Close)) {
                    return Err(error("only a function takes arguments"));
                }
                return Ok(value);
            }
        };
        self.pos += 1;
        let mut args = Vec::new();
        while !matches!(self.peek(), None | Some(Tok::Pipe | Tok::Close)) {
            if args.len() >= MAX_COMMANDS {
                return Err(error(format!(
                    "{head} takes at most {MAX_COMMANDS} arguments"
                )));
            }
            args.push(self.operand(depth)?);
        }
        args.extend(piped);
        apply(&head, args)
    }

    fn operand(&mut self, depth: usize) -> Result<Arg, UsernameTemplateError> {
        let token = self.peek().cloned();
        self.pos += 1;
        Ok(match token {
            Some(Tok::Str(s)) => Arg::Str(Expr::Text(s)),
            Some(Tok::Int(n)) => Arg::Int(n),
            Some(Tok::Field(name)) => Arg::Str(Expr::Field(match name.as_str() {
                "DisplayName" => Field::DisplayName,
                "RoleName" => Field::RoleName,
                _ => {
                    return Err(error(format!(
                        "unknown field .{name}; a template knows .DisplayName and .RoleName"
                    )));
                }
            })),
            Some(Tok::Ident(name)) => match name.as_str() {
                "display_name" => Arg::Str(Expr::Field(Field::DisplayName)),
                "role_name" => Arg::Str(Expr::Field(Field::RoleName)),
                // A function without arguments, as an argument.
                name if function_name(name) => apply(name, Vec::new())?,
                _ => return Err(unknown_function(&name)),
            },
            Some(Tok::Open) => {
                let value = self.pipeline(depth + 1)?;
                match self.peek() {
                    Some(Tok::Close) => self.pos += 1,
                    _ => return Err(error("'(' with no closing ')'")),
                }
                value
            }
            Some(Tok::Close) => return Err(error("')' with no opening '('")),
            Some(Tok::Pipe) | None => return Err(error("a value is missing")),
        })
    }
}

const FUNCTIONS: [&str; 13] = [
    "random",
    "truncate",
    "truncate_sha256",
    "uppercase",
    "lowercase",
    "replace",
    "sha256",
    "base64",
    "unix_time",
    "unix_time_millis",
    "timestamp",
    "uuid",
    "printf",
];

fn function_name(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

fn unknown_function(name: &str) -> UsernameTemplateError {
    error(format!(
        "unknown function {}; known: {}, and the fields .DisplayName and .RoleName",
        shown(name),
        FUNCTIONS.join(", ")
    ))
}

/// Checks a function's arguments and builds its expression.
fn apply(name: &str, args: Vec<Arg>) -> Result<Arg, UsernameTemplateError> {
    let usage = |form: &str| error(format!("{name} takes {form}"));
    let count = |n: i64, min: i64, max: i64, what: &str| {
        if (min..=max).contains(&n) {
            usize::try_from(n).map_err(|_| error(what.to_owned()))
        } else {
            Err(error(format!("{name} {n}: {what}")))
        }
    };
    let string = |arg: Arg| match arg {
        Arg::Str(e) => Ok(e),
        Arg::Int(_) => Err(usage("a string here, not a number")),
    };
    let literal = |arg: Arg, what: &str| match arg {
        Arg::Str(Expr::Text(s)) => Ok(s),
        other => Err(error(format!(
            "{name}: {what} must be written in the template as a string, not {}",
            match other {
                Arg::Int(_) => "a number",
                _ => "a value made when the user is",
            }
        ))),
    };
    let mut args = args.into_iter();
    let mut next = || args.next();
    let expr = match name {
        "random" => match (next(), next()) {
            (Some(Arg::Int(n)), None) => Expr::Random(count(
                n,
                1,
                MAX_RANDOM as i64,
                &format!("the count must be from 1 to {MAX_RANDOM}"),
            )?),
            _ => return Err(usage("a count: {{random 20}}")),
        },
        "truncate" | "truncate_sha256" => match (next(), next(), next()) {
            (Some(Arg::Int(n)), Some(value), None) => {
                let value = Box::new(string(value)?);
                // Longer than any value can be: no cut (and no overflow).
                let n = n.min(MAX_VALUE_BYTES as i64);
                if name == "truncate" {
                    Expr::Truncate(
                        count(n, 1, i64::MAX, "the length must be at least 1")?,
                        value,
                    )
                } else {
                    Expr::TruncateSha256(
                        count(
                            n,
                            9,
                            i64::MAX,
                            "the length must be more than 8 (the hash takes 8)",
                        )?,
                        value,
                    )
                }
            }
            _ => {
                return Err(usage(
                    "a length and a string: {{.DisplayName | truncate 8}}",
                ));
            }
        },
        "uppercase" | "lowercase" | "sha256" | "base64" => match (next(), next()) {
            (Some(value), None) => {
                let value = Box::new(string(value)?);
                match name {
                    "uppercase" => Expr::Uppercase(value),
                    "lowercase" => Expr::Lowercase(value),
                    "sha256" => Expr::Sha256(value),
                    _ => Expr::Base64(value),
                }
            }
            _ => return Err(usage("one string: {{.RoleName | uppercase}}")),
        },
        "replace" => match (next(), next(), next(), next()) {
            (Some(find), Some(with), Some(value), None) => Expr::Replace(
                literal(find, "what to find")?,
                literal(with, "what to put instead")?,
                Box::new(string(value)?),
            ),
            _ => {
                return Err(usage(
                    "what to find, what to put instead, and a string: {{.DisplayName | replace \"-\" \"_\"}}",
                ));
            }
        },
        "unix_time" | "unix_time_millis" | "uuid" => match next() {
            None => match name {
                "unix_time" => Expr::UnixTime,
                "unix_time_millis" => Expr::UnixTimeMillis,
                _ => Expr::Uuid,
            },
            Some(_) => return Err(usage("no arguments")),
        },
        "timestamp" => match (next(), next()) {
            (Some(layout), None) => Expr::Timestamp(layout_chunks(&literal(layout, "the layout")?)),
            _ => return Err(usage("a Go layout: {{timestamp \"2006-01-02\"}}")),
        },
        "printf" => {
            let format = match next() {
                Some(format) => literal(format, "the format")?,
                None => {
                    return Err(usage(
                        "a format and its values: {{printf \"v-%s\" .RoleName}}",
                    ));
                }
            };
            let pieces = printf_pieces(&format)?;
            let values: Vec<Arg> = std::iter::from_fn(next).collect();
            let wanted: Vec<&Piece> = pieces
                .iter()
                .filter(|p| !matches!(p, Piece::Text(_)))
                .collect();
            if wanted.len() != values.len() {
                return Err(error(format!(
                    "printf: the format has {} verbs but {} values follow",
                    wanted.len(),
                    values.len()
                )));
            }
            for (piece, value) in wanted.iter().zip(&values) {
                if **piece == Piece::Number && !matches!(value, Arg::Int(_)) {
                    return Err(error(format!(
                        "printf: %d takes a number, not {}",
                        value.kind()
                    )));
                }
            }
            Expr::Printf(pieces, values)
        }
        other => return Err(unknown_function(other)),
    };
    Ok(Arg::Str(expr))
}

fn printf_pieces(format: &str) -> Result<Vec<Piece>, UsernameTemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('%') => {
                text.push('%');
                continue;
            }
            Some('s' | 'v') => Piece::Value,
            Some('d') => Piece::Number,
            Some(other) => {
                return Err(error(format!(
                    "printf: %{other} is not supported; use %s, %v, %d or %%"
                )));
            }
            None => return Err(error("printf: the format ends with a lone '%'")),
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// A Go layout in chunks, read the way Go reads it (the first token that
/// fits at each place, the longest of those that share a start).
fn layout_chunks(layout: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut text = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        let found = layout_token(rest);
        match found {
            Some((chunk, len)) => {
                if !text.is_empty() {
                    chunks.push(Chunk::Text(std::mem::take(&mut text)));
                }
                chunks.push(chunk);
                rest = &rest[len..];
            }
            None => {
                let c = rest.chars().next().unwrap_or_default();
                text.push(c);
                rest = &rest[c.len_utf8().max(1)..];
            }
        }
    }
    if !text.is_empty() {
        chunks.push(Chunk::Text(text));
    }
    chunks
}

/// The layout token at the start of `s`, and its length in bytes.
fn layout_token(s: &str) -> Option<(Chunk, usize)> {
    let starts = |p: &str| s.starts_with(p);
    let offset = |z: bool, minutes: Option<bool>| Chunk::Offset { z, minutes };
    let token = match s.as_bytes().first()? {
        b'J' if starts("January") => (Chunk::MonthLong, 7),
        b'J' if starts("Jan") => (Chunk::MonthShort, 3),
        b'M' if starts("Monday") => (Chunk::WeekdayLong, 6),
        b'M' if starts("Mon") => (Chunk::WeekdayShort, 3),
        b'M' if starts("MST") => (Chunk::ZoneName, 3),
        b'0' if starts("002") => (Chunk::YearDay3, 3),
        b'0' if starts("01") => (Chunk::Month2, 2),
        b'0' if starts("02") => (Chunk::Day2, 2),
        b'0' if starts("03") => (Chunk::Hour12Pad, 2),
        b'0' if starts("04") => (Chunk::Minute2, 2),
        b'0' if starts("05") => (Chunk::Second2, 2),
        b'0' if starts("06") => (Chunk::Year2, 2),
        b'1' if starts("15") => (Chunk::Hour24, 2),
        b'1' => (Chunk::Month, 1),
        b'2' if starts("2006") => (Chunk::Year4, 4),
        b'2' => (Chunk::Day, 1),
        b'_' if starts("_2006") => return None, // '_' then the year, as in Go
        b'_' if starts("_2") => (Chunk::DaySpace, 2),
        b'3' => (Chunk::Hour12, 1),
        b'4' => (Chunk::Minute, 1),
        b'5' => (Chunk::Second, 1),
        b'P' if starts("PM") => (Chunk::PmUpper, 2),
        b'p' if starts("pm") => (Chunk::PmLower, 2),
        b'-' if starts("-07:00") => (offset(false, Some(true)), 6),
        b'-' if starts("-0700") => (offset(false, Some(false)), 5),
        b'-' if starts("-07") => (offset(false, None), 3),
        b'Z' if starts("Z07:00") => (offset(true, Some(true)), 6),
        b'Z' if starts("Z0700") => (offset(true, Some(false)), 5),
        b'Z' if starts("Z07") => (offset(true, None), 3),
        b'.' | b',' => {
            let separator = char::from(s.as_bytes()[0]);
            let digit = *s.as_bytes().get(1)?;
            if digit != b'0' && digit != b'9' {
                return None;
            }
            let run = s[1..].bytes().take_while(|&b| b == digit).count();
            // Go takes a run of 0s or 9s as a fraction only when no other
            // digit follows it.
            if s[1 + run..]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit())
            {
                return None;
            }
            (
                Chunk::Fraction {
                    separator,
                    digits: run,
                    trim: digit == b'9',
                },
                1 + run,
            )
        }
        _ => return None,
    };
    Some(token)
}

/// The time a template renders: seconds and milliseconds since the epoch.
#[derive(Debug, Clone, Copy)]
struct Now {
    secs: u64,
    millis: u64,
}

/// What rendering reads: the inputs, the time and randomness.
struct Render<'a, R> {
    inputs: &'a Inputs<'a>,
    now: Now,
    fill_random: R,
}

/// `s` cut to at most [`MAX_VALUE_BYTES`], on a character boundary.
fn capped(mut s: String) -> String {
    if s.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl<R: FnMut(&mut [u8])> Render<'_, R> {
    fn eval(&mut self, expr: &Expr) -> String {
        let value = match expr {
            Expr::Text(s) => s.clone(),
            Expr::Field(Field::DisplayName) => self.inputs.display_name.to_owned(),
            Expr::Field(Field::RoleName) => self.inputs.role_name.to_owned(),
            Expr::Random(n) => random_chars(*n, &mut self.fill_random),
            Expr::UnixTime => self.now.secs.to_string(),
            Expr::UnixTimeMillis => self.now.millis.to_string(),
            Expr::Timestamp(chunks) => format_time(chunks, self.now),
            Expr::Uuid => {
                let mut b = [0u8; 16];
                (self.fill_random)(&mut b);
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                )
            }
            Expr::Truncate(n, e) => self.eval(e).chars().take(*n).collect(),
            Expr::TruncateSha256(n, e) => {
                let value = self.eval(e);
                if value.chars().count() <= *n {
                    value
                } else {
                    let keep: usize = value.chars().take(n - 8).map(char::len_utf8).sum();
                    let hash = sha256_hex(&value[keep..]);
                    format!("{}{}", &value[..keep], &hash[..8])
                }
            }
            Expr::Uppercase(e) => self.eval(e).to_uppercase(),
            Expr::Lowercase(e) => self.eval(e).to_lowercase(),
            Expr::Replace(find, with, e) => replace_capped(&self.eval(e), find, with),
            Expr::Sha256(e) => sha256_hex(&self.eval(e)),
            Expr::Base64(e) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(self.eval(e))
            }
            Expr::Printf(pieces, args) => {
                let mut values = args.iter();
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Value | Piece::Number => match values.next() {
                            Some(Arg::Str(e)) => out.push_str(&self.eval(e)),
                            Some(Arg::Int(n)) => out.push_str(&n.to_string()),
                            None => {}
                        },
                    }
                    if out.len() > MAX_VALUE_BYTES {
                        break;
                    }
                }
                out
            }
        };
        capped(value)
    }
}

/// `s` with every `find` replaced by `with`, stopping once the result
/// passes [`MAX_VALUE_BYTES`] (it is capped to that after).
fn replace_capped(s: &str, find: &str, with: &str) -> String {
    if find.is_empty() {
        // As Go: `with` before each character and at the end.
        let mut out = String::new();
        for c in s.chars() {
            if out.len() > MAX_VALUE_BYTES {
                return out;
            }
            out.push_str(with);
            out.push(c);
        }
        out.push_str(with);
        return out;
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(find) {
        if out.len() > MAX_VALUE_BYTES {
            return out;
        }
        out.push_str(&rest[..at]);
        out.push_str(with);
        rest = &rest[at + find.len()..];
    }
    out.push_str(rest);
    out
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn format_time(chunks: &[Chunk], now: Now) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let t = i64::try_from(now.secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = usize::from(u8::from(t.month()));
    let month_name = MONTHS[(month + 11) % 12];
    let day_name = DAYS[usize::from(t.weekday().number_days_from_monday())];
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let mut out = String::new();
    for chunk in chunks {
        let piece = match chunk {
            Chunk::Text(s) => s.clone(),
            Chunk::Year4 => format!("{:04}", t.year()),
            Chunk::Year2 => format!("{:02}", t.year().rem_euclid(100)),
            Chunk::MonthLong => month_name.to_owned(),
            Chunk::MonthShort => month_name[..3].to_owned(),
            Chunk::Month2 => format!("{month:02}"),
            Chunk::Month => month.to_string(),
            Chunk::Day2 => format!("{:02}", t.day()),
            Chunk::Day => t.day().to_string(),
            Chunk::DaySpace => format!("{:>2}", t.day()),
            Chunk::YearDay3 => format!("{:03}", t.ordinal()),
            Chunk::WeekdayLong => day_name.to_owned(),
            Chunk::WeekdayShort => day_name[..3].to_owned(),
            Chunk::Hour24 => format!("{:02}", t.hour()),
            Chunk::Hour12Pad => format!("{hour12:02}"),
            Chunk::Hour12 => hour12.to_string(),
            Chunk::Minute2 => format!("{:02}", t.minute()),
            Chunk::Minute => t.minute().to_string(),
            Chunk::Second2 => format!("{:02}", t.second()),
            Chunk::Second => t.second().to_string(),
            Chunk::PmUpper => if t.hour() >= 12 { "PM" } else { "AM" }.to_owned(),
            Chunk::PmLower => if t.hour() >= 12 { "pm" } else { "am" }.to_owned(),
            Chunk::ZoneName => "UTC".to_owned(),
            Chunk::Offset { z: true, .. } => "Z".to_owned(),
            Chunk::Offset {
                z: false,
                minutes: None,
            } => "+00".to_owned(),
            Chunk::Offset {
                z: false,
                minutes: Some(true),
            } => "+00:00".to_owned(),
            Chunk::Offset {
                z: false,
                minutes: Some(false),
            } => "+0000".to_owned(),
            Chunk::Fraction {
                separator,
                digits,
                trim,
            } => {
                // Milliseconds, then zeros: the clock's precision.
                let mut fraction = format!("{:03}", now.millis % 1000);
                while fraction.len() < *digits {
                    fraction.push('0');
                }
                fraction.truncate(*digits);
                if *trim {
                    let trimmed = fraction.trim_end_matches('0');
                    if trimmed.is_empty() {
                        String::new()
                    } else {
                        format!("{separator}{trimmed}")
                    }
                } else {
                    format!("{separator}{fraction}")
                }
            }
        };
        out.push_str(&piece);
    }
    out
}

/// The username for `request`: rendered from the connection's template
/// (`configured`, its `username_template`) or, when it sets none, from the
/// plugin's `default`, and cut to `limit`. What most plugins' `prepare`
/// starts with.
pub fn for_request<R>(
    configured: Option<&str>,
    default: &str,
    request: &crate::IssueRequest<R>,
    limit: Limit,
) -> Result<String, UsernameTemplateError> {
    Ok(
        UsernameTemplate::parse(configured.unwrap_or(default))?.render(
            &Inputs {
                display_name: &request.display_name,
                role_name: &request.role_name,
                unix_time: crate::host::now(),
            },
            limit,
        ),
    )
}

impl UsernameTemplate {
    /// Parses a template, checking every action: see the module docs.
    pub fn parse(text: &str) -> Result<Self, UsernameTemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(error(format!(
                "{} bytes; a template may have at most {MAX_TEMPLATE_BYTES}",
                text.len()
            )));
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut rest = text;
        let mut trim_next = false;
        let mut actions = 0;
        while let Some(open) = rest.find("{{") {
            actions += 1;
            if actions > MAX_ACTIONS {
                return Err(error(format!(
                    "more than {MAX_ACTIONS} actions ({{{{ … }}}})"
                )));
            }
            let mut before = &rest[..open];
            if trim_next {
                before = before.trim_start();
            }
            let mut body = &rest[open + 2..];
            // `{{- ` trims the text before; ` -}}` the text after.
            if let Some(after) = body.strip_prefix("- ") {
                before = before.trim_end();
                body = after;
            }
            if !before.is_empty() {
                parts.push(Part::Text(before.to_owned()));
            }
            // A comment, `{{/* … */}}`, may hold anything but its end.
            if let Some(comment) = body.strip_prefix("/*") {
                let end = comment
                    .find("*/")
                    .ok_or_else(|| error("a comment {{/* … */}} is not closed"))?;
                let after = &comment[end + 2..];
                (trim_next, rest) = if let Some(after) = after.strip_prefix(" -}}") {
                    (true, after)
                } else if let Some(after) = after.strip_prefix("}}") {
                    (false, after)
                } else {
                    return Err(error("a comment must end with */}}"));
                };
                continue;
            }
            let close = action_end(body)?;
            let mut inner = &body[..close];
            trim_next = false;
            if let Some(stripped) = inner.strip_suffix(" -") {
                inner = stripped;
                trim_next = true;
            }
            rest = &body[close + 2..];
            let inner = inner.trim();
            let mut parser = Parser {
                tokens: lex(inner)?,
                pos: 0,
            };
            let value = parser.pipeline(0)?;
            if parser.pos < parser.tokens.len() {
                return Err(error("')' with no opening '('"));
            }
            match value {
                Arg::Str(expr) => parts.push(Part::Action(expr)),
                Arg::Int(n) => parts.push(Part::Text(n.to_string())),
            }
        }
        let rest = if trim_next { rest.trim_start() } else { rest };
        if rest.contains("}}") {
            return Err(error("'}}' with no opening '{{'"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Renders a username, drawing random characters from `fill_random`,
    /// then cuts it to `limit`. The time is `inputs.unix_time`, to the
    /// second (`unix_time_millis` is that times 1000): the same inputs
    /// and random bytes always make the same name.
    pub fn render_with(
        &self,
        inputs: &Inputs<'_>,
        limit: Limit,
        fill_random: impl FnMut(&mut [u8]),
    ) -> String {
        let now = Now {
            secs: inputs.unix_time,
            millis: inputs.unix_time.saturating_mul(1000),
        };
        self.render_at(inputs, limit, now, fill_random)
    }

    fn render_at(
        &self,
        inputs: &Inputs<'_>,
        limit: Limit,
        now: Now,
        fill_random: impl FnMut(&mut [u8]),
    ) -> String {
        let mut render = Render {
            inputs,
            now,
            fill_random,
        };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(expr) => out.push_str(&render.eval(expr)),
            }
            // Past the limit nothing more survives the cut.
            if out.len() > limit.max_bytes || out.chars().count() > limit.max_chars {
                break;
            }
        }
        cut_to(&out, limit)
    }

    /// Renders a username with the host's randomness, at
    /// `inputs.unix_time` with the milliseconds of the wall clock (when it
    /// agrees on the second).
    pub fn render(&self, inputs: &Inputs<'_>, limit: Limit) -> String {
        let secs = inputs.unix_time;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            .filter(|ms| ms / 1000 == secs)
            .unwrap_or_else(|| secs.saturating_mul(1000));
        self.render_at(
            inputs,
            limit,
            Now { secs, millis },
            crate::host::fill_random,
        )
    }
}

/// Where the action that starts `body` ends (the index of its `}}`),
/// skipping strings, in which `}}` is text.
fn action_end(body: &str) -> Result<usize, UsernameTemplateError> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(b'"') if b == b'\\' => i += 1,
            Some(_) => {}
            None if b == b'"' || b == b'`' => quote = Some(b),
            None if bytes[i..].starts_with(b"}}") => return Ok(i),
            None => {}
        }
        i += 1;
    }
    Err(error("'{{' with no closing '}}'"))
}

fn random_chars(n: usize, fill_random: &mut impl FnMut(&mut [u8])) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    // Rejection sampling keeps the draw uniform over the alphabet.
    let bound = 256 - 256 % RANDOM_ALPHABET.len();
    // A source that only gives rejected bytes would never end; after this
    // many rounds (never reached by a real generator) the rest is taken
    // modulo the alphabet, biased but finite.
    let mut rounds = 0;
    while out.len() < n {
        fill_random(&mut buf);
        rounds += 1;
        for b in buf {
            if ((b as usize) < bound || rounds > 64) && out.len() < n {
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
mod tests;
