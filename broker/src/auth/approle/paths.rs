//! AppRole's paths, as Vault's AppRole method has them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::store::{Role, SecretId, Store};
use crate::auth::lockout::Lockout;
use crate::auth::{login, token_fields};
use crate::framework::{
    Access, Backend, Error, Field, Path, PatternError, Reply, Request, Services, Table,
    TableBackend, data, list, no_content,
};

type P = Path<AppRoleBackend>;

/// The one answer every failed login gets: it never says which part was
/// wrong, nor that the role is locked.
fn refused() -> Error {
    Error::invalid("invalid role ID or secret ID")
}

/// The `approle` auth method.
#[derive(Debug)]
pub struct AppRoleBackend {
    services: Services,
    table: Table<Self>,
    lockout: Lockout,
}

/// Builds the backend: the registry's constructor for this method.
pub fn factory(services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    Ok(Arc::new(AppRoleBackend {
        services: services.clone(),
        table: Table::new(paths())?,
        lockout: Lockout::with(services.lockout),
    }))
}

fn role_name(req: &Request) -> Result<&str, Error> {
    let name = req.param("role_name")?;
    crate::engine::valid_name(name)?;
    Ok(name)
}

fn secret_id_fields(path: P) -> P {
    path.field(Field::string("metadata", "JSON object of strings, copied into the tokens' metadata"))
        .field(Field::comma_list("cidr_list", "networks it may be used from").clear())
        .field(Field::comma_list("token_bound_cidrs", "networks its tokens may be used from").clear())
        .field(Field::int("num_uses", "uses (0: the role's)").clear())
        .field(Field::duration("ttl", "its life (0: the role's)").clear())
}

fn paths() -> Vec<P> {
    vec![
        P::new("login")
            .summary("Log in with a role id and a secret id; get a token with the role's policies.")
            .access(Access::Public)
            .field(Field::string("role_id", "the role id").required())
            .field(Field::string("secret_id", "the secret id").sensitive())
            .update(|b, r| Box::pin(b.login(r))),
        P::new("role")
            .summary("The roles.")
            .list(|b, r| Box::pin(b.list_roles(r))),
        token_fields::fields(P::new("role/{role_name}"))
            .summary("A role: who may log in with it, and what their tokens get.")
            .field(Field::bool("bind_secret_id", "a login needs a secret id").default(true).clear())
            .field(Field::comma_list("secret_id_bound_cidrs", "networks secret ids may be used from").clear())
            .field(Field::int("secret_id_num_uses", "uses of each secret id (0: unlimited)").clear())
            .field(Field::duration("secret_id_ttl", "life of each secret id (0: no expiry)").clear())
            .field(Field::bool("local_secret_ids", "accepted; secret ids are always local").clear())
            .field(Field::string("role_id", "a chosen role id (default: a random one)").clear())
            .exists(|b, r| Box::pin(b.role_exists(r)))
            .read(|b, r| Box::pin(b.read_role(r)))
            .create(|b, r| Box::pin(b.write_role(r)))
            .update(|b, r| Box::pin(b.write_role(r)))
            .delete(|b, r| Box::pin(b.delete_role(r))),
        P::new("role/{role_name}/role-id")
            .summary("The role's role id: read it, or set a chosen one.")
            .field(Field::string("role_id", "the role id to set").clear().required())
            .read(|b, r| Box::pin(b.read_role_id(r)))
            .update(|b, r| Box::pin(b.write_role_id(r))),
        secret_id_fields(P::new("role/{role_name}/secret-id"))
            .summary("Generate a secret id (wrap it with X-Vault-Wrap-TTL), or list the accessors of the role's secret ids.")
            .update(|b, r| Box::pin(b.generate(r, None)))
            .list(|b, r| Box::pin(b.list_accessors(r))),
        secret_id_fields(P::new("role/{role_name}/custom-secret-id"))
            .summary("Register a secret id chosen by the caller.")
            .field(Field::string("secret_id", "the secret id").sensitive().required())
            .update(|b, r| Box::pin(b.custom(r))),
        P::new("role/{role_name}/secret-id/lookup")
            .summary("What a secret id of this role is (never the secret id).")
            .field(Field::string("secret_id", "the secret id").sensitive().required())
            .update(|b, r| Box::pin(b.lookup(r, false))),
        P::new("role/{role_name}/secret-id/destroy")
            .summary("Destroy a secret id of this role.")
            .field(Field::string("secret_id", "the secret id").sensitive().required())
            .update(|b, r| Box::pin(b.destroy(r, false)))
            .delete(|b, r| Box::pin(b.destroy(r, false))),
        P::new("role/{role_name}/secret-id-accessor/lookup")
            .summary("What the secret id with this accessor is, within this role only.")
            .field(Field::string("secret_id_accessor", "its accessor").clear().required())
            .update(|b, r| Box::pin(b.lookup(r, true))),
        P::new("role/{role_name}/secret-id-accessor/destroy")
            .summary("Destroy the secret id with this accessor, within this role only.")
            .field(Field::string("secret_id_accessor", "its accessor").clear().required())
            .update(|b, r| Box::pin(b.destroy(r, true)))
            .delete(|b, r| Box::pin(b.destroy(r, true))),
        P::new("tidy/secret-id")
            .summary("Remove expired secret ids, and accessors left without one.")
            .update(|b, r| Box::pin(b.tidy(r))),
    ]
}

