//! `auth/token/…`: the token store's paths, as Vault serves them. The
//! rules of what a token may create live in [`crate::token`]; this file
//! reads requests, asks the store, and writes Vault's answers.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::clock;
use crate::core::Core;
use crate::framework::{
    Access, Caller, Error, Field, Path, PatternError, Reply, Request, Table, data, list, no_content,
};
use crate::policy::Capability;
use crate::token::{
    CreateRequest, Parent, RoleTokenType, TokenCaller, TokenEntry, TokenRole, TokenType, plan,
};

type P = Path<Core>;

/// Where the token store is mounted.
pub(crate) const MOUNT: &str = "auth/token/";

const TTL: &str = "duration: seconds, or a string such as \"1h30m\"";

/// The token store's table, built once.
pub(crate) fn table() -> Result<&'static Table<Core>, Error> {
    static TABLE: OnceLock<Result<Table<Core>, PatternError>> = OnceLock::new();
    TABLE
        .get_or_init(|| Table::new(paths()))
        .as_ref()
        .map_err(|e| Error::Internal(e.to_string()))
}

fn create_fields(path: P) -> P {
    path.field(
        Field::comma_list(
            "policies",
            "policy names; a subset of the creator's unless it is root or has sudo here",
        )
        .clear(),
    )
    .field(Field::bool("no_default_policy", "leave the default policy off").clear())
    .field(Field::duration("ttl", TTL).clear())
    .field(Field::duration("explicit_max_ttl", "a hard limit no renewal passes").clear())
    .field(
        Field::duration(
            "period",
            "a periodic token: each renewal gives it this long again",
        )
        .clear(),
    )
    .field(Field::int("num_uses", "how many requests it may make (0: unlimited)").clear())
    .field(
        Field::bool("renewable", "whether it may be renewed")
            .default(true)
            .clear(),
    )
    .field(Field::bool("no_parent", "make it an orphan (root or sudo only)").clear())
    .field(Field::string("display_name", "a name for people").clear())
    .field(Field::object(
        "meta",
        "metadata, shown in lookups and the audit log",
    ))
    .field(
        Field::string(
            "type",
            "service (stored, renewable) or batch (not stored, for short jobs)",
        )
        .clear(),
    )
    .field(Field::string("id", "choose the token's value (root or sudo only)").sensitive())
    .field(
        Field::string(
            "entity_alias",
            "not supported: tokens here have no entities",
        )
        .clear(),
    )
}

fn token_field() -> Field {
    Field::string("token", "the token").sensitive()
}

fn accessor_field() -> Field {
    Field::string("accessor", "the token's accessor").clear()
}

fn increment_field() -> Field {
    Field::duration("increment", "how long from now (0: its own TTL)").clear()
}

