//! What PostgreSQL stores for a password under `scram-sha-256`: a SCRAM
//! verifier (RFC 5802 and 7677), computed here so that statements carry
//! it instead of the password. The password then never crosses the wire,
//! never lands in the server's logs or `pg_stat_activity`, and the server
//! skips its own PBKDF2, which is most of what `CREATE ROLE … PASSWORD`
//! costs it.
//!
//! This module must never put the password, the salted password or the
//! keys derived from it anywhere but the returned verifier.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};
use zeroize::Zeroizing;

/// PostgreSQL's default `scram_iterations`: the same work factor a server
/// hashing the password itself would use.
pub const ITERATIONS: NonZeroU32 = NonZeroU32::MIN.saturating_add(4095);

/// Why no verifier could be made.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    /// The operating system gave no random bytes for the salt.
    #[error("no randomness for a SCRAM salt: {0}")]
    Random(String),
}

/// A verifier for `password` with a fresh 16-byte salt (as PostgreSQL
/// makes them): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn verifier(password: &str) -> Result<String, ScramError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ScramError::Random(e.to_string()))?;
    Ok(verifier_with(password, &salt, ITERATIONS))
}

/// The verifier for `password` with `salt` and `iterations`. PostgreSQL
/// prepares passwords with SASLprep first; ours are printable ASCII, which
/// SASLprep leaves as they are.
pub fn verifier_with(password: &str, salt: &[u8], iterations: NonZeroU32) -> String {
    let mut salted = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        salted.as_mut(),
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, salted.as_ref());
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example (user "user", password "pencil", salt
    /// W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations). The RFC gives the
    /// exchange, not the stored keys; these were derived from its values
    /// with Python's hashlib and hmac, apart from this code.
    #[test]
    fn the_rfc_7677_example() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        assert_eq!(
            verifier_with("pencil", &salt, ITERATIONS),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn each_verifier_has_its_own_salt() {
        let a = verifier("same password").unwrap();
        let b = verifier("same password").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!a.contains("same password"));
    }
}
