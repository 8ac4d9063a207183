//! The token tree at rest, and the one way a token is revoked.
//!
//! Records, all sealed:
//! - `core/token/id/<hash>`: the entry of the service token whose keyed
//!   hash is `<hash>`;
//! - `core/token/accessor/<accessor>`: which hash an accessor stands for;
//! - `core/token/parent/<parent>/<child>`: the tree, by accessors;
//! - `core/token/roles/<name>`: token roles;
//! - `core/token/cubbyhole/<accessor>/…`: what a wrapping token guards;
//! - `core/token/mount/<mount accessor>/<accessor>`: the tokens an auth
//!   mount issued, revoked when it is disabled.
//!
//! Each service token's life is the lease `auth/token/create/<hash>`.
//! Revoking writes that lease as `revoking` first, so a revocation the
//! broker did not finish (a crash, a database that was down) is finished
//! by the expiration worker, which calls back into [`TokenStore`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::secret::{self, Form, TokenKey};
use super::{TokenEntry, TokenError, TokenRole, TokenType};
use crate::barrier::SealedStorage;
use crate::clock;
use crate::lease::{LeaseError, Leases, TokenRevoker};

const KEY_KEY: &str = "core/token/key";
const ID_PREFIX: &str = "core/token/id/";
const ACCESSOR_PREFIX: &str = "core/token/accessor/";
const PARENT_PREFIX: &str = "core/token/parent/";
const ROLE_PREFIX: &str = "core/token/roles/";
const CUBBY_PREFIX: &str = "core/token/cubbyhole/";
const MOUNT_PREFIX: &str = "core/token/mount/";
/// What batch tokens are sealed under (the barrier binds a value to it).
const BATCH_AAD: &str = "core/token/batch";

/// What an accessor stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessorRecord {
    /// The token's keyed hash.
    id: String,
}

/// The token that made a request, once authenticated. `Debug` never shows
/// the token.
pub struct TokenCaller {
    /// Its entry.
    pub entry: TokenEntry,
    /// Its keyed hash (service tokens; batch tokens are not stored).
    pub id: Option<String>,
    /// This request used its last use: it is revoked once answered.
    pub last_use: bool,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for TokenCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCaller")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

impl TokenCaller {
    /// The token itself (for `lookup-self`, which shows it to its holder).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The accessor whose revocation revokes the leases this caller makes:
    /// its own, or for a batch token its parent's (none for an orphan).
    pub fn lease_accessor(&self) -> Option<String> {
        match self.entry.token_type {
            TokenType::Service => Some(self.entry.accessor.clone()),
            TokenType::Batch => self.entry.parent.clone(),
        }
    }
}

fn lease_id(id: &str) -> String {
    format!("auth/token/create/{id}")
}

/// The latest expiry a lease row holds (the end of year 9999).
const LATEST: i64 = 253_402_300_799;

/// Service tokens.
pub struct TokenStore {
    store: SealedStorage,
    key: TokenKey,
    leases: Arc<Leases>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").finish_non_exhaustive()
    }
}

impl TokenStore {
    /// The store in `store` (its hash key made on first open), revoking
    /// leases through `leases`, which it registers with to finish
    /// revocations the worker finds.
    pub async fn open(store: SealedStorage, leases: Arc<Leases>) -> Result<Arc<Self>, TokenError> {
        let key = match store.get::<Zeroizing<String>>(KEY_KEY).await? {
            Some(hex_key) => TokenKey::from_bytes(Zeroizing::new(
                hex::decode(hex_key.as_str())
                    .map_err(|_| TokenError::Corrupt("the token key is damaged".into()))?,
            )),
            None => {
                let key = TokenKey::generate()?;
                // Another node may have made it first: use whichever landed.
                store
                    .create(KEY_KEY, &Zeroizing::new(hex::encode(key.bytes())))
                    .await?;
                let hex_key: Zeroizing<String> = store
                    .get(KEY_KEY)
                    .await?
                    .ok_or_else(|| TokenError::Corrupt("the token key vanished".into()))?;
                TokenKey::from_bytes(Zeroizing::new(
                    hex::decode(hex_key.as_str())
                        .map_err(|_| TokenError::Corrupt("the token key is damaged".into()))?,
                ))
            }
        };
        let tokens = Arc::new(Self { store, key, leases });
        let weak: std::sync::Weak<dyn TokenRevoker> =
            Arc::downgrade(&(tokens.clone() as Arc<dyn TokenRevoker>));
        tokens.leases.set_token_revoker(weak);
        Ok(tokens)
    }

