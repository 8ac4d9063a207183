//! Secrets engines: what a mount does. Each engine is one folder here and
//! one line in the `engines!` list below (which makes [`ENGINES`]); it
//! declares its paths as a table on the
//! [`framework`](crate::framework) and knows nothing of HTTP.
//!
//! An engine must never reach another mount's storage (it is given a view
//! rooted at its own mount's UUID), nor hold a key in a plugin's reach.

use crate::framework::{BackendFactory, Error};

/// Declares the engine modules and [`ENGINES`] from one line per engine:
/// its mount type and its module, which has a `factory`.
macro_rules! engines {
    ($($kind:literal => $module:ident,)*) => {
        $(pub mod $module;)*

        /// The secrets engines this broker offers, by mount type: the
        /// registry the core builds its backends from.
        pub const ENGINES: &[(&str, BackendFactory)] = &[$(($kind, $module::factory),)*];
    };
}

engines! {
    "database" => database,
    "kv" => kv,
    "pki" => pki,
    "rabbitmq" => rabbitmq,
}

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
