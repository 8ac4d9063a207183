//! The `token_*` fields every auth method's roles share (Vault's
//! `tokenutil`): what a token made at a login holds and how long it lives.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::framework::{Error, Field, Mount, Path, Request};
use crate::token::{TokenEntry, TokenType, normalize_policies};

/// What a login's token gets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenParams {
    /// Policies (normalized).
    #[serde(default)]
    pub policies: Vec<String>,
    /// Its TTL, seconds (0: the mount's default).
    #[serde(default)]
    pub ttl: u64,
    /// Its max TTL, seconds (0: the mount's max).
    #[serde(default)]
    pub max_ttl: u64,
    /// A periodic token's period, seconds.
    #[serde(default)]
    pub period: u64,
    /// A hard limit no renewal passes, seconds.
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// Uses (0: unlimited).
    #[serde(default)]
    pub num_uses: u32,
    /// Service or batch.
    #[serde(default)]
    pub token_type: TokenType,
    /// Networks the token may be used from.
    #[serde(default)]
    pub bound_cidrs: Vec<ipnet::IpNet>,
    /// Leave the default policy off.
    #[serde(default)]
    pub no_default_policy: bool,
}

/// Adds the `token_*` fields to a role's path.
pub fn fields<S>(path: Path<S>) -> Path<S> {
    path.field(Field::comma_list("token_policies", "policies of the tokens a login gets").clear())
        .field(Field::comma_list("policies", "the older name of token_policies").clear())
        .field(Field::duration("token_ttl", "their TTL (0: the mount's default)").clear())
        .field(Field::duration("token_max_ttl", "their max TTL (0: the mount's)").clear())
        .field(Field::duration("token_period", "make them periodic").clear())
        .field(Field::duration("token_explicit_max_ttl", "a hard limit no renewal passes").clear())
        .field(Field::int("token_num_uses", "uses each (0: unlimited)").clear())
        .field(Field::string("token_type", "service (default) or batch").clear())
        .field(
            Field::comma_list("token_bound_cidrs", "networks the tokens may be used from").clear(),
        )
        .field(Field::bool("token_no_default_policy", "leave the default policy off").clear())
}

/// Parses CIDR blocks (or bare addresses) of `field`.
pub fn parse_cidrs(field: &'static str, items: &[String]) -> Result<Vec<ipnet::IpNet>, Error> {
    items
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    Error::field(
                        field,
                        format!("{field}: {item:?} is not a CIDR block or an address"),
                    )
                })
        })
        .collect()
}

impl TokenParams {
    /// Applies the `token_*` fields `req` gives.
    pub fn update(&mut self, req: &Request) -> Result<(), Error> {
        if let Some(p) = req.list("token_policies")?.or(req.list("policies")?) {
            self.policies = normalize_policies(&p)
                .map_err(|e| Error::field("token_policies", e.to_string()))?;
            if self
                .policies
                .iter()
                .any(|p| p == crate::policy::Policy::ROOT)
            {
                return Err(Error::field(
                    "token_policies",
                    "token_policies: a login never hands out the root policy",
                ));
            }
        }
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        if let Some(t) = secs(req.duration("token_ttl")?) {
            self.ttl = t;
        }
        if let Some(t) = secs(req.duration("token_max_ttl")?) {
            self.max_ttl = t;
        }
        if self.max_ttl > 0 && self.ttl > self.max_ttl {
            return Err(Error::field(
                "token_ttl",
                "token_ttl cannot be longer than token_max_ttl",
            ));
        }
        if let Some(t) = secs(req.duration("token_period")?) {
            self.period = t;
        }
        if let Some(t) = secs(req.duration("token_explicit_max_ttl")?) {
            self.explicit_max_ttl = t;
        }
        if let Some(n) = req.uint("token_num_uses", u64::from(u32::MAX))? {
            self.num_uses = u32::try_from(n).unwrap_or(u32::MAX);
        }
        match req.str("token_type") {
            None => {}
            Some("service" | "default" | "default-service" | "") => {
                self.token_type = TokenType::Service;
            }
            Some("batch" | "default-batch") => self.token_type = TokenType::Batch,
            Some(_) => {
                return Err(Error::field(
                    "token_type",
                    "token_type must be service or batch",
                ));
            }
        }
        if self.token_type == TokenType::Batch && (self.period > 0 || self.num_uses > 0) {
            return Err(Error::field(
                "token_type",
                "token_type: batch tokens cannot be periodic or limited in uses",
            ));
        }
        if let Some(c) = req.list("token_bound_cidrs")? {
            self.bound_cidrs = parse_cidrs("token_bound_cidrs", &c)?;
        }
        if let Some(b) = req.bool("token_no_default_policy")? {
            self.no_default_policy = b;
        }
        Ok(())
    }

    /// The fields as a role read shows them.
    pub fn describe(&self, out: &mut Map<String, Value>) {
        out.insert("token_policies".into(), json!(self.policies));
        out.insert("policies".into(), json!(self.policies));
        out.insert("token_ttl".into(), json!(self.ttl));
        out.insert("token_max_ttl".into(), json!(self.max_ttl));
        out.insert("token_period".into(), json!(self.period));
        out.insert(
            "token_explicit_max_ttl".into(),
            json!(self.explicit_max_ttl),
        );
        out.insert("token_num_uses".into(), json!(self.num_uses));
        out.insert("token_type".into(), json!(self.token_type.as_str()));
        out.insert(
            "token_bound_cidrs".into(),
            json!(
                self.bound_cidrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        out.insert(
            "token_no_default_policy".into(),
            json!(self.no_default_policy),
        );
    }

    /// The entry of a token issued at a login on `mount` at `now`: an
    /// orphan (a login has no parent token), bounded by the mount's TTLs.
    pub fn entry(
        &self,
        mount: &Mount,
        path: &str,
        display_name: String,
        meta: std::collections::BTreeMap<String, String>,
        now: i64,
    ) -> TokenEntry {
        let mut policies = self.policies.clone();
        if !self.no_default_policy && !policies.iter().any(|p| p == crate::policy::Policy::DEFAULT)
        {
            policies.push(crate::policy::Policy::DEFAULT.to_owned());
            policies.sort();
        }
        let mount_max = mount.max_ttl.as_secs();
        let mut max = match self.max_ttl {
            0 => mount_max,
            m => m.min(mount_max),
        };
        if self.explicit_max_ttl > 0 {
            max = max.min(self.explicit_max_ttl);
        }
        let at = |s: u64| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX));
        let ttl = if self.period > 0 {
            self.period
        } else if self.ttl > 0 {
            self.ttl.min(max)
        } else {
            mount.default_ttl.as_secs().min(max)
        };
        // A periodic token lives as long as it is renewed, unless it has
        // a hard limit.
        let max_expire_time = if self.period > 0 && self.explicit_max_ttl == 0 {
            0
        } else {
            at(max)
        };
        let mut expire_time = at(ttl);
        if max_expire_time > 0 {
            expire_time = expire_time.min(max_expire_time);
        }
        TokenEntry {
            policies,
            path: path.to_owned(),
            display_name,
            meta,
            num_uses: self.num_uses,
            creation_time: now,
            creation_ttl: u64::try_from(expire_time.saturating_sub(now)).unwrap_or(0),
            expire_time,
            explicit_max_ttl: self.explicit_max_ttl,
            max_expire_time,
            period: self.period,
            renewable: self.token_type == TokenType::Service,
            orphan: true,
            token_type: self.token_type,
            mount_accessor: Some(mount.accessor.clone()),
            bound_cidrs: self.bound_cidrs.clone(),
            ..TokenEntry::default()
        }
    }
}
