//! AppRole's records in its mount's storage:
//! - `hmac-key`: the key secret ids and role ids are hashed with;
//! - `role/<name>`: a role;
//! - `role-id/<hash of role id>`: the role a role id names;
//! - `secret-id/<role>/<hash of secret id>`: a secret id's entry;
//! - `accessor/<role>/<accessor>`: the hash an accessor stands for, filed
//!   under its role.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::auth::token_fields::TokenParams;
use crate::framework::{Error, StorageView};

/// An AppRole role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Role {
    /// Its role id (not a secret: the secret id is).
    pub role_id: String,
    /// Whether a login needs a secret id (Vault's default: yes).
    pub bind_secret_id: bool,
    /// Networks a secret id may be used from.
    #[serde(default)]
    pub secret_id_bound_cidrs: Vec<ipnet::IpNet>,
    /// Uses of each secret id (0: unlimited).
    #[serde(default)]
    pub secret_id_num_uses: u32,
    /// Each secret id's life, seconds (0: no expiry).
    #[serde(default)]
    pub secret_id_ttl: u64,
    /// Accepted as Vault does; every secret id is local to this cluster.
    #[serde(default)]
    pub local_secret_ids: bool,
    /// What its logins' tokens get.
    #[serde(default)]
    pub token: TokenParams,
}

/// A secret id, as stored: everything but the secret id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretId {
    /// Names it in lookups and destroys.
    pub accessor: String,
    /// Uses left (0: unlimited).
    pub num_uses: u32,
    /// Its life when made, seconds (0: no expiry).
    pub ttl: u64,
    /// When it was made (Unix seconds).
    pub creation_time: i64,
    /// When it expires (Unix seconds; 0: never).
    pub expiration_time: i64,
    /// Networks it may be used from.
    #[serde(default)]
    pub cidr_list: Vec<ipnet::IpNet>,
    /// Metadata, copied into the tokens it logs in for.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Networks the tokens it logs in for may be used from (empty: the
    /// role's `token_bound_cidrs`).
    #[serde(default)]
    pub token_bound_cidrs: Vec<ipnet::IpNet>,
}

impl SecretId {
    /// Whether it has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expiration_time > 0 && self.expiration_time <= now
    }
}

/// The mount's storage, as AppRole uses it.
pub struct Store<'a> {
    view: &'a StorageView,
    key: Zeroizing<Vec<u8>>,
}

const KEY: &str = "hmac-key";

