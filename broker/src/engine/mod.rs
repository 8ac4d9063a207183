//! Secrets engines: what a mount does. Each engine is one folder here and
//! one line in [`ENGINES`]; it declares its paths as a table on the
//! [`framework`](crate::framework) and knows nothing of HTTP.
//!
//! An engine must never reach another mount's storage (it is given a view
//! rooted at its own mount's UUID), nor hold a key in a plugin's reach.

pub mod database;
pub mod pki;

use crate::framework::{BackendFactory, Error};

/// The secrets engines this broker offers, by mount type: the registry
/// the core builds its backends from.
pub const ENGINES: &[(&str, BackendFactory)] = &[
    ("database", database::DatabaseBackend::factory),
    ("pki", pki::PkiBackend::factory),
];

/// Checks a role or config name: 1-128 letters, digits, `-`, `_` or `.`.
pub(crate) fn valid_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::field(
            "name",
            format!("invalid name {name:?}: use 1-128 letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(())
}
