//! Auth methods: how an application or a pipeline proves who it is and
//! gets a token of the token store. Each method is one folder here and one
//! line in the `auth_methods!` list below (which makes [`AUTH_METHODS`]);
//! it declares its paths as a table on the [`framework`](crate::framework),
//! with its login path public (no token needed) and the rest under ACL.
//!
//! A method must never store a secret it is shown (role secrets are kept
//! as keyed hashes), say which part of a failed login was wrong, or compare
//! a secret in time that depends on it.

pub mod lockout;
pub mod login;
pub mod token_fields;

use crate::framework::BackendFactory;

/// Declares the method modules and [`AUTH_METHODS`] from one line each:
/// its type and its module, which has a `factory`; `aliases` are more
/// types served by a module declared above (Vault's `oidc` is its JWT
/// method under another name).
macro_rules! auth_methods {
    ($($kind:literal => $module:ident,)* aliases { $($alias:literal => $aliased:ident,)* }) => {
        $(pub mod $module;)*

        /// The auth methods this broker offers, by type.
        pub const AUTH_METHODS: &[(&str, BackendFactory)] = &[
            $(($kind, $module::factory),)*
            $(($alias, $aliased::factory),)*
        ];
    };
}

auth_methods! {
    "approle" => approle,
    "cert" => cert,
    "jwt" => jwt,
    aliases {
        "oidc" => jwt,
    }
}