fn paths() -> Vec<P> {
    vec![
        create_fields(P::new("create"))
            .summary("Create a child token of the caller's.")
            .update(|c, r| Box::pin(create(c, r))),
        create_fields(P::new("create-orphan"))
            .summary("Create a token with no parent: revoking its creator leaves it.")
            .update(|c, r| Box::pin(create(c, r))),
        create_fields(P::new("create/{role_name}"))
            .summary("Create a token through a token role, which bounds its policies, type and life.")
            .update(|c, r| Box::pin(create(c, r))),
        P::new("lookup")
            .summary("Look up a token given in the body.")
            .field(token_field().required())
            .update(|c, r| Box::pin(lookup(c, r))),
        P::new("lookup-self")
            .summary("Look up the caller's token.")
            .read(|c, r| Box::pin(lookup_self(c, r)))
            .update(|c, r| Box::pin(lookup_self(c, r))),
        P::new("lookup-accessor")
            .summary("Look up a token by its accessor (the token itself is not shown).")
            .field(accessor_field().required())
            .update(|c, r| Box::pin(lookup_accessor(c, r))),
        P::new("renew")
            .summary("Renew a token given in the body.")
            .field(token_field().required())
            .field(increment_field())
            .update(|c, r| Box::pin(renew(c, r))),
        P::new("renew-self")
            .summary("Renew the caller's token.")
            .field(increment_field())
            .update(|c, r| Box::pin(renew(c, r))),
        P::new("renew-accessor")
            .summary("Renew a token by its accessor.")
            .field(accessor_field().required())
            .field(increment_field())
            .update(|c, r| Box::pin(renew(c, r))),
        P::new("revoke")
            .summary("Revoke a token, its children and every lease they made.")
            .field(token_field().required())
            .update(|c, r| Box::pin(revoke(c, r))),
        P::new("revoke-self")
            .summary("Revoke the caller's token, its children and every lease they made.")
            .update(|c, r| Box::pin(revoke(c, r))),
        P::new("revoke-accessor")
            .summary("Revoke a token by its accessor, with its children and leases.")
            .field(accessor_field().required())
            .update(|c, r| Box::pin(revoke(c, r))),
        P::new("revoke-orphan")
            .summary("Revoke a token and its leases but not its children, which become orphans.")
            .access(Access::Sudo)
            .field(token_field().required())
            .update(|c, r| Box::pin(revoke(c, r))),
        P::new("roles")
            .summary("The token roles.")
            .list(|c, r| Box::pin(list_roles(c, r))),
        P::new("roles/{role_name}")
            .summary("A token role: what tokens made through create/{role_name} may be.")
            .field(Field::comma_list("allowed_policies", "policies its tokens may have (empty: the creator's)").clear())
            .field(Field::comma_list("disallowed_policies", "policies its tokens may never have").clear())
            .field(Field::bool("orphan", "its tokens have no parent").clear())
            .field(Field::duration("period", "its tokens are periodic").clear())
            .field(Field::bool("renewable", "its tokens may be renewed").default(true).clear())
            .field(Field::duration("explicit_max_ttl", "a hard limit on its tokens' life").clear())
            .field(Field::duration("token_explicit_max_ttl", "the same, by its newer name").clear())
            .field(Field::duration("token_period", "the same as period, by its newer name").clear())
            .field(Field::string("token_type", "service, batch, default-service or default-batch").clear())
            .exists(|c, r| Box::pin(role_exists(c, r)))
            .read(|c, r| Box::pin(read_role(c, r)))
            .create(|c, r| Box::pin(write_role(c, r)))
            .update(|c, r| Box::pin(write_role(c, r)))
            .delete(|c, r| Box::pin(delete_role(c, r))),
        P::new("accessors")
            .summary("Every service token's accessor.")
            .access(Access::Sudo)
            .list(|c, r| Box::pin(accessors(c, r))),
        P::new("tidy")
            .summary("Remove records a crash may have left (accessors and tree links of tokens that are gone).")
            .update(|c, r| Box::pin(tidy(c, r))),
    ]
}

/// The caller as a parent, for the creation rules.
async fn parent(core: &Core, req: &Request) -> Result<Parent, Error> {
    match &req.caller {
        Caller::Root => Ok(Parent {
            policies: vec![crate::policy::Policy::ROOT.to_owned()],
            root: true,
            sudo: true,
            ..Parent::default()
        }),
        Caller::Token(t) => {
            let acl = core.policies().cached_acl(&t.entry.policies).await?;
            Ok(Parent {
                policies: t.entry.policies.clone(),
                root: t.entry.is_root(),
                sudo: acl.allows(&req.path, Capability::Sudo),
                accessor: (t.entry.token_type == TokenType::Service)
                    .then(|| t.entry.accessor.clone()),
                max_expire_time: t.entry.expire_time.max(t.entry.max_expire_time),
                token_type: t.entry.token_type,
            })
        }
        Caller::Anonymous => Err(Error::Forbidden("permission denied".into())),
    }
}

fn create_request(req: &Request) -> Result<CreateRequest, Error> {
    if req.str("entity_alias").is_some_and(|a| !a.is_empty()) {
        return Err(Error::field(
            "entity_alias",
            "entity_alias: this broker has no identity entities",
        ));
    }
    let token_type = match req.str("type") {
        None | Some("") => None,
        Some("service") => Some(TokenType::Service),
        Some("batch") => Some(TokenType::Batch),
        Some(_) => {
            return Err(Error::field("type", "type must be service or batch"));
        }
    };
    Ok(CreateRequest {
        policies: req.list("policies")?,
        no_default_policy: req.bool("no_default_policy")?.unwrap_or(false),
        ttl: req.duration("ttl")?,
        explicit_max_ttl: req.duration("explicit_max_ttl")?,
        period: req.duration("period")?,
        num_uses: req
            .uint("num_uses", u64::from(u32::MAX))?
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        renewable: req.bool("renewable")?,
        no_parent: req.bool("no_parent")?.unwrap_or(false),
        display_name: req.str("display_name").map(str::to_owned),
        meta: req.string_map("meta")?.unwrap_or_default(),
        token_type,
        id: req
            .str("id")
            .filter(|id| !id.is_empty())
            .map(|id| Zeroizing::new(id.to_owned())),
    })
}

