//! A JWT role: the bounds a token's claims must meet, the claims copied
//! into the token's metadata, and what the token gets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::token_fields::TokenParams;
use crate::framework::{Error, Request};

/// The most bound or mapped claims a role holds.
const MAX_CLAIMS: usize = 64;
/// The most values a bound claim or `bound_audiences` lists.
const MAX_VALUES: usize = 256;
/// The longest claim name or value a role names (bytes).
const MAX_TEXT: usize = 1024;
/// The largest leeway (seconds).
const MAX_LEEWAY: i64 = 24 * 60 * 60;

/// Metadata keys a login sets itself; claim mappings cannot take them.
pub const RESERVED_METADATA: [&str; 2] = ["role", "alias_name"];

/// How bound claims' values are matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimsType {
    /// Exactly.
    #[default]
    String,
    /// With `*` standing for any run of characters.
    Glob,
}

/// A bound claim's expected value: one, or any of several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    /// One value.
    One(String),
    /// Any of these.
    Any(Vec<String>),
}

impl Expected {
    /// The values, as a list.
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(v) => std::slice::from_ref(v),
            Self::Any(v) => v,
        }
    }
}

/// A stored role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Role {
    /// Always `jwt` (the OIDC browser flow is not offered).
    #[serde(default = "jwt")]
    pub role_type: String,
    /// `aud` must name one of these.
    #[serde(default)]
    pub bound_audiences: Vec<String>,
    /// `sub` must be this.
    #[serde(default)]
    pub bound_subject: String,
    /// Claims (names, or JSON pointers from `/`) and their expected values.
    #[serde(default)]
    pub bound_claims: BTreeMap<String, Expected>,
    /// How `bound_claims` match.
    #[serde(default)]
    pub bound_claims_type: ClaimsType,
    /// Claim (name or JSON pointer) to metadata key.
    #[serde(default)]
    pub claim_mappings: BTreeMap<String, String>,
    /// The claim that names the user.
    #[serde(default = "sub")]
    pub user_claim: String,
    /// `user_claim` is a JSON pointer.
    #[serde(default)]
    pub user_claim_json_pointer: bool,
    /// Seconds of clock skew allowed on every time claim (0: 60; -1: none).
    #[serde(default)]
    pub clock_skew_leeway: i64,
    /// Seconds allowed past `exp` (0: 150; -1: none).
    #[serde(default)]
    pub expiration_leeway: i64,
    /// Seconds allowed before `nbf` (0: 150; -1: none).
    #[serde(default)]
    pub not_before_leeway: i64,
    /// What its logins' tokens get.
    #[serde(default)]
    pub token: TokenParams,
}

fn jwt() -> String {
    "jwt".into()
}

fn sub() -> String {
    "sub".into()
}

impl Default for Role {
    fn default() -> Self {
        Self {
            role_type: jwt(),
            bound_audiences: Vec::new(),
            bound_subject: String::new(),
            bound_claims: BTreeMap::new(),
            bound_claims_type: ClaimsType::String,
            claim_mappings: BTreeMap::new(),
            user_claim: sub(),
            user_claim_json_pointer: false,
            clock_skew_leeway: 0,
            expiration_leeway: 0,
            not_before_leeway: 0,
            token: TokenParams::default(),
        }
    }
}

/// A leeway: seconds; 0 for the default, -1 for none.
fn leeway(req: &Request, name: &'static str) -> Result<Option<i64>, Error> {
    let bad = || {
        Error::field(
            name,
            format!("{name}: seconds up to {MAX_LEEWAY}, 0 for the default or -1 for none"),
        )
    };
    let n = match req.data.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    if !(-1..=MAX_LEEWAY).contains(&n) {
        return Err(bad());
    }
    Ok(Some(n))
}

/// The effective leeway of `value` whose default is `default`.
pub fn effective(value: i64, default: i64) -> i64 {
    match value {
        0 => default,
        v if v < 0 => 0,
        v => v,
    }
}

fn bounded(name: &'static str, s: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > MAX_TEXT {
        return Err(Error::field(
            name,
            format!("{name}: names and values are 1 to {MAX_TEXT} bytes"),
        ));
    }
    Ok(())
}

