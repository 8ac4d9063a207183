//! Lease ids: the request's path and a random part, as in Vault
//! (`database/creds/<role>/<random>`, `pki/issue/<role>/<random>`).

use std::fmt;

/// A lease id. The random part makes ids unguessable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseId(String);

impl LeaseId {
    /// A fresh id for a credential of `role` on `mount`, issued by the
    /// mount's `endpoint` (`creds`, `issue`, `sign`).
    pub fn generate(mount: &str, endpoint: &str, role: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Self(format!(
            "{}/{endpoint}/{role}/{}",
            mount.trim_end_matches('/'),
            hex::encode(bytes)
        )))
    }

    /// An id read back from a client or storage.
    pub fn parse(id: &str) -> Self {
        Self(id.trim_start_matches('/').to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