/// `create`, `create-orphan`, `create/{role_name}`.
async fn create(core: &Core, req: &Request) -> Result<Reply, Error> {
    let role = match req.params.get("role_name") {
        Some(name) => Some(
            core.tokens()
                .role(name)
                .await?
                .ok_or_else(|| Error::invalid(format!("unknown role {name}")))?,
        ),
        None => None,
    };
    let parent = parent(core, req).await?;
    let asked = create_request(req)?;
    let now = clock::unix_now_signed();
    let orphan_path = req.path.ends_with("/create-orphan");
    let entry = plan(&asked, &parent, role.as_ref(), orphan_path, now)?;
    let (token, entry) = core.tokens().create(entry, asked.id).await?;
    Ok(Reply::Auth {
        auth: entry.auth_block(&token, now),
    })
}

/// The root token's lookup: it is not in the store, and never expires.
fn root_lookup() -> Value {
    let entry = TokenEntry {
        policies: vec![crate::policy::Policy::ROOT.to_owned()],
        path: "auth/token/root".into(),
        display_name: "root".into(),
        orphan: true,
        ..TokenEntry::default()
    };
    entry.lookup_data("", clock::unix_now_signed())
}

fn caller_token(req: &Request) -> Result<&Arc<TokenCaller>, Error> {
    match &req.caller {
        Caller::Token(t) => Ok(t),
        _ => Err(Error::invalid("the root token is not in the token store")),
    }
}

async fn lookup_self(_core: &Core, req: &Request) -> Result<Reply, Error> {
    let now = clock::unix_now_signed();
    match &req.caller {
        Caller::Root => Ok(data(root_lookup())),
        Caller::Token(t) => Ok(data(t.entry.lookup_data(t.token(), now))),
        Caller::Anonymous => Err(Error::Forbidden("permission denied".into())),
    }
}

async fn lookup(core: &Core, req: &Request) -> Result<Reply, Error> {
    let token = req.str("token").unwrap_or_default();
    if core.is_root_token(token).await {
        return Ok(data(root_lookup()));
    }
    // Vault answers an unknown token's lookup with 403 "bad token".
    let found = core
        .tokens()
        .find(token)
        .await?
        .ok_or_else(|| Error::Forbidden("bad token".into()))?;
    Ok(data(
        found
            .entry
            .lookup_data(found.token(), clock::unix_now_signed()),
    ))
}

async fn lookup_accessor(core: &Core, req: &Request) -> Result<Reply, Error> {
    let accessor = req.str("accessor").unwrap_or_default();
    let (_, entry) = core
        .tokens()
        .by_accessor(accessor)
        .await?
        .ok_or_else(|| Error::invalid("invalid accessor"))?;
    Ok(data(entry.lookup_data("", clock::unix_now_signed())))
}

/// The stored id (keyed hash) of the token a renew or revoke names.
async fn target(core: &Core, req: &Request) -> Result<(Option<String>, TokenEntry), Error> {
    if let Some(accessor) = req.str("accessor") {
        let (id, entry) = core
            .tokens()
            .by_accessor(accessor)
            .await?
            .ok_or_else(|| Error::invalid("invalid accessor"))?;
        return Ok((Some(id), entry));
    }
    if let Some(token) = req.str("token") {
        if core.is_root_token(token).await {
            return Err(Error::invalid(
                "the root token is not in the token store: it cannot be renewed or revoked here",
            ));
        }
        let found = core
            .tokens()
            .find(token)
            .await?
            .ok_or_else(|| Error::invalid("bad token"))?;
        return Ok((found.id.clone(), found.entry));
    }
    let t = caller_token(req)?;
    Ok((t.id.clone(), t.entry.clone()))
}

async fn renew(core: &Core, req: &Request) -> Result<Reply, Error> {
    let (id, entry) = target(core, req).await?;
    let Some(id) = id.filter(|_| entry.token_type == TokenType::Service) else {
        return Err(Error::invalid("batch tokens cannot be renewed"));
    };
    let increment = req.duration("increment")?.unwrap_or_default();
    let entry = core.tokens().renew(&id, increment).await?;
    let now = clock::unix_now_signed();
    // The token itself is not shown again: the caller holds it, or asked
    // by accessor and must not learn it.
    let token = match &req.caller {
        Caller::Token(t) if t.entry.accessor == entry.accessor => t.token().to_owned(),
        _ => req.str("token").unwrap_or_default().to_owned(),
    };
    let mut auth = entry.auth_block(&token, now);
    if req.str("accessor").is_some() {
        auth["client_token"] = json!("");
    }
    Ok(Reply::Auth { auth })
}

