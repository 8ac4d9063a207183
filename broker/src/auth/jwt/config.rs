//! A JWT mount's `config`: where its keys come from (exactly one of PEM
//! keys, a JWKS URL, or an OIDC discovery URL), the issuer its tokens must
//! name, and the algorithms they may be signed with.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::keys::{Alg, Key};
use crate::framework::{Error, Request};

/// The most PEM keys a config holds.
const MAX_PUBKEYS: usize = 64;
/// The longest URL, CA bundle or issuer accepted (bytes).
const MAX_TEXT: usize = 64 * 1024;

/// The stored config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// OIDC discovery base URL (no `.well-known` part).
    #[serde(default)]
    pub oidc_discovery_url: String,
    /// CA certificates trusted for it (PEM; empty: the built-in roots).
    #[serde(default)]
    pub oidc_discovery_ca_pem: String,
    /// The issuer's JWKS URL.
    #[serde(default)]
    pub jwks_url: String,
    /// CA certificates trusted for it (PEM; empty: the built-in roots).
    #[serde(default)]
    pub jwks_ca_pem: String,
    /// PEM public keys.
    #[serde(default)]
    pub jwt_validation_pubkeys: Vec<String>,
    /// Accepted algorithms (empty: [`Alg::DEFAULT`]).
    #[serde(default)]
    pub jwt_supported_algs: Vec<String>,
    /// The `iss` every token must name (empty: any, or the discovered one).
    #[serde(default)]
    pub bound_issuer: String,
    /// The role a login that names none uses.
    #[serde(default)]
    pub default_role: String,
}

/// Where a config's keys come from.
#[derive(Debug)]
pub enum Source<'a> {
    /// Not configured.
    None,
    /// PEM keys in the config.
    Pubkeys(&'a [String]),
    /// A JWKS URL.
    Jwks {
        /// The URL.
        url: &'a str,
        /// CAs to trust.
        ca_pem: &'a str,
    },
    /// OIDC discovery.
    Discovery {
        /// The base URL.
        url: &'a str,
        /// CAs to trust.
        ca_pem: &'a str,
    },
}

impl Source<'_> {
    /// Whether its keys are fetched.
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Jwks { .. } | Self::Discovery { .. })
    }
}

fn text(req: &Request, name: &'static str) -> Result<String, Error> {
    let value = req.str(name).unwrap_or_default().trim().to_owned();
    if value.len() > MAX_TEXT {
        return Err(Error::field(name, format!("{name}: too long")));
    }
    Ok(value)
}

fn check_ca(name: &'static str, pem_text: &str) -> Result<(), Error> {
    if pem_text.is_empty() {
        return Ok(());
    }
    let blocks = pem::parse_many(pem_text)
        .map_err(|_| Error::field(name, format!("{name}: not PEM")))?;
    if blocks.is_empty() || blocks.iter().any(|b| b.tag() != "CERTIFICATE") {
        return Err(Error::field(
            name,
            format!("{name}: PEM certificates are needed"),
        ));
    }
    Ok(())
}

impl Config {
    /// A config written with `req`'s fields, checked (a write replaces the
    /// whole config, as Vault's does).
    pub fn from_request(req: &Request) -> Result<Self, Error> {
        let config = Self {
            oidc_discovery_url: text(req, "oidc_discovery_url")?,
            oidc_discovery_ca_pem: text(req, "oidc_discovery_ca_pem")?,
            jwks_url: text(req, "jwks_url")?,
            jwks_ca_pem: text(req, "jwks_ca_pem")?,
            jwt_validation_pubkeys: req
                .list("jwt_validation_pubkeys")?
                .unwrap_or_default(),
            jwt_supported_algs: req.list("jwt_supported_algs")?.unwrap_or_default(),
            bound_issuer: text(req, "bound_issuer")?,
            default_role: text(req, "default_role")?,
        };
        let sources = [
            !config.oidc_discovery_url.is_empty(),
            !config.jwks_url.is_empty(),
            !config.jwt_validation_pubkeys.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(Error::invalid(
                "exactly one of oidc_discovery_url, jwks_url and jwt_validation_pubkeys must be set",
            ));
        }
        if config.jwt_validation_pubkeys.len() > MAX_PUBKEYS {
            return Err(Error::field(
                "jwt_validation_pubkeys",
                format!("jwt_validation_pubkeys: at most {MAX_PUBKEYS} keys"),
            ));
        }
        for (i, key) in config.jwt_validation_pubkeys.iter().enumerate() {
            Key::from_pem(key).map_err(|why| {
                Error::field(
                    "jwt_validation_pubkeys",
                    format!("jwt_validation_pubkeys: key {i}: {why}"),
                )
            })?;
        }
        for alg in &config.jwt_supported_algs {
            if Alg::parse(alg).is_none() {
                return Err(Error::field(
                    "jwt_supported_algs",
                    format!(
                        "jwt_supported_algs: {alg:?} is not accepted; use {} (none and the HMAC algorithms never are)",
                        Alg::ALL.map(Alg::name).join(", ")
                    ),
                ));
            }
        }
        check_ca("jwks_ca_pem", &config.jwks_ca_pem)?;
        check_ca("oidc_discovery_ca_pem", &config.oidc_discovery_ca_pem)?;
        if !config.default_role.is_empty() {
            crate::engine::valid_name(&config.default_role)
                .map_err(|_| Error::field("default_role", "default_role: not a role name"))?;
        }
        Ok(config)
    }

    /// Where its keys come from.
    pub fn source(&self) -> Source<'_> {
        if !self.jwt_validation_pubkeys.is_empty() {
            Source::Pubkeys(&self.jwt_validation_pubkeys)
        } else if !self.jwks_url.is_empty() {
            Source::Jwks {
                url: &self.jwks_url,
                ca_pem: &self.jwks_ca_pem,
            }
        } else if !self.oidc_discovery_url.is_empty() {
            Source::Discovery {
                url: &self.oidc_discovery_url,
                ca_pem: &self.oidc_discovery_ca_pem,
            }
        } else {
            Source::None
        }
    }

    /// The field a source's failure is about.
    pub fn source_field(&self) -> &'static str {
        match self.source() {
            Source::Discovery { .. } => "oidc_discovery_url",
            _ => "jwks_url",
        }
    }

    /// The accepted algorithms.
    pub fn algs(&self) -> Vec<Alg> {
        let listed: Vec<Alg> = self
            .jwt_supported_algs
            .iter()
            .filter_map(|a| Alg::parse(a))
            .collect();
        if listed.is_empty() {
            Alg::DEFAULT.to_vec()
        } else {
            listed
        }
    }

    /// Names the key source: a cached key set is used only while it
    /// matches.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            &self.oidc_discovery_url,
            &self.oidc_discovery_ca_pem,
            &self.jwks_url,
            &self.jwks_ca_pem,
        ]
        .into_iter()
        .chain(&self.jwt_validation_pubkeys)
        {
            h.update(part.len().to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// As a read shows it.
    pub fn describe(&self) -> Value {
        json!({
            "oidc_discovery_url": self.oidc_discovery_url,
            "oidc_discovery_ca_pem": self.oidc_discovery_ca_pem,
            "jwks_url": self.jwks_url,
            "jwks_ca_pem": self.jwks_ca_pem,
            "jwt_validation_pubkeys": self.jwt_validation_pubkeys,
            "jwt_supported_algs": self.jwt_supported_algs,
            "bound_issuer": self.bound_issuer,
            "default_role": self.default_role,
        })
    }
}
