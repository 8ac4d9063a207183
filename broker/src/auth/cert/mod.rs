//! TLS certificate auth (`auth/cert`), as Vault's: a client that presented
//! a certificate in its TLS handshake logs in with it, and gets a token
//! with the policies of the configured certificate it chains to.
//!
//! A configured certificate that is a CA is a trust anchor: the client's
//! chain must be built to it (client-auth usage, validity, and the CRLs
//! configured at `crls/{name}`). One that is not a CA is pinned: the
//! client's leaf must be it, byte for byte, and it is never used to vouch
//! for anything else (the class of CVE-2024-2048). Certificates from the
//! broker's own PKI mount work as client identities.

mod paths;
mod verify;

pub use paths::factory;
