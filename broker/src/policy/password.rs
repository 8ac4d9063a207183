//! Password policies, as Vault writes them: how long a generated password
//! is and which characters it must hold, and the generator that makes
//! passwords from them. Database configs name one (`password_policy`); the
//! host, never a plugin, makes the password from it.
//!
//! ```
//! use broker::policy::PasswordPolicy;
//!
//! let policy = PasswordPolicy::parse(r#"
//!     length = 20
//!     rule "charset" {
//!       charset   = "abcdefghijklmnopqrstuvwxyz"
//!       min-chars = 1
//!     }
//!     rule "charset" {
//!       charset   = "0123456789"
//!       min-chars = 2
//!     }
//! "#).unwrap();
//! let password = policy.generate();
//! assert_eq!(password.len(), 20);
//! assert!(policy.is_satisfied_by(&password));
//! ```
//!
//! What this module must never do: hand out a password that breaks its
//! policy, draw a character with bias, or leave a password or the random
//! bytes behind it in memory it frees (they are zeroized).
//!
//! **What a policy may say.** `length` (required) is 4 to 100, as in
//! Vault. Each `rule "charset"` names a `charset` (required, not empty)
//! and a `min-chars` (default 0). Characters are printable ASCII other
//! than the space (`!` to `~`): a password travels through connection
//! strings, shells and SQL text, where a space is trimmed or splits a
//! word and non-ASCII characters change with the encoding. A character
//! repeated within a charset, or found in several, counts once (Vault
//! de-duplicates the same way). The `min-chars` of all rules together must
//! fit in `length`. Anything else is refused with a message that says
//! what to change: an unknown rule type or key, a second rule with the
//! same set of characters (merge them: each rule counts on its own, so a
//! repeat only restates the larger `min-chars`), more than 100 rules,
//! a policy without any charset. Vault's JSON form is read too.
//!
//! **How a password is drawn.** Vault draws whole passwords from the union
//! of the charsets and retries until one passes every rule, which can take
//! long, or fail, for a demanding policy. Here every rule is met by
//! construction: `min-chars` characters are drawn from each rule's own
//! charset, the rest of the length from the union, and the result is
//! shuffled (Fisher-Yates). Each draw is uniform: a random byte is mapped
//! to an index only below the largest multiple of the set's size that fits
//! in a byte, and rejected above it, so no character is favoured by a
//! modulo. A set has at most 100 members, so a draw is rejected less than
//! half the time. The bytes come from the operating system's CSPRNG.

use std::collections::BTreeSet;

use zeroize::{Zeroize, Zeroizing};

use super::json::Json;
use crate::barrier::{SealedError, SealedStorage};

/// The shortest password a policy may ask for (Vault's bound).
pub const MIN_LENGTH: usize = 4;
/// The longest password a policy may ask for (Vault's bound).
pub const MAX_LENGTH: usize = 100;
/// More rules than this is not a policy but a mistake.
const MAX_RULES: usize = 100;
/// The longest password policy name accepted.
const MAX_NAME_LEN: usize = 128;
/// At most this much of a name or key is quoted back in an error.
const QUOTED: usize = 48;

/// Where password policies live in sealed storage.
const PREFIX: &str = "core/policies/password/";

/// Why a password policy could not be parsed, found, stored or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordPolicyError {
    /// The text is neither valid HCL nor valid JSON (400).
    #[error("failed to parse password policy: {0}")]
    Syntax(String),
    /// It parses, but says something a policy cannot (400).
    #[error("invalid password policy: {0}")]
    Invalid(String),
    /// The name cannot be a policy's (400).
    #[error(
        "invalid password policy name {0:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
    )]
    Name(String),
    /// No policy has that name (404 when asked for directly; 400 when a
    /// config names it).
    #[error("password policy {0:?} does not exist")]
    NotFound(String),
    /// A stored policy no longer parses (written by an older, laxer
    /// broker); it must be written again.
    #[error("stored password policy {name:?} is no longer valid ({reason}); write it again")]
    Stored {
        /// The policy.
        name: String,
        /// What the parser says now.
        reason: String,
    },
    /// The operating system gave no random bytes (500).
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// Storage failed (500).
    #[error(transparent)]
    Storage(#[from] SealedError),
}

