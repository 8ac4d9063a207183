//! Passwords drawn from the host's CSPRNG.
//!
//! Passwords use letters and digits only, so they need no escaping in any
//! connection string or statement, and always hold at least one lowercase
//! letter, one uppercase letter and one digit, which common password
//! policies ask for.

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGIT: &[u8] = b"0123456789";

/// The default length: about 142 bits of entropy.
pub const DEFAULT_LENGTH: usize = 24;

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