async fn revoke(core: &Core, req: &Request) -> Result<Reply, Error> {
    // Revoking a token that is already gone succeeds, as in Vault (an
    // unknown accessor is still a 400: it is more likely a mistake).
    if let Some(token) = req.str("token")
        && !core.is_root_token(token).await
        && core.tokens().find(token).await?.is_none()
    {
        return Ok(no_content());
    }
    let (_, entry) = target(core, req).await?;
    if entry.token_type == TokenType::Batch {
        return Err(Error::invalid(
            "batch tokens cannot be revoked; they expire with their TTL or their parent",
        ));
    }
    if req.path.ends_with("/revoke-orphan") {
        core.tokens().revoke_orphan(&entry.accessor).await?;
    } else {
        core.tokens().revoke_tree(&entry.accessor).await?;
    }
    Ok(no_content())
}

async fn role_exists(core: &Core, req: &Request) -> Result<bool, Error> {
    Ok(core.tokens().role(req.param("role_name")?).await?.is_some())
}

async fn list_roles(core: &Core, _req: &Request) -> Result<Reply, Error> {
    list(core.tokens().roles().await?)
}

async fn read_role(core: &Core, req: &Request) -> Result<Reply, Error> {
    let name = req.param("role_name")?;
    let role = core
        .tokens()
        .role(name)
        .await?
        .ok_or_else(|| Error::NotFound(String::new()))?;
    Ok(data(json!({
        "name": role.name,
        "allowed_policies": role.allowed_policies,
        "disallowed_policies": role.disallowed_policies,
        "orphan": role.orphan,
        "period": role.period,
        "token_period": role.period,
        "renewable": role.renewable,
        "explicit_max_ttl": role.explicit_max_ttl,
        "token_explicit_max_ttl": role.explicit_max_ttl,
        "token_type": role.token_type.as_str(),
        "path_suffix": "",
    })))
}

fn valid_role_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            "role_name",
            "role_name: 1-128 letters, digits, '-', '_' or '.'",
        ))
    }
}

async fn write_role(core: &Core, req: &Request) -> Result<Reply, Error> {
    let name = req.param("role_name")?;
    valid_role_name(name)?;
    let mut role = core.tokens().role(name).await?.unwrap_or(TokenRole {
        name: name.to_owned(),
        renewable: true,
        ..TokenRole::default()
    });
    let normalize = |field: &'static str, names: Vec<String>| {
        crate::token::normalize_policies(&names).map_err(|_| {
            Error::field(
                field,
                format!("{field}: policy names are letters, digits, '-', '_' or '.'"),
            )
        })
    };
    if let Some(p) = req.list("allowed_policies")? {
        role.allowed_policies = normalize("allowed_policies", p)?;
    }
    if let Some(p) = req.list("disallowed_policies")? {
        role.disallowed_policies = normalize("disallowed_policies", p)?;
    }
    if let Some(b) = req.bool("orphan")? {
        role.orphan = b;
    }
    if let Some(b) = req.bool("renewable")? {
        role.renewable = b;
    }
    if let Some(d) = req.duration("token_period")?.or(req.duration("period")?) {
        role.period = d.as_secs();
    }
    if let Some(d) = req
        .duration("token_explicit_max_ttl")?
        .or(req.duration("explicit_max_ttl")?)
    {
        role.explicit_max_ttl = d.as_secs();
    }
    if let Some(t) = req.str("token_type") {
        role.token_type = RoleTokenType::parse(t).ok_or_else(|| {
            Error::field(
                "token_type",
                "token_type must be service, batch, default-service or default-batch",
            )
        })?;
    }
    if role
        .allowed_policies
        .iter()
        .any(|p| p == crate::policy::Policy::ROOT)
        && !req.caller.is_root()
    {
        return Err(Error::Forbidden(
            "only a root token may write a role that allows the root policy".into(),
        ));
    }
    core.tokens().put_role(&role).await?;
    Ok(no_content())
}

async fn delete_role(core: &Core, req: &Request) -> Result<Reply, Error> {
    core.tokens().delete_role(req.param("role_name")?).await?;
    Ok(no_content())
}

async fn accessors(core: &Core, _req: &Request) -> Result<Reply, Error> {
    list(core.tokens().accessors().await?)
}

/// Vault answers a tidy with no data (clients such as vaultrs read it as
/// nothing); what it removed goes to the log, as in Vault.
async fn tidy(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let removed = core.tokens().tidy().await?;
    tracing::info!(removed, "token store tidied");
    Ok(data(Value::Null))
}