fn bound_claims(req: &Request) -> Result<Option<BTreeMap<String, Expected>>, Error> {
    let bad = || {
        Error::field(
            "bound_claims",
            "bound_claims: an object of claims to a string or a list of strings",
        )
    };
    let map = match req.data.get("bound_claims") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad()),
    };
    if map.len() > MAX_CLAIMS {
        return Err(Error::field(
            "bound_claims",
            format!("bound_claims: at most {MAX_CLAIMS} claims"),
        ));
    }
    let mut out = BTreeMap::new();
    for (claim, value) in map {
        bounded("bound_claims", claim)?;
        let expected = match value {
            Value::String(s) => Expected::One(s.clone()),
            Value::Array(items) if !items.is_empty() && items.len() <= MAX_VALUES => {
                Expected::Any(
                    items
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => return Err(bad()),
        };
        for v in expected.values() {
            bounded("bound_claims", v)?;
        }
        out.insert(claim.clone(), expected);
    }
    Ok(Some(out))
}

impl Role {
    /// Applies the fields `req` gives, and checks the result.
    pub fn update(&mut self, req: &Request) -> Result<(), Error> {
        match req.str("role_type").map(str::trim) {
            None | Some("" | "jwt") => {}
            Some("oidc") => {
                return Err(Error::field(
                    "role_type",
                    "role_type: the OIDC browser flow is not offered; use role_type=jwt",
                ));
            }
            Some(_) => return Err(Error::field("role_type", "role_type must be jwt")),
        }
        if let Some(a) = req.list("bound_audiences")? {
            if a.len() > MAX_VALUES {
                return Err(Error::field(
                    "bound_audiences",
                    "bound_audiences: too many",
                ));
            }
            for v in &a {
                bounded("bound_audiences", v)?;
            }
            self.bound_audiences = a;
        }
        if let Some(s) = req.str("bound_subject") {
            if s.len() > MAX_TEXT {
                return Err(Error::field("bound_subject", "bound_subject: too long"));
            }
            self.bound_subject = s.to_owned();
        }
        if let Some(c) = bound_claims(req)? {
            self.bound_claims = c;
        }
        match req.str("bound_claims_type").map(str::trim) {
            None | Some("") => {}
            Some("string") => self.bound_claims_type = ClaimsType::String,
            Some("glob") => self.bound_claims_type = ClaimsType::Glob,
            Some(_) => {
                return Err(Error::field(
                    "bound_claims_type",
                    "bound_claims_type must be string or glob",
                ));
            }
        }
        if let Some(m) = req.string_map("claim_mappings")? {
            if m.len() > MAX_CLAIMS {
                return Err(Error::field(
                    "claim_mappings",
                    format!("claim_mappings: at most {MAX_CLAIMS} claims"),
                ));
            }
            let mut targets = std::collections::BTreeSet::new();
            for (claim, key) in &m {
                bounded("claim_mappings", claim)?;
                bounded("claim_mappings", key)?;
                if RESERVED_METADATA.contains(&key.as_str()) {
                    return Err(Error::field(
                        "claim_mappings",
                        format!("claim_mappings: metadata key {key:?} is reserved"),
                    ));
                }
                if !targets.insert(key) {
                    return Err(Error::field(
                        "claim_mappings",
                        format!("claim_mappings: two claims map to {key:?}"),
                    ));
                }
            }
            self.claim_mappings = m;
        }
        if let Some(u) = req.str("user_claim").map(str::trim).filter(|u| !u.is_empty()) {
            bounded("user_claim", u)?;
            self.user_claim = u.to_owned();
        }
        if let Some(p) = req.bool("user_claim_json_pointer")? {
            self.user_claim_json_pointer = p;
        }
        if self.user_claim_json_pointer && !self.user_claim.starts_with('/') {
            return Err(Error::field(
                "user_claim",
                "user_claim: a JSON pointer starts with /",
            ));
        }
        if let Some(l) = leeway(req, "clock_skew_leeway")? {
            self.clock_skew_leeway = l;
        }
        if let Some(l) = leeway(req, "expiration_leeway")? {
            self.expiration_leeway = l;
        }
        if let Some(l) = leeway(req, "not_before_leeway")? {
            self.not_before_leeway = l;
        }
        self.token.update(req)?;
        if self.bound_audiences.is_empty()
            && self.bound_subject.is_empty()
            && self.bound_claims.is_empty()
        {
            return Err(Error::invalid(
                "a JWT role needs at least one of bound_audiences, bound_subject or bound_claims, or any token its issuer signs logs in",
            ));
        }
        Ok(())
    }

    /// As a read shows it.
    pub fn describe(&self) -> Value {
        let mut out = Map::new();
        out.insert("role_type".into(), json!(self.role_type));
        out.insert("bound_audiences".into(), json!(self.bound_audiences));
        out.insert("bound_subject".into(), json!(self.bound_subject));
        out.insert("bound_claims".into(), json!(self.bound_claims));
        out.insert("bound_claims_type".into(), json!(self.bound_claims_type));
        out.insert("claim_mappings".into(), json!(self.claim_mappings));
        out.insert("user_claim".into(), json!(self.user_claim));
        out.insert(
            "user_claim_json_pointer".into(),
            json!(self.user_claim_json_pointer),
        );
        out.insert("clock_skew_leeway".into(), json!(self.clock_skew_leeway));
        out.insert("expiration_leeway".into(), json!(self.expiration_leeway));
        out.insert("not_before_leeway".into(), json!(self.not_before_leeway));
        self.token.describe(&mut out);
        Value::Object(out)
    }
}
