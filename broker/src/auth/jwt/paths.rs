//! The JWT method's paths, as Vault's JWT/OIDC method has them for JWTs:
//! `config`, `role`, `role/{name}` and `login`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::claims::{self, Checked};
use super::config::Config;
use super::keys::KeyCache;
use super::role::Role;
use super::{Refusal, jws, refused};
use crate::auth::lockout::Lockout;
use crate::auth::{login, token_fields};
use crate::framework::{
    Access, Backend, Error, Field, Mount, Path, PatternError, Reply, Request, Services, Table,
    TableBackend, data, list, no_content,
};

type P = Path<JwtBackend>;

const CONFIG: &str = "config";

/// The longest user claim a display name carries (characters).
const MAX_DISPLAY_USER: usize = 96;

/// The `jwt` auth method (also mounted as type `oidc`).
#[derive(Debug)]
pub struct JwtBackend {
    services: Services,
    table: Table<Self>,
    lockout: Lockout,
    keys: KeyCache,
}

/// Builds the backend: the registry's constructor for this method.
pub fn factory(services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    Ok(Arc::new(JwtBackend {
        services: services.clone(),
        table: Table::new(paths())?,
        lockout: Lockout::with(services.lockout),
        keys: KeyCache::default(),
    }))
}

fn role_name(req: &Request) -> Result<&str, Error> {
    let name = req.param("name")?;
    crate::engine::valid_name(name)?;
    Ok(name)
}

