//! JWT (`auth/jwt`, and Vault's `oidc` type for its JWT login path): a
//! workload shows a JSON Web Token its platform signed (a CI job's OIDC
//! token, a Kubernetes projected service-account token) and gets a token
//! with the policies of the role whose bounds the JWT's claims meet.
//!
//! How a login is checked (docs/architecture.md, "Auth methods"):
//! 1. [`jws`] splits and decodes the compact JWT strictly, before any key
//!    is consulted: at most [`jws::MAX_LEN`] bytes, three base64url parts,
//!    a JSON header whose `alg` is an asymmetric algorithm the mount
//!    accepts (`none` and the HMAC ones never are: a public key is no
//!    secret), no `crit`, and a JSON object of claims.
//! 2. [`keys`] finds the key: the configured PEM keys, or the issuer's
//!    JWKS (from `jwks_url` or OIDC discovery), cached per mount, fetched
//!    again when a `kid` is unknown or the copy is old, never more than
//!    once per [`keys::MIN_REFRESH`]. Keys in the token's header (`jwk`,
//!    `jku`, `x5u`) are never used.
//! 3. The signature is checked (`jsonwebtoken`), with a key whose type
//!    fits the algorithm.
//! 4. [`claims`] checks the claims with strict types: `exp` (required),
//!    `nbf`/`iat` with the role's leeways, `iss`, `aud` (a string or an
//!    array of strings: the CVE-2024-5798 class), `sub`, the bound claims
//!    and the user claim; then copies the mapped claims into metadata.
//!
//! A failed login gets one answer, whichever check failed ([`refused`]);
//! the reason goes to the debug log, never the token. Failures count
//! toward the lockout of the role and the identity the token names.

mod claims;
mod config;
mod jws;
mod keys;
mod paths;
mod role;

pub use paths::factory;

use crate::framework::Error;

/// The one answer every failed login gets.
pub(crate) fn refused() -> Error {
    Error::invalid("invalid JWT or role")
}

/// Why a login was refused: for the debug log only, never the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such role, or not a JWT role.
    Role,
    /// The identity is locked out.
    Locked,
    /// The mount has no config, or no keys could be had.
    NoKeys,
    /// Longer than [`jws::MAX_LEN`].
    TooLong,
    /// Not three base64url parts of JSON.
    Malformed(&'static str),
    /// An algorithm the mount does not accept (`none`, HMAC, unlisted).
    Algorithm(String),
    /// No key with the token's `kid`.
    UnknownKey,
    /// No key's signature check passed.
    Signature,
    /// Past `exp` (with leeway), or no usable `exp`.
    Expired,
    /// Before `nbf` (or `iat`), with leeway.
    NotYetValid,
    /// A claim of the wrong type.
    ClaimType(&'static str),
    /// `iss` is not the bound issuer.
    Issuer,
    /// `aud` does not meet `bound_audiences`.
    Audience,
    /// `sub` is not `bound_subject`.
    Subject,
    /// A bound claim is missing or does not match.
    BoundClaim(String),
    /// The user claim is missing or not text.
    UserClaim,
    /// A mapped claim is not text.
    ClaimMapping(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Role => f.write_str("no such JWT role"),
            Self::Locked => f.write_str("locked out"),
            Self::NoKeys => f.write_str("no config or no keys"),
            Self::TooLong => f.write_str("the JWT is too long"),
            Self::Malformed(what) => write!(f, "malformed JWT: {what}"),
            Self::Algorithm(alg) => write!(f, "algorithm {alg:?} is not accepted"),
            Self::UnknownKey => f.write_str("no key has the JWT's kid"),
            Self::Signature => f.write_str("the signature does not verify"),
            Self::Expired => f.write_str("expired, or no exp"),
            Self::NotYetValid => f.write_str("not yet valid"),
            Self::ClaimType(claim) => write!(f, "claim {claim:?} has the wrong type"),
            Self::Issuer => f.write_str("iss is not the bound issuer"),
            Self::Audience => f.write_str("aud does not meet bound_audiences"),
            Self::Subject => f.write_str("sub is not bound_subject"),
            Self::BoundClaim(c) => write!(f, "bound claim {c:?} does not match"),
            Self::UserClaim => f.write_str("the user claim is missing or not text"),
            Self::ClaimMapping(c) => write!(f, "mapped claim {c:?} is not text"),
        }
    }
}