fn random_id() -> String {
    crate::core::random_uuid()
}

impl AppRoleBackend {
    async fn store<'a>(&self, req: &'a Request) -> Result<Store<'a>, Error> {
        Store::open(&req.mount.storage).await
    }

    async fn role(&self, req: &Request) -> Result<(String, Role), Error> {
        let name = role_name(req)?;
        let role = self
            .store(req)
            .await?
            .role(name)
            .await?
            .ok_or_else(|| Error::invalid(format!("role {name:?} does not exist")))?;
        Ok((name.to_owned(), role))
    }

    async fn role_exists(&self, req: &Request) -> Result<bool, Error> {
        let name = role_name(req)?;
        Ok(self.store(req).await?.role(name).await?.is_some())
    }

    async fn list_roles(&self, req: &Request) -> Result<Reply, Error> {
        list(self.store(req).await?.roles().await?)
    }

    async fn read_role(&self, req: &Request) -> Result<Reply, Error> {
        let name = role_name(req)?;
        let role = self
            .store(req)
            .await?
            .role(name)
            .await?
            .ok_or_else(|| Error::NotFound(String::new()))?;
        let mut out = Map::new();
        out.insert("bind_secret_id".into(), json!(role.bind_secret_id));
        out.insert(
            "secret_id_bound_cidrs".into(),
            json!(role.secret_id_bound_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
        out.insert("secret_id_num_uses".into(), json!(role.secret_id_num_uses));
        out.insert("secret_id_ttl".into(), json!(role.secret_id_ttl));
        out.insert("local_secret_ids".into(), json!(role.local_secret_ids));
        role.token.describe(&mut out);
        Ok(data(Value::Object(out)))
    }

    async fn write_role(&self, req: &Request) -> Result<Reply, Error> {
        let name = role_name(req)?;
        let store = self.store(req).await?;
        let old = store.role(name).await?;
        let mut role = old.clone().unwrap_or_else(|| Role {
            role_id: random_id(),
            bind_secret_id: true,
            ..Role::default()
        });
        if let Some(b) = req.bool("bind_secret_id")? {
            role.bind_secret_id = b;
        }
        if let Some(c) = req.list("secret_id_bound_cidrs")? {
            role.secret_id_bound_cidrs = token_fields::parse_cidrs("secret_id_bound_cidrs", &c)?;
        }
        if let Some(n) = req.uint("secret_id_num_uses", u64::from(u32::MAX))? {
            role.secret_id_num_uses = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(t) = req.duration("secret_id_ttl")? {
            role.secret_id_ttl = t.as_secs();
        }
        if let Some(b) = req.bool("local_secret_ids")? {
            role.local_secret_ids = b;
        }
        if let Some(id) = req.str("role_id").filter(|id| !id.trim().is_empty()) {
            role.role_id = id.to_owned();
        }
        role.token.update(req)?;
        if !role.bind_secret_id
            && role.secret_id_bound_cidrs.is_empty()
            && role.token.bound_cidrs.is_empty()
        {
            return Err(Error::field(
                "bind_secret_id",
                "bind_secret_id: a role without secret ids needs secret_id_bound_cidrs or token_bound_cidrs, or anyone who learns its role id logs in",
            ));
        }
        store.put_role(name, &role, old.as_ref()).await?;
        Ok(no_content())
    }

    async fn delete_role(&self, req: &Request) -> Result<Reply, Error> {
        let name = role_name(req)?;
        self.store(req).await?.delete_role(name).await?;
        Ok(no_content())
    }

    async fn read_role_id(&self, req: &Request) -> Result<Reply, Error> {
        let (_, role) = self.role(req).await?;
        Ok(data(json!({ "role_id": role.role_id })))
    }

    async fn write_role_id(&self, req: &Request) -> Result<Reply, Error> {
        let (name, mut role) = self.role(req).await?;
        let old = role.clone();
        role.role_id = req
            .str("role_id")
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| Error::field("role_id", "role_id is required"))?
            .to_owned();
        self.store(req)
            .await?
            .put_role(&name, &role, Some(&old))
            .await?;
        Ok(no_content())
    }

    /// `secret-id` (`chosen` is `None`) and `custom-secret-id`.
    async fn generate(&self, req: &Request, chosen: Option<String>) -> Result<Reply, Error> {
        let (name, role) = self.role(req).await?;
        let metadata = metadata(req)?;
        let cidr_list = match req.list("cidr_list")? {
            Some(c) => token_fields::parse_cidrs("cidr_list", &c)?,
            None => Vec::new(),
        };
        let token_bound_cidrs = match req.list("token_bound_cidrs")? {
            Some(c) => token_fields::parse_cidrs("token_bound_cidrs", &c)?,
            None => Vec::new(),
        };
        let num_uses = req
            .uint("num_uses", u64::from(u32::MAX))?
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        if role.secret_id_num_uses > 0 && num_uses > role.secret_id_num_uses {
            return Err(Error::field(
                "num_uses",
                "num_uses cannot be more than the role's secret_id_num_uses",
            ));
        }
        let num_uses = if num_uses == 0 {
            role.secret_id_num_uses
        } else {
            num_uses
        };
        let ttl = req.duration("ttl")?.map_or(0, |d| d.as_secs());
        if role.secret_id_ttl > 0 && ttl > role.secret_id_ttl {
            return Err(Error::field(
                "ttl",
                "ttl cannot be longer than the role's secret_id_ttl",
            ));
        }
        let ttl = if ttl == 0 { role.secret_id_ttl } else { ttl };
        let now = crate::clock::unix_now_signed();
        let entry = SecretId {
            accessor: random_id(),
            num_uses,
            ttl,
            creation_time: now,
            expiration_time: if ttl > 0 {
                now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
            } else {
                0
            },
            cidr_list,
            metadata,
            token_bound_cidrs,
        };
        let secret_id = match chosen {
            Some(s) => s,
            None => random_id(),
        };
        if !self
            .store(req)
            .await?
            .add_secret_id(&name, &secret_id, &entry)
            .await?
        {
            return Err(Error::invalid("that secret id is already registered"));
        }
        Ok(crate::framework::credential(json!({
            "secret_id": secret_id,
            "secret_id_accessor": entry.accessor,
            "secret_id_ttl": entry.ttl,
            "secret_id_num_uses": entry.num_uses,
        })))
    }

    async fn custom(&self, req: &Request) -> Result<Reply, Error> {
        let secret_id = req
            .str("secret_id")
            .filter(|s| !s.is_empty() && s.len() <= 1024)
            .ok_or_else(|| Error::field("secret_id", "secret_id: 1-1024 characters"))?
            .to_owned();
        self.generate(req, Some(secret_id)).await
    }

    async fn list_accessors(&self, req: &Request) -> Result<Reply, Error> {
        let (name, _) = self.role(req).await?;
        list(self.store(req).await?.accessors(&name).await?)
    }

    /// The secret id a lookup or destroy names, within the path's role.
    async fn find<'r>(
        &self,
        req: &'r Request,
        by_accessor: bool,
    ) -> Result<(String, Store<'r>, Option<(String, SecretId)>), Error> {
        let (name, _) = self.role(req).await?;
        let store = self.store(req).await?;
        let found = if by_accessor {
            let accessor = req.str("secret_id_accessor").unwrap_or_default();
            store.by_accessor(&name, accessor).await?
        } else {
            let secret_id = req.str("secret_id").unwrap_or_default();
            store.secret_id(&name, secret_id).await?
        };
        Ok((name, store, found))
    }

    async fn lookup(&self, req: &Request, by_accessor: bool) -> Result<Reply, Error> {
        let (_, _, found) = self.find(req, by_accessor).await?;
        let Some((_, entry)) = found else {
            // As Vault: an unknown secret id is a 404, an unknown accessor a 400.
            return Err(if by_accessor {
                Error::invalid("no secret id of this role has that accessor")
            } else {
                Error::NotFound(String::new())
            });
        };
        Ok(data(json!({
            "secret_id_accessor": entry.accessor,
            "secret_id_num_uses": entry.num_uses,
            "secret_id_ttl": entry.ttl,
            "creation_time": rfc3339(entry.creation_time),
            "expiration_time": rfc3339(entry.expiration_time),
            "last_updated_time": rfc3339(entry.creation_time),
            "cidr_list": entry.cidr_list.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "token_bound_cidrs": entry.token_bound_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "metadata": entry.metadata,
        })))
    }

    async fn destroy(&self, req: &Request, by_accessor: bool) -> Result<Reply, Error> {
        let (name, store, found) = self.find(req, by_accessor).await?;
        match found {
            Some((hash, entry)) => {
                store.remove_secret_id(&name, &hash, &entry.accessor).await?;
                Ok(no_content())
            }
            None if by_accessor => Err(Error::invalid(
                "no secret id of this role has that accessor",
            )),
            None => Ok(no_content()),
        }
    }

    async fn tidy(&self, req: &Request) -> Result<Reply, Error> {
        let store = self.store(req).await?;
        let now = crate::clock::unix_now_signed();
        let mut removed = 0;
        for role in store.roles().await? {
            removed += store.tidy(&role, now).await?;
        }
        tracing::info!(mount = %req.mount.path, removed, "approle secret ids tidied");
        // Vault answers with an envelope (202, a warning, no data), not an
        // empty 204: vaultrs's `approle::tidy` parses one. The token
        // store's tidy answers the same way.
        Ok(data(Value::Null))
    }

    async fn login(&self, req: &Request) -> Result<Reply, Error> {
        let role_id = req.str("role_id").unwrap_or_default();
        let mount = &req.mount.accessor;
        if self.lockout.locked(mount, role_id) {
            return Err(refused());
        }
        match self.prove(req, role_id).await? {
            Some((name, role, metadata)) => {
                self.lockout.succeeded(mount, role_id);
                let mut meta = metadata;
                meta.insert("role_name".into(), name);
                login::issue(
                    &self.services,
                    req,
                    &role.token,
                    "approle".into(),
                    meta,
                )
                .await
            }
            None => {
                self.lockout.failed(mount, role_id);
                Err(refused())
            }
        }
    }

    /// The role a login proves, with its secret id's metadata; `None` if
    /// it proves nothing. A secret id's last use is taken atomically.
    async fn prove(
        &self,
        req: &Request,
        role_id: &str,
    ) -> Result<Option<(String, Role, BTreeMap<String, String>)>, Error> {
        if role_id.is_empty() {
            return Ok(None);
        }
        let store = self.store(req).await?;
        let Some((name, mut role)) = store.role_by_id(role_id).await? else {
            return Ok(None);
        };
        let remote = req.remote;
        if !role.secret_id_bound_cidrs.is_empty()
            && !role.secret_id_bound_cidrs.iter().any(|n| n.contains(&remote))
        {
            return Ok(None);
        }
        if !role.bind_secret_id {
            return Ok(Some((name, role, BTreeMap::new())));
        }
        let secret_id = req.str("secret_id").unwrap_or_default();
        if secret_id.is_empty() {
            return Ok(None);
        }
        let Some((hash, mut entry)) = store.secret_id(&name, secret_id).await? else {
            return Ok(None);
        };
        let now = crate::clock::unix_now_signed();
        if entry.expired(now) {
            store.remove_secret_id(&name, &hash, &entry.accessor).await?;
            return Ok(None);
        }
        if !entry.cidr_list.is_empty() && !entry.cidr_list.iter().any(|n| n.contains(&remote)) {
            return Ok(None);
        }
        match entry.num_uses {
            0 => {}
            1 => {
                if !store.remove_secret_id(&name, &hash, &entry.accessor).await? {
                    return Ok(None);
                }
            }
            n => {
                entry.num_uses = n - 1;
                store.update_secret_id(&name, &hash, &entry).await?;
            }
        }
        // A secret id's own token_bound_cidrs bind its tokens, in place
        // of the role's.
        if !entry.token_bound_cidrs.is_empty() {
            role.token.bound_cidrs = entry.token_bound_cidrs.clone();
        }
        Ok(Some((name, role, entry.metadata)))
    }
}