/// A set of characters, each printable ASCII, sorted and counted once.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Charset(Vec<u8>);

impl Charset {
    fn contains(&self, byte: u8) -> bool {
        self.0.binary_search(&byte).is_ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `charset`), so this cannot fail;
        // an empty string would be the harmless answer if it did.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Charset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// One `rule "charset"`: at least `min_chars` characters from `charset`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CharsetRule {
    charset: Charset,
    min_chars: usize,
}

/// A parsed password policy: a length and the charset rules a password
/// of that length must meet. Not secret: `Debug` shows it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    length: usize,
    rules: Vec<CharsetRule>,
    /// Every rule's characters together: what the rest of a password is
    /// drawn from.
    alphabet: Charset,
}

/// The broker's own policy when a config names none, as HCL: what
/// [`PasswordPolicy::default`] is.
pub const DEFAULT_POLICY: &str = r#"length = 24
rule "charset" {
  charset   = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset   = "0123456789"
  min-chars = 1
}
"#;

impl Default for PasswordPolicy {
    /// 24 letters and digits with at least one lowercase letter, one
    /// uppercase letter and one digit (about 142 bits): what the SDK's
    /// generator makes, and safe unquoted in any connection string or
    /// statement. [`DEFAULT_POLICY`] is the same policy as text.
    fn default() -> Self {
        let rule = |chars: &[u8]| CharsetRule {
            charset: Charset(chars.to_vec()),
            min_chars: 1,
        };
        let rules = vec![
            rule(b"abcdefghijklmnopqrstuvwxyz"),
            rule(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            rule(b"0123456789"),
        ];
        Self {
            length: 24,
            alphabet: union(&rules),
            rules,
        }
    }
}

fn union(rules: &[CharsetRule]) -> Charset {
    let all: BTreeSet<u8> = rules
        .iter()
        .flat_map(|r| r.charset.0.iter().copied())
        .collect();
    Charset(all.into_iter().collect())
}

impl PasswordPolicy {
    /// Parses a policy's text: Vault's HCL, or its JSON form (text that
    /// starts with `{`). See the module docs for what is refused.
    pub fn parse(text: &str) -> Result<Self, PasswordPolicyError> {
        let raw = if text.trim_start().starts_with('{') {
            from_json(text)?
        } else {
            from_hcl(text)?
        };
        raw.check()
    }

    /// How many characters its passwords have.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Every character its passwords may hold, in byte order.
    pub fn alphabet(&self) -> &str {
        self.alphabet.as_str()
    }

    /// Whether `password` could have come from this policy: its length,
    /// only characters of the policy, and every rule's minimum met.
    pub fn is_satisfied_by(&self, password: &str) -> bool {
        let bytes = password.as_bytes();
        bytes.len() == self.length
            && bytes.iter().all(|&b| self.alphabet.contains(b))
            && self.rules.iter().all(|rule| {
                bytes.iter().filter(|&&b| rule.charset.contains(b)).count() >= rule.min_chars
            })
    }

    /// A new password from the operating system's CSPRNG, meeting every
    /// rule by construction.
    ///
    /// The OS generator does not fail on a running Linux system (the
    /// `getrandom` call blocks until it is seeded). Should it fail anyway,
    /// there is no safe password to return, nor a safe key, nonce or
    /// token anywhere else in the broker: the process aborts rather than
    /// go on without randomness. Callers that can report an error use
    /// [`PasswordPolicy::try_generate`].
    pub fn generate(&self) -> Zeroizing<String> {
        match self.try_generate() {
            Ok(password) => password,
            Err(e) => {
                tracing::error!(error = %e, "the operating system's random generator failed; stopping");
                std::process::abort()
            }
        }
    }

    /// A new password, or an error if the operating system gave no random
    /// bytes.
    pub fn try_generate(&self) -> Result<Zeroizing<String>, PasswordPolicyError> {
        self.generate_with(&mut Draws::new(OsEntropy))
    }

