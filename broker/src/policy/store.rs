//! Policies at rest: their text, sealed under `core/policies/acl/<name>`,
//! and the ACLs they make, built once per set of names and cached until a
//! policy changes (docs/architecture.md, "Tokens and policies").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{Acl, Policy, PolicyError, normalize_name};
use crate::barrier::SealedStorage;

const PREFIX: &str = ACL_PREFIX;

/// Where ACL policies are stored, one entry per policy.
pub const ACL_PREFIX: &str = "core/policies/acl/";

/// The `default` policy until an operator rewrites it: what every token
/// needs to look after itself and its own leases.
pub const DEFAULT_POLICY: &str = r#"# Granted to every token unless it is created without it.
# Rewrite it with `PUT sys/policies/acl/default`; it cannot be deleted.

# A token may look itself up, renew itself and revoke itself.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# It may ask what it may do.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# It may look up and renew the leases it holds (their ids are its secret).
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}

# It may wrap data, and look up and unwrap what was wrapped for it.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
"#;

/// The built-in policy of wrapping tokens: they can do nothing but be
/// looked up, unwrapped or rewrapped.
pub const RESPONSE_WRAPPING_POLICY: &str = r#"path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/rewrap" {
  capabilities = ["update"]
}
"#;

/// More distinct policy sets than this and the cache starts over: the
/// sets come from tokens, which anyone with create rights can vary.
const MAX_CACHED_ACLS: usize = 4096;

/// ACLs by the (normalized, sorted) policy names that make them.
#[derive(Debug, Default)]
struct AclCache {
    /// Bumped by every policy write: an ACL built from text read before a
    /// write is not kept after it.
    generation: AtomicU64,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
}

/// Reads and writes policies in sealed storage.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    store: SealedStorage,
    cache: Arc<AclCache>,
}

impl PolicyStore {
    /// Policies kept in `store`.
    pub fn new(store: SealedStorage) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// The policy `name` (any case), built-ins included; `None` if there is
    /// no such policy.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, PolicyError> {
        let name = normalize_name(name)?;
        if name == Policy::ROOT {
            return Ok(Some(Arc::new(Policy::root())));
        }
        if name == Policy::RESPONSE_WRAPPING {
            return Policy::parse(&name, RESPONSE_WRAPPING_POLICY).map(|p| Some(Arc::new(p)));
        }
        match self.stored_text(&name).await? {
            Some(text) => Policy::parse(&name, &text).map(|p| Some(Arc::new(p))),
            None => Ok(None),
        }
    }

    /// The text of the policy `name` as stored, not parsed again: an
    /// operator can read back a policy a stricter broker no longer takes,
    /// to fix it. The `root` policy's text is empty.
    pub async fn text(&self, name: &str) -> Result<Option<String>, PolicyError> {
        let name = normalize_name(name)?;
        if name == Policy::ROOT {
            return Ok(Some(String::new()));
        }
        if name == Policy::RESPONSE_WRAPPING {
            return Ok(Some(RESPONSE_WRAPPING_POLICY.to_owned()));
        }
        self.stored_text(&name).await
    }

    /// The text stored for `name` (already normalized), or the built-in
    /// `default` text until that is rewritten.
    async fn stored_text(&self, name: &str) -> Result<Option<String>, PolicyError> {
        let text: Option<String> = self.store.get(&key(name)).await?;
        Ok(text.or_else(|| (name == Policy::DEFAULT).then(|| DEFAULT_POLICY.to_owned())))
    }

    /// Checks `text` and stores it as the policy `name`, replacing any
    /// policy of that name.
    pub async fn put(&self, name: &str, text: &str) -> Result<(), PolicyError> {
        let policy = Policy::parse(name, text)?;
        if policy.name() == Policy::RESPONSE_WRAPPING {
            return Err(PolicyError::BuiltIn(
                "the response-wrapping policy is built in and cannot be changed",
            ));
        }
        self.store.put(&key(policy.name()), &text).await?;
        self.invalidate();
        Ok(())
    }

    /// Deletes the policy `name`; deleting one that does not exist is not
    /// an error (as in Vault). The built-ins cannot be deleted.
    pub async fn delete(&self, name: &str) -> Result<(), PolicyError> {
        let name = normalize_name(name)?;
        match name.as_str() {
            Policy::ROOT => Err(PolicyError::BuiltIn("cannot delete the root policy")),
            Policy::DEFAULT => Err(PolicyError::BuiltIn("cannot delete the default policy")),
            Policy::RESPONSE_WRAPPING => Err(PolicyError::BuiltIn(
                "cannot delete the response-wrapping policy",
            )),
            _ => {
                self.store.delete(&key(&name)).await?;
                self.invalidate();
                Ok(())
            }
        }
    }

    /// Every policy's name, sorted, `root` and `default` included (as in
    /// Vault, not the wrapping tokens' internal `response-wrapping`).
    pub async fn list(&self) -> Result<Vec<String>, PolicyError> {
        let mut names: Vec<String> = self
            .store
            .list(PREFIX)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(PREFIX).map(str::to_owned))
            .chain([Policy::DEFAULT.to_owned(), Policy::ROOT.to_owned()])
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Forgets every ACL built so far (a policy changed, here or on
    /// another node).
    pub(crate) fn invalidate(&self) {
        self.cache.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut acls) = self.cache.acls.write() {
            acls.clear();
        }
    }

    /// The ACL `names` (normalized and sorted, as tokens hold them) make
    /// together: built once and shared until a policy is written or
    /// deleted.
    pub async fn cached_acl(&self, names: &[String]) -> Result<Arc<Acl>, PolicyError> {
        if let Ok(acls) = self.cache.acls.read()
            && let Some(acl) = acls.get(names)
        {
            return Ok(acl.clone());
        }
        let generation = self.cache.generation.load(Ordering::SeqCst);
        let acl = Arc::new(self.acl(names).await?);
        if let Ok(mut acls) = self.cache.acls.write()
            && self.cache.generation.load(Ordering::SeqCst) == generation
        {
            if acls.len() >= MAX_CACHED_ACLS {
                acls.clear();
            }
            acls.insert(names.to_vec(), acl.clone());
        }
        Ok(acl)
    }

    /// The ACL that `names` make together, read and built afresh. Names of
    /// policies that do not exist grant nothing (a token may outlive a
    /// policy it was given).
    pub async fn acl(&self, names: &[String]) -> Result<Acl, PolicyError> {
        let mut policies = Vec::with_capacity(names.len());
        for name in names {
            if let Some(policy) = self.get(name).await? {
                policies.push(policy);
            }
        }
        Ok(Acl::new(policies.iter().map(|p| &**p)))
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}
