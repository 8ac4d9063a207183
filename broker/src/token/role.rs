//! Token roles (`auth/token/roles/{name}`): what tokens made through
//! `auth/token/create/{role}` may be, whatever their creator holds.

use serde::{Deserialize, Serialize};

/// Which type a role's tokens are, as Vault names the choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RoleTokenType {
    /// Always service.
    Service,
    /// Always batch.
    Batch,
    /// Service unless the request asks for batch.
    #[default]
    DefaultService,
    /// Batch unless the request asks for service.
    DefaultBatch,
}

impl RoleTokenType {
    /// Parses the API's name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "service" => Self::Service,
            "batch" => Self::Batch,
            "default-service" | "default" | "" => Self::DefaultService,
            "default-batch" => Self::DefaultBatch,
            _ => return None,
        })
    }

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Batch => "batch",
            Self::DefaultService => "default-service",
            Self::DefaultBatch => "default-batch",
        }
    }
}

/// A token role.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TokenRole {
    /// Its name.
    pub name: String,
    /// Policies its tokens may have (empty: any the creator could give).
    #[serde(default)]
    pub allowed_policies: Vec<String>,
    /// Policies its tokens may never have.
    #[serde(default)]
    pub disallowed_policies: Vec<String>,
    /// Its tokens have no parent.
    #[serde(default)]
    pub orphan: bool,
    /// Its tokens are periodic with this period, seconds (0: not).
    #[serde(default)]
    pub period: u64,
    /// Whether its tokens may be renewed.
    #[serde(default = "yes")]
    pub renewable: bool,
    /// The hard limit on its tokens' life, seconds (0: none).
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// Service, batch, or a default either way.
    #[serde(default)]
    pub token_type: RoleTokenType,
}

fn yes() -> bool {
    true
}
