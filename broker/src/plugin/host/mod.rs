//! The host capabilities a plugin may import, each bound to the calling
//! mount through the call's [`CallState`](super::state::CallState).
//!
//! Like Spin's host factors, every capability checks the guest's request
//! against what the mount allows before touching anything, and bounds what
//! it hands back. They are written once, in the host's own types; each
//! released contract version adapts them ([`super::versions`]).

mod http;
mod lease;
mod redis;
mod signer;
mod small;
pub mod sql;