    /// A new password from `draws`. Each rule's `min_chars` are drawn from
    /// its own charset, the rest from the alphabet, then all are shuffled.
    fn generate_with<E: Entropy>(
        &self,
        draws: &mut Draws<E>,
    ) -> Result<Zeroizing<String>, PasswordPolicyError> {
        let mut chars = Zeroizing::new(Vec::with_capacity(self.length));
        for rule in &self.rules {
            for _ in 0..rule.min_chars {
                chars.push(draws.pick(&rule.charset)?);
            }
        }
        // `check` saw to it that the minimums fit in the length.
        while chars.len() < self.length {
            chars.push(draws.pick(&self.alphabet)?);
        }
        for i in (1..chars.len()).rev() {
            let j = draws.below(i + 1)?;
            chars.swap(i, j);
        }
        // The exact capacity: pushing never reallocates, so no copy of the
        // password is left behind in freed memory.
        let mut password = Zeroizing::new(String::with_capacity(chars.len()));
        password.extend(chars.iter().map(|&b| char::from(b)));
        Ok(password)
    }
}

/// Where random bytes come from: the OS, or a test's fixed sequence.
trait Entropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), PasswordPolicyError>;
}

/// The operating system's CSPRNG.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), PasswordPolicyError> {
        getrandom::fill(buf).map_err(|e| PasswordPolicyError::Random(e.to_string()))
    }
}

/// Random bytes read ahead from an [`Entropy`] (one system call per
/// password, not per character), zeroized when dropped.
struct Draws<E> {
    entropy: E,
    buf: Zeroizing<[u8; 128]>,
    used: usize,
}

impl<E: Entropy> Draws<E> {
    fn new(entropy: E) -> Self {
        Self {
            entropy,
            buf: Zeroizing::new([0; 128]),
            used: 128,
        }
    }

    fn byte(&mut self) -> Result<u8, PasswordPolicyError> {
        if self.used == self.buf.len() {
            self.entropy.fill(&mut self.buf[..])?;
            self.used = 0;
        }
        let b = self.buf[self.used];
        // Each byte is used once; clear it as it is taken.
        self.buf[self.used].zeroize();
        self.used += 1;
        Ok(b)
    }

    /// A uniform index in `0..n`, for `n` from 1 to 256: a byte below the
    /// largest multiple of `n` that fits in a byte, reduced modulo `n`;
    /// bytes at or above it are drawn again (fewer than half of them).
    fn below(&mut self, n: usize) -> Result<usize, PasswordPolicyError> {
        if n == 0 || n > 256 {
            return Err(PasswordPolicyError::Invalid(format!(
                "cannot draw from a set of {n} characters"
            )));
        }
        loop {
            if let Some(i) = reduce(self.byte()?, n) {
                return Ok(i);
            }
        }
    }

    fn pick(&mut self, set: &Charset) -> Result<u8, PasswordPolicyError> {
        let i = self.below(set.len())?;
        set.0
            .get(i)
            .copied()
            .ok_or_else(|| PasswordPolicyError::Invalid("empty charset".into()))
    }
}

/// The index in `0..n` (`n` from 1 to 256) that byte `b` stands for, or
/// `None` when `b` is at or above the largest multiple of `n` that fits in
/// a byte: each index then has exactly as many bytes as any other.
fn reduce(b: u8, n: usize) -> Option<usize> {
    let zone = 256 - 256 % n;
    let b = usize::from(b);
    (b < zone).then(|| b % n)
}

/// A value as read from HCL or JSON, before it is checked.
#[derive(Debug)]
enum RawValue {
    Text(String),
    /// A whole number that fits, or `None` for any other number.
    Number(Option<u64>),
    /// Anything else, by the name of its kind, for the error.
    Other(&'static str),
}

impl RawValue {
    fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "a string",
            Self::Number(_) => "a number",
            Self::Other(kind) => kind,
        }
    }
}

/// A rule block as read: its type and its keys, in order.
#[derive(Debug)]
struct RawRule {
    kind: String,
    keys: Vec<(String, RawValue)>,
}

/// A policy as read, before it is checked.
#[derive(Debug, Default)]
struct RawPolicy {
    length: Option<RawValue>,
    rules: Vec<RawRule>,
}

/// `s` for an error message: at most [`QUOTED`] characters of it, quoted.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTED) {
        Some((at, _)) => format!("{:?}…", &s[..at]),
        None => format!("{s:?}"),
    }
}