fn paths() -> Vec<P> {
    vec![
        P::new("config")
            .summary("Where the keys tokens are signed with come from, and the issuer they must name.")
            .field(Field::string("oidc_discovery_url", "OIDC discovery base URL (without .well-known)").clear())
            .field(Field::string("oidc_discovery_ca_pem", "CA certificates (PEM) trusted for it").clear())
            .field(Field::string("jwks_url", "the issuer's JWKS URL").clear())
            .field(Field::string("jwks_ca_pem", "CA certificates (PEM) trusted for it").clear())
            .field(Field::comma_list("jwt_validation_pubkeys", "PEM public keys").clear())
            .field(Field::comma_list("jwt_supported_algs", "accepted algorithms (default: RS256, RS384, RS512, ES256, ES384, EdDSA)").clear())
            .field(Field::string("bound_issuer", "the iss every token must name").clear())
            .field(Field::string("default_role", "the role of a login that names none").clear())
            .read(|b, r| Box::pin(b.read_config(r)))
            .update(|b, r| Box::pin(b.write_config(r))),
        P::new("login")
            .summary("Log in with a JWT; get a token with the role's policies.")
            .access(Access::Public)
            .field(Field::string("role", "the role (default: the config's default_role)").clear())
            .field(Field::string("jwt", "the signed JWT").sensitive().required())
            .update(|b, r| Box::pin(b.login(r))),
        P::new("role")
            .summary("The roles.")
            .list(|b, r| Box::pin(b.list_roles(r))),
        token_fields::fields(P::new("role/{name}"))
            .summary("A role: the claims a token must have, and what its login's token gets.")
            .field(Field::string("role_type", "jwt (the only type offered)").clear())
            .field(Field::comma_list("bound_audiences", "aud must name one of these").clear())
            .field(Field::string("bound_subject", "sub must be this").clear())
            .field(Field::object("bound_claims", "claims (names, or JSON pointers from /) to a value or a list of values").clear())
            .field(Field::string("bound_claims_type", "string (exact, the default) or glob (* matches any run)").clear())
            .field(Field::object("claim_mappings", "claims (names, or JSON pointers) to copy into the token's metadata, to their metadata keys").clear())
            .field(Field::string("user_claim", "the claim that names the user (default sub)").clear())
            .field(Field::bool("user_claim_json_pointer", "user_claim is a JSON pointer").clear())
            .field(Field::int("clock_skew_leeway", "seconds of skew on every time claim (0: 60; -1: none)").clear())
            .field(Field::int("expiration_leeway", "seconds allowed past exp (0: 150; -1: none)").clear())
            .field(Field::int("not_before_leeway", "seconds allowed before nbf (0: 150; -1: none)").clear())
            .exists(|b, r| Box::pin(b.role_exists(r)))
            .read(|b, r| Box::pin(b.read_role(r)))
            .create(|b, r| Box::pin(b.write_role(r)))
            .update(|b, r| Box::pin(b.write_role(r)))
            .delete(|b, r| Box::pin(b.delete_role(r))),
    ]
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

/// Who a login counts against: the role and the user claim its token
/// names, read without trusting it (else the client's address), so a
/// stranger's garbage does not lock the role for everyone.
fn identity(req: &Request, role_name: &str, role: Option<&Role>, token: &str) -> String {
    let user = jws::peek_claims(token).and_then(|c| {
        let (claim, pointer) = role.map_or(("sub", false), |r| {
            (r.user_claim.as_str(), r.user_claim_json_pointer)
        });
        claims::lookup(&c, claim, pointer).and_then(claims::text)
    });
    match user {
        Some(u) => format!("{role_name}\n{u}"),
        None => format!("{role_name}\n@{}", req.remote),
    }
}

impl JwtBackend {
    async fn config(&self, req: &Request) -> Result<Option<Config>, Error> {
        Ok(req.mount.storage.get(CONFIG).await?)
    }

    async fn role(&self, req: &Request, name: &str) -> Result<Option<Role>, Error> {
        Ok(req.mount.storage.get(&role_key(name)).await?)
    }

    async fn read_config(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(self.config(req).await?.unwrap_or_default().describe()))
    }

    async fn write_config(&self, req: &Request) -> Result<Reply, Error> {
        let config = Config::from_request(req)?;
        // A URL is checked by fetching its keys now, as Vault does.
        if let Err(why) = self.keys.prime(&req.mount.uuid, &config).await {
            let field = config.source_field();
            return Err(Error::field(field, format!("{field}: {why}")));
        }
        req.mount.storage.put(CONFIG, &config).await?;
        Ok(no_content())
    }

    async fn role_exists(&self, req: &Request) -> Result<bool, Error> {
        let name = role_name(req)?;
        Ok(self.role(req, name).await?.is_some())
    }

    async fn list_roles(&self, req: &Request) -> Result<Reply, Error> {
        let names = req
            .mount
            .storage
            .list("role")
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect();
        list(names)
    }

    async fn read_role(&self, req: &Request) -> Result<Reply, Error> {
        let name = role_name(req)?;
        let role = self
            .role(req, name)
            .await?
            .ok_or_else(|| Error::NotFound(String::new()))?;
        Ok(data(role.describe()))
    }

    async fn write_role(&self, req: &Request) -> Result<Reply, Error> {
        let name = role_name(req)?;
        let mut role = self.role(req, name).await?.unwrap_or_default();
        role.update(req)?;
        req.mount.storage.put(&role_key(name), &role).await?;
        Ok(no_content())
    }

    async fn delete_role(&self, req: &Request) -> Result<Reply, Error> {
        let name = role_name(req)?;
        req.mount.storage.delete(&role_key(name)).await?;
        Ok(no_content())
    }

    async fn login(&self, req: &Request) -> Result<Reply, Error> {
        let config = self.config(req).await?;
        let token = req.str("jwt").unwrap_or_default();
        let role_name = req
            .str("role")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .or_else(|| config.as_ref().map(|c| c.default_role.as_str()))
            .unwrap_or_default()
            .to_owned();
        let role = if crate::engine::valid_name(&role_name).is_ok() {
            self.role(req, &role_name).await?
        } else {
            None
        };
        let mount = &req.mount.accessor;
        let who = identity(req, &role_name, role.as_ref(), token);
        let outcome = if self.lockout.locked(mount, &who) {
            Err(Refusal::Locked)
        } else {
            match (config, role) {
                (Some(config), Some(role)) => self
                    .prove(&req.mount, &config, &role, token)
                    .await
                    .map(|c| (role, c)),
                (None, _) => Err(Refusal::NoKeys),
                (_, None) => Err(Refusal::Role),
            }
        };
        match outcome {
            Ok((role, checked)) => {
                self.lockout.succeeded(mount, &who);
                let mut meta: BTreeMap<String, String> = checked.metadata;
                meta.insert("role".into(), role_name);
                meta.insert("alias_name".into(), checked.user.clone());
                let user: String = checked.user.chars().take(MAX_DISPLAY_USER).collect();
                // As Vault names them: the mount's path below `auth/`, then the user.
                let path = req.mount.name();
                let path = path.strip_prefix("auth/").unwrap_or(path);
                let display = format!("{}-{user}", path.replace('/', "-"));
                login::issue(&self.services, req, &role.token, display, meta).await
            }
            Err(why) => {
                tracing::debug!(mount = %req.mount.path, role = %role_name, reason = %why, "JWT login refused");
                // A key set that could not be had says nothing about the
                // token: it does not count toward the lockout.
                if !matches!(why, Refusal::NoKeys | Refusal::Locked) {
                    self.lockout.failed(mount, &who);
                }
                Err(refused())
            }
        }
    }

    /// Checks `token` for `role`: its form, its signature under a key of
    /// the mount, and its claims.
    async fn prove(
        &self,
        mount: &Mount,
        config: &Config,
        role: &Role,
        token: &str,
    ) -> Result<Checked, Refusal> {
        let jwt = jws::parse(token, &config.algs())?;
        let set = self
            .keys
            .keys(&mount.uuid, config, jwt.kid.as_deref())
            .await
            .map_err(|_| Refusal::NoKeys)?;
        let mut candidates = set
            .keys
            .iter()
            // A key without a kid (a PEM key) may have signed any token.
            .filter(|k| jwt.kid.is_none() || k.kid.is_none() || k.kid == jwt.kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(Refusal::UnknownKey);
        }
        if !candidates.any(|k| k.verify(jwt.alg, jwt.signing_input, jwt.signature)) {
            return Err(Refusal::Signature);
        }
        let mut issuers: Vec<&str> = Vec::new();
        if !config.bound_issuer.is_empty() {
            issuers.push(&config.bound_issuer);
        }
        if let Some(i) = &set.issuer {
            issuers.push(i);
        }
        claims::check(role, &issuers, &jwt.claims, crate::clock::unix_now_signed())
    }
}

#[async_trait::async_trait]
impl TableBackend for JwtBackend {
    fn description(&self) -> &'static str {
        "workloads log in with a JWT their platform signed"
    }

    fn table(&self) -> &Table<Self> {
        &self.table
    }

    async fn unmounted(&self, mount: &Mount) {
        self.keys.forget(&mount.uuid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_builds() {
        let t = Table::<JwtBackend>::new(paths()).unwrap();
        assert_eq!(t.paths().len(), 4);
    }
}