    /// Stores `entry` (made by [`super::plan`]) as a new token, `chosen` as
    /// its value if given; returns the token, which is never seen again,
    /// and the entry with its accessor.
    pub async fn create(
        &self,
        mut entry: TokenEntry,
        chosen: Option<Zeroizing<String>>,
    ) -> Result<(Zeroizing<String>, TokenEntry), TokenError> {
        if entry.token_type == TokenType::Batch {
            // No accessor: nothing is stored that one could name.
            entry.accessor = String::new();
            let plain = Zeroizing::new(
                serde_json::to_vec(&entry).map_err(|e| TokenError::Corrupt(e.to_string()))?,
            );
            let sealed = self.store.barrier().seal(BATCH_AAD, &plain)?;
            let token = secret::batch_token(&sealed);
            if token.len() > secret::MAX_TOKEN_LEN {
                return Err(TokenError::invalid(
                    "meta",
                    "meta: too much metadata for a batch token, which carries it all; use fewer policies or less metadata, or a service token",
                ));
            }
            crate::metrics::metrics().token_created(entry.token_type.as_str());
            return Ok((token, entry));
        }
        let token = match chosen {
            Some(t) => {
                if t.is_empty()
                    || t.len() > secret::MAX_TOKEN_LEN
                    || secret::form(&t) == Form::Batch
                {
                    return Err(TokenError::invalid(
                        "id",
                        "id: a chosen token must be 1-8192 characters and not start with brb.",
                    ));
                }
                t
            }
            None => secret::generate_service()?,
        };
        let id = self.key.id(&token);
        entry.accessor = secret::generate_accessor();
        // The lease first: a crash after it leaves a lease whose revocation
        // finds nothing, never a token nothing will expire.
        let expires_at = if entry.expire_time > 0 {
            entry.expire_time
        } else {
            entry
                .creation_time
                .saturating_add(crate::duration::capped_secs(crate::duration::MAX_TTL))
                .min(LATEST)
        };
        // A chosen id may name a token that exists: its lease is never
        // overwritten (that would leave the existing token without one).
        if !self
            .leases
            .insert_token_lease(
                &lease_id(&id),
                json!({ "accessor": entry.accessor }),
                entry.creation_time,
                expires_at,
            )
            .await?
        {
            return Err(TokenError::invalid("id", "id: that token already exists"));
        }
        if !self
            .store
            .create(&format!("{ID_PREFIX}{id}"), &entry)
            .await?
        {
            return Err(TokenError::invalid("id", "id: that token already exists"));
        }
        self.store
            .put(
                &format!("{ACCESSOR_PREFIX}{}", entry.accessor),
                &AccessorRecord { id: id.clone() },
            )
            .await?;
        if let Some(parent) = &entry.parent {
            self.store
                .put(&format!("{PARENT_PREFIX}{parent}/{}", entry.accessor), &())
                .await?;
        }
        if let Some(mount) = &entry.mount_accessor {
            self.store
                .put(&format!("{MOUNT_PREFIX}{mount}/{}", entry.accessor), &())
                .await?;
        }
        crate::metrics::metrics().token_created(entry.token_type.as_str());
        Ok((token, entry))
    }