/// A whole number from 0 to `max` for `what`, or why not.
fn whole(value: &RawValue, what: &str, min: usize, max: usize) -> Result<usize, String> {
    let range = || format!("{what} must be a whole number from {min} to {max}");
    match value {
        RawValue::Number(Some(n)) => usize::try_from(*n)
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(range),
        RawValue::Number(None) => Err(range()),
        other => Err(format!("{}, not {}", range(), other.kind())),
    }
}

/// A rule's characters, each checked, sorted and counted once.
fn charset(text: &str) -> Result<Charset, String> {
    if text.is_empty() {
        return Err("charset is empty".into());
    }
    for c in text.chars() {
        let why = match c {
            '!'..='~' => continue,
            ' ' => "a space: clients and connection strings trim or split on it".to_owned(),
            c if c.is_control() => format!(
                "a control character (U+{:04X}); use printable ASCII, '!' to '~'",
                u32::from(c)
            ),
            c => format!(
                "{c:?} (U+{:04X}), which is not ASCII; use printable ASCII, '!' to '~'",
                u32::from(c)
            ),
        };
        return Err(format!("charset holds {why}"));
    }
    let set: BTreeSet<u8> = text.bytes().collect();
    Ok(Charset(set.into_iter().collect()))
}

impl RawRule {
    fn check(self, number: usize) -> Result<CharsetRule, PasswordPolicyError> {
        let at = |m: String| PasswordPolicyError::Invalid(format!("rule {number}: {m}"));
        if self.kind != "charset" {
            return Err(at(format!(
                "unknown rule type {}; the only rule type is \"charset\"",
                quoted(&self.kind)
            )));
        }
        let mut chars = None;
        let mut min_chars = 0;
        for (key, value) in &self.keys {
            match (key.as_str(), value) {
                ("charset", RawValue::Text(text)) => chars = Some(charset(text).map_err(at)?),
                ("charset", other) => {
                    return Err(at(format!(
                        "charset must be a string, not {}",
                        other.kind()
                    )));
                }
                ("min-chars", value) => {
                    min_chars = whole(value, "min-chars", 0, MAX_LENGTH).map_err(at)?
                }
                (key, _) => {
                    return Err(at(format!(
                        "unknown key {}; a charset rule takes charset and min-chars",
                        quoted(key)
                    )));
                }
            }
        }
        let charset = chars.ok_or_else(|| at("charset is required".into()))?;
        Ok(CharsetRule { charset, min_chars })
    }
}

impl RawPolicy {
    fn check(self) -> Result<PasswordPolicy, PasswordPolicyError> {
        let invalid = PasswordPolicyError::Invalid;
        let length = match &self.length {
            Some(value) => whole(value, "length", MIN_LENGTH, MAX_LENGTH).map_err(invalid)?,
            None => {
                return Err(invalid(format!(
                    "length is required: a whole number from {MIN_LENGTH} to {MAX_LENGTH}"
                )));
            }
        };
        if self.rules.is_empty() {
            return Err(invalid(
                "at least one rule \"charset\" is required: a password policy has no default charset"
                    .into(),
            ));
        }
        if self.rules.len() > MAX_RULES {
            return Err(invalid(format!(
                "{} rules; a policy may have at most {MAX_RULES}",
                self.rules.len()
            )));
        }
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| rule.check(i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, rule) in rules.iter().enumerate() {
            if let Some(j) = rules[..i].iter().position(|r| r.charset == rule.charset) {
                return Err(invalid(format!(
                    "rules {} and {} have the same characters; keep one, with the larger min-chars (each rule is counted on its own)",
                    j + 1,
                    i + 1
                )));
            }
        }
        // Each at most MAX_LENGTH, at most MAX_RULES of them: no overflow.
        let required: usize = rules.iter().map(|r| r.min_chars).sum();
        if required > length {
            return Err(invalid(format!(
                "the rules require at least {required} characters (their min-chars together) but length is {length}"
            )));
        }
        Ok(PasswordPolicy {
            length,
            alphabet: union(&rules),
            rules,
        })
    }
}

