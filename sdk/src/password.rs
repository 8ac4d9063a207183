//! Passwords for new credentials.
//!
//! The broker makes a database user's password itself, from the
//! connection's password policy (as Vault does), and hands it to the
//! plugin with the issue request: [`crate::IssueRequest::password`]. A
//! plugin uses it through [`provided_or_generate`], which falls back to
//! [`generate`] when the broker sent none (one older than password
//! policies):
//!
//! ```no_run
//! # use broker_plugin_sdk::{password, IssueRequest};
//! # fn prepare(request: &IssueRequest<()>) {
//! let password = password::provided_or_generate(request.password.as_deref());
//! # }
//! ```
//!
//! [`generate`] draws from the host's CSPRNG. Its passwords use letters and
//! digits only, so they need no escaping in any connection string or
//! statement, and always hold at least one lowercase letter, one uppercase
//! letter and one digit, which common password policies ask for: the
//! broker's default policy makes the same.

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGIT: &[u8] = b"0123456789";

/// The default length: about 142 bits of entropy.
pub const DEFAULT_LENGTH: usize = 24;

/// The key of the issue request's role JSON under which the broker sends
/// the password it made. The SDK takes it out of the role before parsing
/// the role into the plugin's type, and puts it in
/// [`crate::IssueRequest::password`]; the broker refuses roles written
/// with a field of this name, so only the broker sets it.
pub const HOST_PASSWORD_KEY: &str = "password";

/// The key under which the broker may also send what PostgreSQL stores for
/// that password, a SCRAM-SHA-256 verifier, when the connection's
/// `password_authentication` is `scram-sha-256`: statements then carry the
/// verifier, never the password (see [`crate::IssueRequest::password_verifier`]).
pub const HOST_VERIFIER_KEY: &str = "password_verifier";

/// The password for a new credential: `provided` (the broker's, made from
/// the connection's password policy) when there is one, or else one of
/// [`DEFAULT_LENGTH`] from [`generate`].
pub fn provided_or_generate(provided: Option<&str>) -> String {
    match provided {
        Some(password) if !password.is_empty() => password.to_owned(),
        _ => generate(DEFAULT_LENGTH),
    }
}

/// A password of `len` characters (at least 8) from the host's randomness.
pub fn generate(len: usize) -> String {
    generate_with(len, crate::host::fill_random)
}

/// A password of `len` characters (at least 8) from `fill_random`.
pub fn generate_with(len: usize, mut fill_random: impl FnMut(&mut [u8])) -> String {
    let len = len.max(8);
    let alphabet: Vec<u8> = [LOWER, UPPER, DIGIT].concat();
    let bound = 256 - 256 % alphabet.len();
    loop {
        let mut out = String::with_capacity(len);
        let mut buf = [0u8; 64];
        while out.len() < len {
            fill_random(&mut buf);
            for b in buf {
                if (b as usize) < bound && out.len() < len {
                    out.push(alphabet[b as usize % alphabet.len()] as char);
                }
            }
        }
        let has = |set: &[u8]| out.bytes().any(|b| set.contains(&b));
        if has(LOWER) && has(UPPER) && has(DIGIT) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_every_class_and_length() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let rng = move |buf: &mut [u8]| {
            for b in buf {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
        };
        let p = generate_with(24, rng);
        assert_eq!(p.len(), 24);
        assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(p.bytes().any(|b| b.is_ascii_digit()));
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn the_hosts_password_is_used_as_given() {
        assert_eq!(provided_or_generate(Some("h0st-Made!")), "h0st-Made!");
    }

    #[test]
    fn short_lengths_are_raised() {
        let mut n = 0u8;
        let p = generate_with(1, |buf: &mut [u8]| {
            for b in buf {
                *b = n;
                n = n.wrapping_add(7);
            }
        });
        assert_eq!(p.len(), 8);
    }
}