/// A secret id's `metadata`: a JSON object of strings, given as such or as
/// its text (Vault's form).
fn metadata(req: &Request) -> Result<BTreeMap<String, String>, Error> {
    let bad = || Error::field("metadata", "metadata must be a JSON object of strings");
    let value = match req.data.get("metadata") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
        Some(v) => v.clone(),
    };
    let Value::Object(map) = value else {
        return Err(bad());
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(bad()),
        })
        .collect()
}

/// A time as Vault shows a secret id's: RFC 3339, and Go's zero time,
/// `0001-01-01T00:00:00Z`, for none (a secret id that never expires), never
/// `null`: clients read a string (vaultrs's `ReadSecretIDResponse`).
fn rfc3339(unix: i64) -> Value {
    match u64::try_from(unix) {
        Ok(secs) if unix > 0 => json!(
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
            )
            .to_string()
        ),
        _ => json!(NO_TIME),
    }
}

/// Go's zero `time.Time`, which Vault shows for a time that is not set.
const NO_TIME: &str = "0001-01-01T00:00:00Z";

#[async_trait::async_trait]
impl TableBackend for AppRoleBackend {
    fn description(&self) -> &'static str {
        "applications log in with a role id and a secret id"
    }

    fn table(&self) -> &Table<Self> {
        &self.table
    }
}