impl<'a> Store<'a> {
    /// The store over `view`, its key made on first use.
    pub async fn open(view: &'a StorageView) -> Result<Self, Error> {
        let key: Option<Zeroizing<String>> = view.get(KEY).await?;
        let key = match key {
            Some(hex_key) => hex_key,
            None => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                getrandom::fill(bytes.as_mut())
                    .map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
                let hex_key = Zeroizing::new(hex::encode(bytes.as_ref()));
                view.create(KEY, &hex_key).await?;
                view.get(KEY)
                    .await?
                    .ok_or_else(|| Error::Internal("the AppRole key vanished".into()))?
            }
        };
        let key = Zeroizing::new(
            hex::decode(key.as_str())
                .map_err(|_| Error::Internal("the AppRole key is damaged".into()))?,
        );
        Ok(Self { view, key })
    }

    /// The keyed hash of `value` (a role id or a secret id).
    pub fn hash(&self, value: &str) -> String {
        match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(value.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// The role `name`.
    pub async fn role(&self, name: &str) -> Result<Option<Role>, Error> {
        Ok(self.view.get(&format!("role/{name}")).await?)
    }

    /// Writes role `name`, moving its role id's index if it changed.
    pub async fn put_role(&self, name: &str, role: &Role, old: Option<&Role>) -> Result<(), Error> {
        let index = format!("role-id/{}", self.hash(&role.role_id));
        if let Some(owner) = self.view.get::<String>(&index).await?
            && owner != name
        {
            return Err(Error::invalid("role_id: that role id is another role's"));
        }
        self.view.put(&format!("role/{name}"), role).await?;
        self.view.put(&index, &name.to_owned()).await?;
        if let Some(old) = old
            && old.role_id != role.role_id
        {
            self.view
                .delete(&format!("role-id/{}", self.hash(&old.role_id)))
                .await?;
        }
        Ok(())
    }

    /// Deletes role `name`, its role id and every secret id it issued.
    pub async fn delete_role(&self, name: &str) -> Result<(), Error> {
        if let Some(role) = self.role(name).await? {
            self.view
                .delete(&format!("role-id/{}", self.hash(&role.role_id)))
                .await?;
        }
        self.view.delete_all(&format!("secret-id/{name}")).await?;
        self.view.delete_all(&format!("accessor/{name}")).await?;
        self.view.delete(&format!("role/{name}")).await?;
        Ok(())
    }

    /// Every role's name.
    pub async fn roles(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .view
            .list("role")
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect())
    }

    /// The role a role id names.
    pub async fn role_by_id(&self, role_id: &str) -> Result<Option<(String, Role)>, Error> {
        let Some(name) = self
            .view
            .get::<String>(&format!("role-id/{}", self.hash(role_id)))
            .await?
        else {
            return Ok(None);
        };
        Ok(self.role(&name).await?.map(|role| (name, role)))
    }

    /// Files a new secret id of `role`; false when that secret id exists.
    pub async fn add_secret_id(
        &self,
        role: &str,
        secret_id: &str,
        entry: &SecretId,
    ) -> Result<bool, Error> {
        let hash = self.hash(secret_id);
        if !self
            .view
            .create(&format!("secret-id/{role}/{hash}"), entry)
            .await?
        {
            return Ok(false);
        }
        self.view
            .put(&format!("accessor/{role}/{}", entry.accessor), &hash)
            .await?;
        Ok(true)
    }

    /// The entry of `role`'s secret id `secret_id`, and its hash.
    pub async fn secret_id(
        &self,
        role: &str,
        secret_id: &str,
    ) -> Result<Option<(String, SecretId)>, Error> {
        let hash = self.hash(secret_id);
        Ok(self
            .view
            .get(&format!("secret-id/{role}/{hash}"))
            .await?
            .map(|e| (hash, e)))
    }

    /// The hash and entry of the secret id `accessor` names, within `role`
    /// only.
    pub async fn by_accessor(
        &self,
        role: &str,
        accessor: &str,
    ) -> Result<Option<(String, SecretId)>, Error> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let Some(hash) = self
            .view
            .get::<String>(&format!("accessor/{role}/{accessor}"))
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .view
            .get(&format!("secret-id/{role}/{hash}"))
            .await?
            .map(|e| (hash, e)))
    }

    /// Writes a secret id's entry back (a use was spent).
    pub async fn update_secret_id(&self, role: &str, hash: &str, entry: &SecretId) -> Result<(), Error> {
        Ok(self
            .view
            .put(&format!("secret-id/{role}/{hash}"), entry)
            .await?)
    }

    /// Removes a secret id; whether it was there (of two racing removals,
    /// one sees true).
    pub async fn remove_secret_id(
        &self,
        role: &str,
        hash: &str,
        accessor: &str,
    ) -> Result<bool, Error> {
        let existed = self
            .view
            .delete(&format!("secret-id/{role}/{hash}"))
            .await?;
        self.view
            .delete(&format!("accessor/{role}/{accessor}"))
            .await?;
        Ok(existed)
    }

    /// The accessors of `role`'s secret ids.
    pub async fn accessors(&self, role: &str) -> Result<Vec<String>, Error> {
        Ok(self.view.list(&format!("accessor/{role}")).await?)
    }

    /// Removes `role`'s expired secret ids (and accessors left without
    /// one); returns how many records went.
    pub async fn tidy(&self, role: &str, now: i64) -> Result<usize, Error> {
        let mut removed = 0;
        for accessor in self.accessors(role).await? {
            match self.by_accessor(role, &accessor).await? {
                Some((hash, entry)) if entry.expired(now) => {
                    self.remove_secret_id(role, &hash, &accessor).await?;
                    removed += 1;
                }
                Some(_) => {}
                None => {
                    self.view
                        .delete(&format!("accessor/{role}/{accessor}"))
                        .await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
