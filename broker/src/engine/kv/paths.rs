//! The KV engine's two tables, as Vault's `kv` plugin has them: version
//! 1's single path (any path is a secret, and a folder to list), and
//! version 2's `config`, `data/`, `metadata/`, `delete/`, `undelete/`,
//! `destroy/` and `subkeys/`. A mount serves the table of its version.
//!
//! No field is marked clear: a secret's values, and everything said about
//! it, are HMAC'd in the audit log.

use super::KvBackend;
use crate::framework::{Field, Path};

/// Paths of this backend's tables.
type P = Path<KvBackend>;

const DATA: &str = "the secret: an object of keys and values, stored and returned as given";
const OPTIONS: &str = "write options: cas, the version the write expects to replace (0: only if the secret has no version yet)";
const VERSIONS: &str = "the version numbers to act on";
const MAX_VERSIONS: &str = "versions kept per secret (0: the mount's setting, else 10); older versions are removed as new ones are written";
const CAS_REQUIRED: &str = "every write must give options.cas";
const CUSTOM_METADATA: &str = "your own key/value pairs describing the secret (at most 64; keys of 1-128 bytes, values of 1-512)";

/// Version 1: the request body is the secret.
pub fn v1() -> Vec<P> {
    vec![
        P::new("")
            .summary("List the secrets and folders at the top of the mount.")
            .list(|b, r| Box::pin(b.v1_list(r))),
        P::new("{path+}")
            .summary("A secret (read, write, delete), or the folder of that name (list).")
            .description(
                "The body of a write is the secret: every key and value is stored as given and \
                 replaces what was there. A read answers it as data, with lease_duration taken \
                 from its ttl field if it has one (else the mount's default TTL): a hint of when \
                 to read it again, not a lease.",
            )
            .read(|b, r| Box::pin(b.v1_read(r)))
            .create(|b, r| Box::pin(b.v1_write(r)))
            .update(|b, r| Box::pin(b.v1_write(r)))
            .delete(|b, r| Box::pin(b.v1_delete(r)))
            .list(|b, r| Box::pin(b.v1_list(r)))
            .exists(|b, r| Box::pin(b.v1_exists(r))),
    ]
}

/// Version 2: versions, metadata, check-and-set.
pub fn v2() -> Vec<P> {
    vec![
        P::new("config")
            .summary("The mount's settings, applied to every secret.")
            .field(Field::int("max_versions", MAX_VERSIONS))
            .field(Field::bool("cas_required", CAS_REQUIRED))
            .field(Field::signed_duration(
                "delete_version_after",
                "how long after it is written a version is deleted (0: not set; negative: off for every secret)",
            ))
            .read(|b, r| Box::pin(b.config_read(r)))
            .update(|b, r| Box::pin(b.config_write(r))),
        P::new("data/{path+}")
            .summary("A secret's versions: read one (?version=N, else the newest), write a new one, patch the newest, or delete the newest.")
            .description(
                "A write stores data as a new version; with options.cas it is refused unless \
                 cas is the current version. A PATCH (Content-Type: application/merge-patch+json) \
                 applies data to the newest version as a JSON merge patch (RFC 7396: null \
                 removes a key) and stores the result as a new version. A delete marks the \
                 newest version deleted; undelete brings it back. A read of a deleted or \
                 destroyed version answers 404 with its metadata.",
            )
            .field(Field::object("data", DATA))
            .field(Field::object("options", OPTIONS))
            .read(|b, r| Box::pin(b.data_read(r)))
            .create(|b, r| Box::pin(b.data_write(r)))
            .update(|b, r| Box::pin(b.data_write(r)))
            .patch(|b, r| Box::pin(b.data_patch(r)))
            .delete(|b, r| Box::pin(b.data_delete(r)))
            .exists(|b, r| Box::pin(b.data_exists(r))),
        P::new("delete/{path+}")
            .summary("Mark versions of a secret deleted (they can be undeleted).")
            .field(Field::comma_int_list("versions", VERSIONS).required())
            .update(|b, r| Box::pin(b.versions_delete(r))),
        P::new("undelete/{path+}")
            .summary("Bring deleted versions of a secret back.")
            .field(Field::comma_int_list("versions", VERSIONS).required())
            .update(|b, r| Box::pin(b.versions_undelete(r))),
        P::new("destroy/{path+}")
            .summary("Remove the values of versions of a secret for good (their metadata says destroyed).")
            .field(Field::comma_int_list("versions", VERSIONS).required())
            .update(|b, r| Box::pin(b.versions_destroy(r))),
        P::new("metadata")
            .summary("List the secrets and folders at the top of the mount.")
            .list(|b, r| Box::pin(b.metadata_list(r))),
        P::new("metadata/{path+}")
            .summary("A secret's metadata and settings (read, write, patch), every version with it (delete), or the folder of that name (list).")
            .field(Field::int("max_versions", MAX_VERSIONS))
            .field(Field::bool("cas_required", CAS_REQUIRED))
            .field(Field::duration(
                "delete_version_after",
                "how long after it is written a version of this secret is deleted (0: the mount's setting); the shorter of this and the mount's applies",
            ))
            .field(Field::object("custom_metadata", CUSTOM_METADATA))
            .read(|b, r| Box::pin(b.metadata_read(r)))
            .create(|b, r| Box::pin(b.metadata_write(r)))
            .update(|b, r| Box::pin(b.metadata_write(r)))
            .patch(|b, r| Box::pin(b.metadata_patch(r)))
            .delete(|b, r| Box::pin(b.metadata_delete(r)))
            .list(|b, r| Box::pin(b.metadata_list(r)))
            .exists(|b, r| Box::pin(b.metadata_exists(r))),
        P::new("subkeys/{path+}")
            .summary("A version's keys without their values (?version=N, ?depth=N: 0 for every level).")
            .read(|b, r| Box::pin(b.subkeys_read(r))),
    ]
}
