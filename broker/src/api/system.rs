//! The system backend's path table: everything under `sys/`. Its handlers
//! live beside it, one module per concern (`mounts`, `leases`, `policies`,
//! `audit`, `seal`); this table is the one place their paths are written.

use std::sync::OnceLock;

use crate::core::Core;
use crate::framework::{Access, Error, Field, Path, PatternError, Reply, Request, Table};

/// Paths of this backend's table.
type P = Path<Core>;

use super::{
    audit, capabilities, cluster, leases, mounts, openapi, plugins, policies, seal, wrapping,
};

/// Where the system backend is mounted.
pub(crate) const MOUNT: &str = "sys/";

const TTL: &str = "duration: seconds, or a string such as \"1h30m\"";

/// The system table, built once.
pub(crate) fn table() -> Result<&'static Table<Core>, Error> {
    static TABLE: OnceLock<Result<Table<Core>, PatternError>> = OnceLock::new();
    TABLE
        .get_or_init(|| Table::new(paths()))
        .as_ref()
        .map_err(|e| Error::Internal(e.to_string()))
}

async fn metrics(core: &Core, _req: &Request) -> Result<Reply, Error> {
    let metrics = crate::metrics::metrics();
    metrics.set_leases(&core.leases().counts().await?);
    // Nodes sharing a database are told apart by a `node` label.
    let cluster = core.cluster();
    let text = if cluster.is_shared() {
        metrics.encode_for_node(cluster.node_id().as_str())
    } else {
        metrics.encode()
    };
    Ok(Reply::Raw {
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: text.into_bytes(),
    })
}

async fn openapi_document(core: &Core, _req: &Request) -> Result<Reply, Error> {
    Ok(Reply::Raw {
        content_type: "application/json",
        body: openapi::cached_document(core)
            .await
            .map(|doc| doc.to_vec())
            .map_err(|e| Error::Internal(format!("cannot write the OpenAPI document: {e}")))?,
    })
}

fn lease_id_field() -> Field {
    Field::string("lease_id", "the lease").clear()
}

fn increment_field() -> Field {
    Field::duration(
        "increment",
        "how much longer from now (0: the lease's own TTL)",
    )
    .clear()
}

/// The lease paths, under `leases/` and (Vault's older paths) at the top.
fn lease_paths(legacy: bool) -> Vec<Path<Core>> {
    let p = |modern: &'static str, old: &'static str| if legacy { old } else { modern };
    let note = |summary: &'static str| {
        if legacy {
            "Vault's older path, the same as under sys/leases/."
        } else {
            summary
        }
    };
    vec![
        P::new(p("leases/renew", "renew"))
            .summary(note("Renew a lease; never past its max TTL."))
            .field(lease_id_field().required())
            .field(increment_field())
            .update(|c, r| Box::pin(leases::renew(c, r))),
        P::new(p("leases/renew/{lease_id+}", "renew/{lease_id+}"))
            .summary(note("Renew the lease in the path (may contain '/')."))
            .field(increment_field())
            .update(|c, r| Box::pin(leases::renew(c, r))),
        P::new(p("leases/revoke", "revoke"))
            .summary(note(
                "Revoke a lease now: the plugin removes the credential.",
            ))
            .field(lease_id_field().required())
            .update(|c, r| Box::pin(leases::revoke(c, r))),
        P::new(p("leases/revoke/{lease_id+}", "revoke/{lease_id+}"))
            .summary(note("Revoke the lease in the path (may contain '/')."))
            .update(|c, r| Box::pin(leases::revoke(c, r))),
        P::new(p("leases/revoke-prefix", "revoke-prefix"))
            .summary(note(
                "Needs a prefix: answers 400, never revokes every lease.",
            ))
            .access(Access::Sudo)
            .update(|c, r| Box::pin(leases::revoke_prefix(c, r))),
        P::new(p(
            "leases/revoke-prefix/{prefix+}",
            "revoke-prefix/{prefix+}",
        ))
        .summary(note(
            "Revoke every lease under a prefix (a role, a mount), by whole segments.",
        ))
        .access(Access::Sudo)
        .update(|c, r| Box::pin(leases::revoke_prefix(c, r))),
        P::new(p("leases/revoke-force", "revoke-force"))
            .summary(note(
                "Needs a prefix: answers 400, never forgets every lease.",
            ))
            .access(Access::Sudo)
            .update(|c, r| Box::pin(leases::revoke_force(c, r))),
        P::new(p("leases/revoke-force/{prefix+}", "revoke-force/{prefix+}"))
            .summary(note(
                "Forget every lease under a prefix without revoking the credentials. Last resort.",
            ))
            .access(Access::Sudo)
            .update(|c, r| Box::pin(leases::revoke_force(c, r))),
    ]
}