    /// The token `token` stands for, if it is live: known, not expired, not
    /// being revoked, and (for a batch token) with a live parent. Reading
    /// does not spend a use.
    pub async fn find(&self, token: &str) -> Result<Option<TokenCaller>, TokenError> {
        if token.is_empty() || token.len() > secret::MAX_TOKEN_LEN {
            return Ok(None);
        }
        let now = clock::unix_now_signed();
        match secret::form(token) {
            Form::Batch => {
                let Some(sealed) = secret::batch_payload(token) else {
                    return Ok(None);
                };
                // Not ours, or tampered with: no token, not an error.
                let Ok(plain) = self.store.barrier().open(BATCH_AAD, &sealed) else {
                    return Ok(None);
                };
                let Ok(entry) = serde_json::from_slice::<TokenEntry>(&plain) else {
                    return Ok(None);
                };
                if entry.expired(now) {
                    return Ok(None);
                }
                if let Some(parent) = &entry.parent
                    && self.by_accessor(parent).await?.is_none()
                {
                    return Ok(None);
                }
                Ok(Some(TokenCaller {
                    entry,
                    id: None,
                    last_use: false,
                    token: Zeroizing::new(token.to_owned()),
                }))
            }
            Form::Service | Form::Other => {
                let id = self.key.id(token);
                let Some(entry) = self.entry(&id).await? else {
                    return Ok(None);
                };
                if entry.revoking || entry.expired(now) {
                    return Ok(None);
                }
                Ok(Some(TokenCaller {
                    entry,
                    id: Some(id),
                    last_use: false,
                    token: Zeroizing::new(token.to_owned()),
                }))
            }
        }
    }

    /// [`Self::find`] for a request from `remote`, spending one use of a
    /// token limited in uses. The
    /// last use marks it revoking (nothing more authenticates with it) and
    /// sets [`TokenCaller::last_use`]: the caller revokes it once the
    /// request is answered.
    pub async fn authenticate(
        &self,
        token: &str,
        remote: std::net::IpAddr,
    ) -> Result<Option<TokenCaller>, TokenError> {
        let Some(mut caller) = self.find(token).await? else {
            return Ok(None);
        };
        // A token bound to networks is no token elsewhere (and spends no use).
        if !caller.entry.usable_from(remote) {
            return Ok(None);
        }
        if let (Some(id), true) = (&caller.id, caller.entry.num_uses > 0) {
            caller.entry.num_uses -= 1;
            if caller.entry.num_uses == 0 {
                caller.entry.revoking = true;
                caller.last_use = true;
            }
            self.store
                .put(&format!("{ID_PREFIX}{id}"), &caller.entry)
                .await?;
            caller.entry.revoking = false;
        }
        Ok(Some(caller))
    }

    async fn entry(&self, id: &str) -> Result<Option<TokenEntry>, TokenError> {
        Ok(self.store.get(&format!("{ID_PREFIX}{id}")).await?)
    }