fn from_hcl(text: &str) -> Result<RawPolicy, PasswordPolicyError> {
    use hcl::Expression;

    let body = hcl::parse(text).map_err(|e| {
        PasswordPolicyError::Syntax(match &e {
            hcl::Error::Parse(p) => {
                let hint = if p.message().contains("block body") {
                    " (put each key of a rule on its own line)"
                } else {
                    ""
                };
                format!(
                    "line {}, column {}: {}{hint}",
                    p.location().line(),
                    p.location().column(),
                    p.message()
                )
            }
            _ => e.to_string(),
        })
    })?;
    let value = |expression: &Expression| match expression {
        Expression::String(s) => RawValue::Text(s.clone()),
        Expression::Number(n) => RawValue::Number(n.as_u64()),
        Expression::Null => RawValue::Other("null"),
        Expression::Bool(_) => RawValue::Other("a boolean"),
        Expression::Array(_) => RawValue::Other("a list"),
        Expression::Object(_) => RawValue::Other("an object"),
        // `${` and `%{` start a template in HCL; `$${` and `%%{` are literal.
        Expression::TemplateExpr(_) => {
            RawValue::Other("a template (write $${ or %%{ for a literal ${ or %{)")
        }
        _ => RawValue::Other("an expression"),
    };
    let mut raw = RawPolicy::default();
    // The parser refuses a repeated attribute itself.
    for attribute in body.attributes() {
        match attribute.key() {
            "length" => raw.length = Some(value(attribute.expr())),
            key => {
                return Err(PasswordPolicyError::Invalid(format!(
                    "unknown key {}; a password policy holds length and rule blocks",
                    quoted(key)
                )));
            }
        }
    }
    for block in body.blocks() {
        let kind = match (block.identifier(), block.labels()) {
            ("rule", [label]) => label.as_str().to_owned(),
            ("rule", _) => {
                return Err(PasswordPolicyError::Invalid(
                    "a rule takes one label, its type: rule \"charset\" { … }".into(),
                ));
            }
            (other, _) => {
                return Err(PasswordPolicyError::Invalid(format!(
                    "unknown block {}; a password policy holds length and rule blocks",
                    quoted(other)
                )));
            }
        };
        if let Some(nested) = block.body().blocks().next() {
            return Err(PasswordPolicyError::Invalid(format!(
                "rule {}: unknown block {}; a charset rule takes charset and min-chars",
                raw.rules.len() + 1,
                quoted(nested.identifier())
            )));
        }
        let keys = block
            .body()
            .attributes()
            .map(|a| (a.key().to_owned(), value(a.expr())))
            .collect();
        raw.rules.push(RawRule { kind, keys });
    }
    Ok(raw)
}

impl Json {
    fn into_policy_value(self) -> RawValue {
        match self {
            Self::Text(s) => RawValue::Text(s),
            Self::Number(n) => RawValue::Number(n),
            Self::List(_) => RawValue::Other("a list"),
            Self::Object(_) => RawValue::Other("an object"),
            Self::Other(kind) => RawValue::Other(kind),
        }
    }

    /// Objects as HCL's JSON form writes blocks: one object, or a list of
    /// them.
    fn objects(self, what: &str) -> Result<Vec<Vec<(String, Json)>>, PasswordPolicyError> {
        let not = || {
            PasswordPolicyError::Invalid(format!("{what} must be an object or a list of objects"))
        };
        match self {
            Self::Object(members) => Ok(vec![members]),
            Self::List(items) => items
                .into_iter()
                .map(|item| match item {
                    Self::Object(members) => Ok(members),
                    _ => Err(not()),
                })
                .collect(),
            _ => Err(not()),
        }
    }
}

/// Refuses a key given twice in any object of `json`: one copy would be
/// silently lost.
fn no_repeated_keys(json: &Json) -> Result<(), PasswordPolicyError> {
    match json {
        Json::Object(members) => {
            // A set, not a scan per key: an object of many keys must not
            // cost their square.
            let mut seen = std::collections::HashSet::with_capacity(members.len());
            for (key, value) in members {
                if !seen.insert(key.as_str()) {
                    return Err(PasswordPolicyError::Syntax(format!(
                        "key {} is given twice",
                        quoted(key)
                    )));
                }
                no_repeated_keys(value)?;
            }
            Ok(())
        }
        Json::List(items) => items.iter().try_for_each(no_repeated_keys),
        _ => Ok(()),
    }
}

