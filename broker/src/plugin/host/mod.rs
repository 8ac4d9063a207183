//! The host capabilities a plugin may import, each bound to the calling
//! mount through the call's [`CallState`](super::state::CallState).
//!
//! Like Spin's host factors, every capability checks the guest's request
//! against what the mount allows before touching anything, and bounds what
//! it hands back.

mod lease;
mod signer;
mod small;
pub mod sql;