    /// The live service token with `accessor`: its hash and entry.
    pub async fn by_accessor(
        &self,
        accessor: &str,
    ) -> Result<Option<(String, TokenEntry)>, TokenError> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let Some(record) = self
            .store
            .get::<AccessorRecord>(&format!("{ACCESSOR_PREFIX}{accessor}"))
            .await?
        else {
            return Ok(None);
        };
        let now = clock::unix_now_signed();
        Ok(self
            .entry(&record.id)
            .await?
            .filter(|e| !e.revoking && !e.expired(now))
            .map(|e| (record.id, e)))
    }

    /// Renews the service token stored under `id`: it now expires
    /// `increment` from now (0: its own TTL; a periodic token: its period),
    /// never past its max.
    pub async fn renew(&self, id: &str, increment: Duration) -> Result<TokenEntry, TokenError> {
        let now = clock::unix_now_signed();
        let mut entry = self
            .entry(id)
            .await?
            .filter(|e| !e.revoking && !e.expired(now))
            .ok_or_else(|| TokenError::NotFound("token not found".into()))?;
        if !entry.renewable || entry.token_type == TokenType::Batch {
            return Err(TokenError::invalid(
                "token",
                "token: this token is not renewable",
            ));
        }
        if entry.expire_time == 0 {
            return Ok(entry);
        }
        let ttl = if entry.period > 0 {
            entry.period
        } else if !increment.is_zero() {
            increment.as_secs()
        } else {
            entry.creation_ttl.max(1)
        };
        let mut expire_time = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        if entry.max_expire_time > 0 {
            expire_time = expire_time.min(entry.max_expire_time);
        }
        // As in Vault, the new TTL runs from now, shorter or not.
        entry.expire_time = expire_time;
        self.store.put(&format!("{ID_PREFIX}{id}"), &entry).await?;
        self.leases
            .put_token_lease(
                &lease_id(id),
                json!({ "accessor": entry.accessor }),
                entry.creation_time,
                entry.expire_time,
            )
            .await?;
        Ok(entry)
    }

    /// Revokes the token with `accessor`, its children (unless orphaned)
    /// and every lease any of them made. Idempotent: revoking what is gone
    /// is no error. Stopped halfway, the worker finishes it.
    pub async fn revoke_tree(&self, accessor: &str) -> Result<(), TokenError> {
        self.revoke(accessor, true).await
    }

    /// Revokes the token with `accessor` and its leases, making its
    /// children orphans instead of revoking them.
    pub async fn revoke_orphan(&self, accessor: &str) -> Result<(), TokenError> {
        for child in self.children(accessor).await? {
            if let Some(record) = self
                .store
                .get::<AccessorRecord>(&format!("{ACCESSOR_PREFIX}{child}"))
                .await?
                && let Some(mut entry) = self.entry(&record.id).await?
            {
                entry.parent = None;
                entry.orphan = true;
                self.store
                    .put(&format!("{ID_PREFIX}{}", record.id), &entry)
                    .await?;
            }
            self.store
                .delete(&format!("{PARENT_PREFIX}{accessor}/{child}"))
                .await?;
        }
        self.revoke(accessor, false).await
    }

    async fn children(&self, accessor: &str) -> Result<Vec<String>, TokenError> {
        let prefix = format!("{PARENT_PREFIX}{accessor}/");
        Ok(self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    fn revoke<'a>(
        &'a self,
        accessor: &'a str,
        children: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), TokenError>> + Send + 'a>>
    {
        Box::pin(async move {
            if accessor.is_empty() || accessor.contains('/') {
                return Ok(());
            }
            let record = self
                .store
                .get::<AccessorRecord>(&format!("{ACCESSOR_PREFIX}{accessor}"))
                .await?;
            let id = record.map(|r| r.id);
            // 1. On record, before anything is undone.
            if let Some(id) = &id {
                self.leases
                    .begin_token_revocation(
                        &lease_id(id),
                        json!({ "accessor": accessor }),
                        // Left to this request as long as an issue is
                        // left to its plugin; then the worker takes over.
                        self.leases.pending_hold(),
                    )
                    .await?;
            }
            // 2. It stops authenticating at once.
            let entry = match &id {
                Some(id) => self.entry(id).await?,
                None => None,
            };
            if let (Some(id), Some(entry)) = (&id, &entry)
                && !entry.revoking
            {
                let mut revoking = entry.clone();
                revoking.revoking = true;
                self.store
                    .put(&format!("{ID_PREFIX}{id}"), &revoking)
                    .await?;
            }
            // 3. Its subtree, depth first.
            if children {
                for child in self.children(accessor).await? {
                    self.revoke(&child, true).await?;
                }
            }
            // 4. Its leases: the database users are dropped, the
            // certificates go on the CRL. A failure leaves the lease to the
            // worker's retries and this revocation to finish later.
            self.leases.revoke_of_token(accessor).await?;
            // 5. Its records.
            for key in self
                .store
                .list(&format!("{CUBBY_PREFIX}{accessor}/"))
                .await?
            {
                self.store.delete(&key).await?;
            }
            if let Some(parent) = entry.as_ref().and_then(|e| e.parent.as_deref()) {
                self.store
                    .delete(&format!("{PARENT_PREFIX}{parent}/{accessor}"))
                    .await?;
            }
            if let Some(mount) = entry.as_ref().and_then(|e| e.mount_accessor.as_deref()) {
                self.store
                    .delete(&format!("{MOUNT_PREFIX}{mount}/{accessor}"))
                    .await?;
            }
            if let Some(id) = &id {
                self.store.delete(&format!("{ID_PREFIX}{id}")).await?;
            }
            self.store
                .delete(&format!("{ACCESSOR_PREFIX}{accessor}"))
                .await?;
            if let Some(id) = &id {
                self.leases.end_token_lease(&lease_id(id)).await?;
            }
            tracing::info!(accessor, "token revoked");
            Ok(())
        })
    }

    /// Revokes every token the auth mount with `mount_accessor` issued (its
    /// method is being disabled), with their children and leases. Returns
    /// how many.
    pub async fn revoke_mount(&self, mount_accessor: &str) -> Result<usize, TokenError> {
        let prefix = format!("{MOUNT_PREFIX}{mount_accessor}/");
        let mut revoked = 0;
        for key in self.store.list(&prefix).await? {
            if let Some(accessor) = key.strip_prefix(&prefix) {
                self.revoke_tree(accessor).await?;
                // Should the token be gone already, its link goes too.
                self.store.delete(&key).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Every live service token's accessor.
    pub async fn accessors(&self) -> Result<Vec<String>, TokenError> {
        Ok(self
            .store
            .list(ACCESSOR_PREFIX)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(ACCESSOR_PREFIX).map(str::to_owned))
            .collect())
    }

    /// Removes what a crash or an old bug may have left: accessors of
    /// tokens that are gone, and tree links to tokens that are gone.
    /// Expired tokens are the worker's. Returns how many records went.
    pub async fn tidy(&self) -> Result<usize, TokenError> {
        let mut removed = 0;
        for accessor in self.accessors().await? {
            let key = format!("{ACCESSOR_PREFIX}{accessor}");
            let Some(record) = self.store.get::<AccessorRecord>(&key).await? else {
                continue;
            };
            if self.entry(&record.id).await?.is_none() {
                self.store.delete(&key).await?;
                removed += 1;
            }
        }
        for key in self.store.list(PARENT_PREFIX).await? {
            let Some(child) = key.rsplit('/').next() else {
                continue;
            };
            if self
                .store
                .storage()
                .get(&format!("{ACCESSOR_PREFIX}{child}"))
                .await
                .map_err(crate::barrier::SealedError::from)?
                .is_none()
            {
                self.store.delete(&key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The token role `name`.
    pub async fn role(&self, name: &str) -> Result<Option<TokenRole>, TokenError> {
        Ok(self.store.get(&format!("{ROLE_PREFIX}{name}")).await?)
    }

    /// Writes a token role.
    pub async fn put_role(&self, role: &TokenRole) -> Result<(), TokenError> {
        Ok(self
            .store
            .put(&format!("{ROLE_PREFIX}{}", role.name), role)
            .await?)
    }

    /// Deletes a token role; tokens made from it live on.
    pub async fn delete_role(&self, name: &str) -> Result<(), TokenError> {
        self.store.delete(&format!("{ROLE_PREFIX}{name}")).await?;
        Ok(())
    }

    /// Every token role's name.
    pub async fn roles(&self) -> Result<Vec<String>, TokenError> {
        Ok(self
            .store
            .list(ROLE_PREFIX)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(ROLE_PREFIX).map(str::to_owned))
            .collect())
    }

    /// Keeps `value` in the cubbyhole of the token with `accessor`, under
    /// `name`. It goes when the token does.
    pub async fn cubby_put(
        &self,
        accessor: &str,
        name: &str,
        value: &Value,
    ) -> Result<(), TokenError> {
        Ok(self
            .store
            .put(&format!("{CUBBY_PREFIX}{accessor}/{name}"), value)
            .await?)
    }

    /// Reads `name` from a token's cubbyhole.
    pub async fn cubby_get(&self, accessor: &str, name: &str) -> Result<Option<Value>, TokenError> {
        Ok(self
            .store
            .get(&format!("{CUBBY_PREFIX}{accessor}/{name}"))
            .await?)
    }

    /// Takes `name` out of a token's cubbyhole: of two callers racing for
    /// it, exactly one gets it.
    pub async fn cubby_take(
        &self,
        accessor: &str,
        name: &str,
    ) -> Result<Option<Value>, TokenError> {
        let key = format!("{CUBBY_PREFIX}{accessor}/{name}");
        let Some(value) = self.store.get::<Value>(&key).await? else {
            return Ok(None);
        };
        Ok(self.store.delete(&key).await?.then_some(value))
    }
}

#[async_trait::async_trait]
impl TokenRevoker for TokenStore {
    async fn revoke_tree(&self, revocation: &Value) -> Result<(), LeaseError> {
        let Some(accessor) = revocation.get("accessor").and_then(Value::as_str) else {
            return Err(LeaseError::Corrupt(
                "a token lease without an accessor".into(),
            ));
        };
        match TokenStore::revoke_tree(self, accessor).await {
            Ok(()) => Ok(()),
            Err(TokenError::Lease(e)) => Err(e),
            Err(e) => Err(LeaseError::Task(e.to_string())),
        }
    }
}