/// Vault's JSON form: `{"length": 20, "rule": [{"charset": {"charset":
/// "abc", "min-chars": 1}}]}`, where each object may also be a list of
/// objects, as HCL's JSON form allows.
fn from_json(text: &str) -> Result<RawPolicy, PasswordPolicyError> {
    let json: Json =
        serde_json::from_str(text).map_err(|e| PasswordPolicyError::Syntax(e.to_string()))?;
    no_repeated_keys(&json)?;
    let Json::Object(document) = json else {
        return Err(PasswordPolicyError::Invalid(
            "a JSON password policy is an object".into(),
        ));
    };
    let mut raw = RawPolicy::default();
    for (key, value) in document {
        match key.as_str() {
            "length" => raw.length = Some(value.into_policy_value()),
            "rule" => {
                for rules in value.objects("\"rule\"")? {
                    for (kind, bodies) in rules {
                        for body in bodies.objects("a rule")? {
                            raw.rules.push(RawRule {
                                kind: kind.clone(),
                                keys: body
                                    .into_iter()
                                    .map(|(k, v)| (k, v.into_policy_value()))
                                    .collect(),
                            });
                        }
                    }
                }
            }
            other => {
                return Err(PasswordPolicyError::Invalid(format!(
                    "unknown key {}; a password policy holds length and rule",
                    quoted(other)
                )));
            }
        }
    }
    Ok(raw)
}

/// Checks a password policy name: it becomes a storage key and a URL
/// segment. Case is kept, as Vault keeps it.
pub fn check_name(name: &str) -> Result<&str, PasswordPolicyError> {
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
        let shown: String = name.chars().take(QUOTED).collect();
        Err(PasswordPolicyError::Name(shown))
    }
}

/// Password policies at rest: their text, sealed under
/// `core/policies/password/<name>`, parsed when used (so a policy is
/// always used as it reads now).
#[derive(Debug, Clone)]
pub struct PasswordPolicies {
    store: SealedStorage,
}

impl PasswordPolicies {
    /// Policies kept in `store`.
    pub fn new(store: SealedStorage) -> Self {
        Self { store }
    }

    /// The text of the policy `name` as written, or `None`.
    pub async fn text(&self, name: &str) -> Result<Option<String>, PasswordPolicyError> {
        let name = check_name(name)?;
        Ok(self.store.get(&key(name)).await?)
    }

    /// The policy `name`, parsed, or `None` if there is none.
    pub async fn get(&self, name: &str) -> Result<Option<PasswordPolicy>, PasswordPolicyError> {
        let Some(text) = self.text(name).await? else {
            return Ok(None);
        };
        PasswordPolicy::parse(&text)
            .map(Some)
            .map_err(|e| PasswordPolicyError::Stored {
                name: name.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Checks `text` and stores it as the policy `name`, replacing any
    /// policy of that name.
    pub async fn put(&self, name: &str, text: &str) -> Result<(), PasswordPolicyError> {
        let name = check_name(name)?;
        PasswordPolicy::parse(text)?;
        self.store.put(&key(name), &text).await?;
        Ok(())
    }

    /// Deletes the policy `name`; deleting one that does not exist is not
    /// an error (as in Vault). Configs that name it fail to issue until
    /// it is written again or they name another.
    pub async fn delete(&self, name: &str) -> Result<(), PasswordPolicyError> {
        let name = check_name(name)?;
        self.store.delete(&key(name)).await?;
        Ok(())
    }

    /// Every policy's name, sorted.
    pub async fn list(&self) -> Result<Vec<String>, PasswordPolicyError> {
        let mut names: Vec<String> = self
            .store
            .list(PREFIX)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(PREFIX).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The policy a config's `password_policy` field names: the broker's
    /// [default](PasswordPolicy::default) when it names none (absent or
    /// empty), else the stored policy, or [`PasswordPolicyError::NotFound`].
    pub async fn resolve(&self, name: Option<&str>) -> Result<PasswordPolicy, PasswordPolicyError> {
        match name.map(str::trim) {
            None | Some("") => Ok(PasswordPolicy::default()),
            Some(name) => self
                .get(name)
                .await?
                .ok_or_else(|| PasswordPolicyError::NotFound(name.to_owned())),
        }
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

#[cfg(test)]
mod tests;