fn paths() -> Vec<Path<Core>> {
    let mut paths = vec![
        P::new("health")
            .summary("Health of the broker (no token needed): 200 serving, 503 sealed; sealedcode, activecode, standbycode and standbyok change the codes.")
            .access(Access::Open)
            .read(|c, r| Box::pin(seal::health(c, r))),
        P::new("seal-status")
            .summary("Whether the broker is sealed (no token needed).")
            .access(Access::Open)
            .read(|c, r| Box::pin(seal::seal_status(c, r))),
        P::new("init")
            .summary("Whether the broker is initialized (no token needed); a write initializes a new one and answers its key shares and root token, once.")
            .access(Access::Open)
            .field(Field::int("secret_shares", "unseal key shares to make (shamir seal)"))
            .field(Field::int("secret_threshold", "unseal key shares needed to unseal"))
            .field(Field::int("recovery_shares", "recovery key shares to make (auto-unseal seals)"))
            .field(Field::int("recovery_threshold", "recovery key shares needed"))
            .read(|c, r| Box::pin(seal::init(c, r)))
            .update(|c, r| Box::pin(seal::init_again(c, r))),
        P::new("unseal")
            .summary("Give one key share (no token needed); the broker unseals once the threshold is met. reset=true forgets the shares given so far; migrate=true gives the previous seal's shares during a seal migration.")
            .access(Access::Open)
            .field(Field::string("key", "one key share, hex or base64").sensitive())
            .field(Field::bool("reset", "forget the shares given so far"))
            .field(Field::bool("migrate", "the shares are the previous seal's (seal migration)"))
            .update(|c, r| Box::pin(seal::unseal(c, r))),
        P::new("seal")
            .summary("Seal the broker: its keys leave memory and every request but health, seal-status and unseal gets 503 until it is unsealed.")
            .access(Access::Sudo)
            .update(|c, r| Box::pin(seal::seal(c, r))),
        P::new("rekey/init")
            .summary("A rekey of the unseal key shares (shamir seal): read its progress, start one (secret_shares, secret_threshold) or cancel it. No token: the current shares authorize.")
            .access(Access::Public)
            .field(Field::int("secret_shares", "new key shares to make"))
            .field(Field::int("secret_threshold", "new key shares needed"))
            .field(Field::string_list("pgp_keys", "not supported"))
            .field(Field::bool("backup", "not supported"))
            .field(Field::bool("require_verification", "not supported"))
            .read(|c, r| Box::pin(seal::rekey_status(c, r)))
            .update(|c, r| Box::pin(seal::rekey_start(c, r)))
            .delete(|c, r| Box::pin(seal::rekey_cancel(c, r))),
        P::new("rekey/update")
            .summary("Give one current key share to the rekey in progress, with its nonce; at the threshold the new shares are answered, once.")
            .access(Access::Public)
            .field(Field::string("key", "one current key share, hex or base64").sensitive())
            .field(Field::string("nonce", "the rekey's nonce"))
            .update(|c, r| Box::pin(seal::rekey_update(c, r))),
        P::new("rekey-recovery-key/init")
            .summary("A rekey of the recovery key shares (auto-unseal seals): read its progress, start one (secret_shares, secret_threshold) or cancel it. No token: the current shares authorize.")
            .access(Access::Public)
            .field(Field::int("secret_shares", "new key shares to make"))
            .field(Field::int("secret_threshold", "new key shares needed"))
            .field(Field::string_list("pgp_keys", "not supported"))
            .field(Field::bool("backup", "not supported"))
            .field(Field::bool("require_verification", "not supported"))
            .read(|c, r| Box::pin(seal::rekey_status(c, r)))
            .update(|c, r| Box::pin(seal::rekey_start(c, r)))
            .delete(|c, r| Box::pin(seal::rekey_cancel(c, r))),
        P::new("rekey-recovery-key/update")
            .summary("Give one current key share to the rekey in progress, with its nonce; at the threshold the new shares are answered, once.")
            .access(Access::Public)
            .field(Field::string("key", "one current key share, hex or base64").sensitive())
            .field(Field::string("nonce", "the rekey's nonce"))
            .update(|c, r| Box::pin(seal::rekey_update(c, r))),
        P::new("ha-status")
            .summary("The nodes sharing this broker's storage: each node's address, last echo, version and the once-only jobs it holds (active_node: the periodic job).")
            .read(|c, r| Box::pin(cluster::ha_status(c, r))),
        P::new("leader")
            .summary("Whether several nodes may share this storage (ha_enabled) and which node runs the periodic job (no token needed).")
            .access(Access::Open)
            .read(|c, r| Box::pin(cluster::leader(c, r))),
        P::new("rotate")
            .summary("Rotate the barrier key: a new term seals from now on; older terms still open what they sealed until a background rewrap moves it to the new term.")
            .access(Access::Sudo)
            .update(|c, r| Box::pin(seal::rotate(c, r))),
        P::new("key-status")
            .summary("The barrier key's active term, when it was made, and how far the background rewrap to it has come.")
            .access(Access::Sudo)
            .read(|c, r| Box::pin(seal::key_status(c, r))),
        P::new("mounts")
            .summary("The mounted secrets engines.")
            .read(|c, r| Box::pin(mounts::list(c, r))),
        P::new("mounts/{path+}/tune")
            .summary("Read or change a mount's description and lease TTLs.")
            .field(Field::string("description", "free text").clear())
            .field(Field::duration("default_lease_ttl", TTL).clear())
            .field(Field::duration("max_lease_ttl", TTL).clear())
            .read(|c, r| Box::pin(mounts::read_tune(c, r)))
            .update(|c, r| Box::pin(mounts::tune(c, r))),
        P::new("mounts/{path+}")
            .summary("Enable (write) or disable (delete) a secrets engine; disabling revokes its leases.")
            .field(Field::string("type", "the engine type (sys/mounts lists what is mounted; database, kv (kv-v2: kv version 2) and pki are offered)").clear().required())
            .field(Field::string("description", "free text").clear())
            .field(Field::object("config", "default_lease_ttl and max_lease_ttl (durations)").clear())
            .field(Field::object("options", "the engine's options, text to text: {\"version\": \"2\"} for kv version 2").clear())
            .update(|c, r| Box::pin(mounts::enable(c, r)))
            .delete(|c, r| Box::pin(mounts::disable(c, r))),
        P::new("auth")
            .summary("The enabled auth methods, the token store included.")
            .read(|c, r| Box::pin(mounts::list(c, r))),
        P::new("auth/{path+}/tune")
            .summary("Read or change an auth method's description and token TTLs.")
            .access(Access::Sudo)
            .field(Field::string("description", "free text").clear())
            .field(Field::duration("default_lease_ttl", TTL).clear())
            .field(Field::duration("max_lease_ttl", TTL).clear())
            .read(|c, r| Box::pin(mounts::read_tune(c, r)))
            .update(|c, r| Box::pin(mounts::tune(c, r))),
        P::new("auth/{path+}")
            .summary("Enable (write) or disable (delete) an auth method; disabling revokes the tokens it issued and their leases.")
            .access(Access::Sudo)
            .field(Field::string("type", "the method type (approle, jwt or oidc)").clear().required())
            .field(Field::string("description", "free text").clear())
            .field(Field::object("config", "default_lease_ttl and max_lease_ttl (durations)").clear())
            .update(|c, r| Box::pin(mounts::enable(c, r)))
            .delete(|c, r| Box::pin(mounts::disable(c, r))),
        P::new("leases/lookup")
            .summary("Look up a lease (write), or list the top level of lease ids (list).")
            .field(lease_id_field())
            .update(|c, r| Box::pin(leases::lookup(c, r)))
            .list(|c, r| Box::pin(leases::list_ids(c, r))),
        P::new("leases/lookup/{prefix+}")
            .summary("List lease ids one level below a prefix (may contain '/').")
            .access(Access::Sudo)
            .list(|c, r| Box::pin(leases::list_ids(c, r))),
    ];
    paths.extend(lease_paths(false));
    paths.extend(lease_paths(true));
    paths.extend([
        P::new("policies/acl")
            .summary("The names of the ACL policies, root and default included.")
            .list(|c, r| Box::pin(policies::list(c, r))),
        P::new("policies/acl/{name+}")
            .summary("Read, write or delete an ACL policy: Vault's HCL (or JSON) path rules. A key this broker does not enforce (allowed_parameters, wrapping TTLs, ...) refuses the policy rather than being ignored. root cannot be changed; default cannot be deleted.")
            .field(Field::string("policy", "the policy document: path \"secret/data/*\" { capabilities = [\"read\"] } ...").required())
            .exists(|c, r| Box::pin(policies::exists(c, r)))
            .read(|c, r| Box::pin(policies::read(c, r)))
            .create(|c, r| Box::pin(policies::write(c, r)))
            .update(|c, r| Box::pin(policies::write(c, r)))
            .delete(|c, r| Box::pin(policies::delete(c, r))),
        P::new("policies/password")
            .summary("The names of the password policies.")
            .list(|c, r| Box::pin(policies::password_list(c, r))),
        P::new("policies/password/{name}")
            .summary("Read, write or delete a password policy: how passwords the broker generates look (a database config names one in password_policy). length (4 to 100) and rule \"charset\" blocks with charset and min-chars, in Vault's HCL or JSON.")
            .field(Field::string("policy", "the policy: length = 20 and rule \"charset\" { charset = \"abc...\" min-chars = 1 } blocks, one key per line").required())
            .exists(|c, r| Box::pin(policies::password_exists(c, r)))
            .read(|c, r| Box::pin(policies::password_read(c, r)))
            .create(|c, r| Box::pin(policies::password_write(c, r)))
            .update(|c, r| Box::pin(policies::password_write(c, r)))
            .delete(|c, r| Box::pin(policies::password_delete(c, r))),
        P::new("policies/password/{name}/generate")
            .summary("A password made from the password policy, every rule met.")
            .read(|c, r| Box::pin(policies::password_generate(c, r))),
        P::new("policy")
            .summary("The names of the ACL policies (the older path: keys and policies).")
            .read(|c, r| Box::pin(policies::list_legacy(c, r))),
        P::new("policy/{name+}")
            .summary("The older path for an ACL policy: as sys/policies/acl/{name}, but read back as rules.")
            .field(Field::string("policy", "the policy document"))
            .field(Field::string("rules", "the policy document (the older name)"))
            .read(|c, r| Box::pin(policies::read(c, r)))
            .update(|c, r| Box::pin(policies::write(c, r)))
            .delete(|c, r| Box::pin(policies::delete(c, r))),
        P::new("plugins/catalog")
            .summary("Every plugin: names by type, and each one's version, contract version and SHA-256 in `detailed`. Built-ins are listed with their versions.")
            .access(Access::Sudo)
            .read(|c, r| Box::pin(plugins::list_all(c, r))),
        P::new("plugins/catalog/{type}")
            .summary("The names of the plugins of a type (database, secret).")
            .access(Access::Sudo)
            .list(|c, r| Box::pin(plugins::list_type(c, r))),
        P::new("plugins/catalog/{type}/{name}")
            .summary("Register (write), read or deregister (delete) a plugin. Its file, `command` in the plugin directory, must have the SHA-256 given; it is checked again at every reload and unseal, and a file that changed is refused.")
            .access(Access::Sudo)
            .field(Field::string("sha256", "the SHA-256 of the plugin's file, hex").clear())
            .field(Field::string("command", "the plugin's file name in the plugin directory").clear())
            .field(Field::string("version", "the version to register it as").clear())
            .field(Field::comma_list("args", "not supported (WASM plugins take none)").clear())
            .field(Field::comma_list("env", "not supported (WASM plugins take none)").clear())
            .read(|c, r| Box::pin(plugins::read(c, r)))
            .update(|c, r| Box::pin(plugins::register(c, r)))
            .delete(|c, r| Box::pin(plugins::deregister(c, r))),
        P::new("plugins/reload/backend")
            .summary("Read a registered plugin's file again, check its SHA-256 and load it.")
            .access(Access::Sudo)
            .field(Field::string("plugin", "the registered plugin's name").clear())
            .field(Field::comma_list("mounts", "not supported: name the plugin").clear())
            .update(|c, r| Box::pin(plugins::reload(c, r))),
        P::new("audit")
            .summary("The enabled audit devices.")
            .access(Access::Sudo)
            .read(|c, r| Box::pin(audit::list(c, r))),
        P::new("audit/{path+}")
            .summary("Enable (write) or disable (delete) an audit device. Files are created with mode 0600, never through a symlink, and outside dev mode only under the configured audit.file_dirs.")
            .access(Access::Sudo)
            .field(Field::string("type", "file").clear().required())
            .field(Field::string("description", "free text").clear())
            .field(Field::object("options", "file_path (a path or stdout), log_raw, hmac_accessor, fsync").clear())
            .update(|c, r| Box::pin(audit::enable(c, r)))
            .delete(|c, r| Box::pin(audit::disable(c, r))),
        P::new("audit-hash/{path+}")
            .summary("HMAC a value the way the device logs it, to find it in the log.")
            .field(Field::string("input", "the value to hash").required())
            .update(|c, r| Box::pin(audit::hash(c, r))),
        P::new("audit-public-key")
            .summary("The public key (PEM) that checks the audit log's signed checkpoints: `broker audit verify --public-key FILE`.")
            .read(|c, r| Box::pin(audit::public_key(c, r))),
        P::new("capabilities")
            .summary("What the token in the body may do on each path: root, deny, or the capabilities its policies grant.")
            .field(Field::string("token", "the token").sensitive().required())
            .field(Field::comma_list("paths", "the paths").clear())
            .field(Field::string("path", "one path (the older field)").clear())
            .update(|c, r| Box::pin(capabilities::of_token(c, r))),
        P::new("capabilities-self")
            .summary("What the caller's token may do on each path.")
            .field(Field::comma_list("paths", "the paths").clear())
            .field(Field::string("path", "one path (the older field)").clear())
            .update(|c, r| Box::pin(capabilities::of_self(c, r))),
        P::new("capabilities-accessor")
            .summary("What the token with this accessor may do on each path.")
            .field(Field::string("accessor", "the token's accessor").clear().required())
            .field(Field::comma_list("paths", "the paths").clear())
            .field(Field::string("path", "one path (the older field)").clear())
            .update(|c, r| Box::pin(capabilities::of_accessor(c, r))),
        P::new("wrapping/wrap")
            .summary("Wrap the body: it comes back behind a single-use wrapping token (X-Vault-Wrap-TTL, default 5m).")
            .update(|c, r| Box::pin(wrapping::wrap_data(c, r))),
        P::new("wrapping/unwrap")
            .summary("Unwrap a wrapped response, once: the wrapping token in the body, or as the request's token.")
            .field(Field::string("token", "the wrapping token (else the request's own)").sensitive())
            .update(|c, r| Box::pin(wrapping::unwrap(c, r))),
        P::new("wrapping/lookup")
            .summary("When and where a wrapping token was made (no token needed; the wrapping token is not spent).")
            .access(Access::Public)
            .field(Field::string("token", "the wrapping token").sensitive().required())
            .update(|c, r| Box::pin(wrapping::lookup(c, r))),
        P::new("wrapping/rewrap")
            .summary("Move a wrapped response behind a new wrapping token with the same TTL; the old one is spent.")
            .field(Field::string("token", "the wrapping token (else the request's own)").sensitive())
            .update(|c, r| Box::pin(wrapping::rewrap(c, r))),
        P::new("metrics")
            .summary("Metrics in Prometheus' text format: requests, issuance latency per mount, leases by state, revocation failures, plugin deadline hits, audit failures.")
            .read(|c, r| Box::pin(metrics(c, r))),
        P::new("internal/specs/openapi")
            .summary("This document: every path of the system and of each mount, from their tables.")
            .read(|c, r| Box::pin(openapi_document(c, r))),
    ]);
    paths
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_system_table_builds() {
        let table = super::table().unwrap();
        assert!(table.find("mounts/team/db/tune").is_some());
        let tune = table.find("mounts/team/db/tune").unwrap();
        assert_eq!(
            table.paths()[tune.index].pattern.as_str(),
            "mounts/{path+}/tune"
        );
        assert_eq!(tune.params.get("path"), Some("team/db"));
        let legacy = table.find("revoke/db/creds/r/x").unwrap();
        assert_eq!(legacy.params.get("lease_id"), Some("db/creds/r/x"));
    }
}
