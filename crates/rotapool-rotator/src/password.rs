//! New passwords from the operating system's CSPRNG.

/// Characters that are safe everywhere a password travels: URL userinfo, libpq and MySQL connection strings,
/// shell variables, JSON. Quotes, backslashes, `@`, `:`, `/`, `%`, `;` and spaces are left out.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";

/// A password of `length` characters drawn uniformly from [`ALPHABET`] (66 symbols, about 6 bits each).
pub fn generate(length: usize) -> String {
    // Rejection sampling keeps the draw uniform: bytes at or above the largest multiple of 66 are discarded.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buffer).expect("the operating system's random source is available");
        for &byte in buffer.iter().filter(|&&b| b < limit) {
            if out.len() == length {
                break;
            }
            out.push(ALPHABET[byte as usize % ALPHABET.len()] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_the_length_asked_and_only_safe_characters() {
        for length in [1, 16, 32, 100] {
            let password = generate(length);
            assert_eq!(password.len(), length);
            assert!(
                password.bytes().all(|b| ALPHABET.contains(&b)),
                "{password}"
            );
        }
    }

    #[test]
    fn passwords_differ() {
        let a = generate(32);
        assert_ne!(a, generate(32));
    }
}
