//! New passwords: from the operating system's CSPRNG, or from any [`PasswordSource`] (the Lambda asks Secrets
//! Manager's `GetRandomPassword`).

use async_trait::async_trait;

/// Characters that are safe everywhere a password travels: URL userinfo, libpq and MySQL connection strings,
/// shell variables, JSON. Quotes, backslashes, `@`, `:`, `/`, `%`, `;` and spaces are left out.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";

/// A password of `length` characters drawn uniformly from `ALPHABET` (66 symbols, about 6 bits each).
pub fn generate(length: usize) -> String {
    generate_from(ALPHABET, length)
}

/// A password of `length` characters drawn uniformly from `ALPHABET` without the characters in `exclude`.
/// `None` if `exclude` leaves fewer than 10 characters, too few for a password worth the name.
pub fn generate_excluding(length: usize, exclude: &str) -> Option<String> {
    let alphabet: Vec<u8> = ALPHABET
        .iter()
        .copied()
        .filter(|&b| !exclude.as_bytes().contains(&b))
        .collect();
    (alphabet.len() >= 10).then(|| generate_from(&alphabet, length))
}

fn generate_from(alphabet: &[u8], length: usize) -> String {
    // Rejection sampling keeps the draw uniform: bytes at or above the largest multiple of the alphabet's size are
    // discarded.
    let limit = 256 / alphabet.len() * alphabet.len();
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buffer).expect("the operating system's random source is available");
        for &byte in buffer.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == length {
                break;
            }
            out.push(alphabet[usize::from(byte) % alphabet.len()] as char);
        }
    }
    out
}

/// Where createSecret gets a new password.
#[async_trait]
pub trait PasswordSource: Send + Sync + std::fmt::Debug {
    /// A new password, or why none could be had (never containing a password).
    async fn new_password(&self) -> Result<String, String>;
}

/// Passwords from the operating system's CSPRNG, drawn from letters, digits and `-_.~`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPasswords {
    length: usize,
    exclude: String,
}

impl LocalPasswords {
    /// Passwords of `length` characters without any of `exclude`.
    pub fn new(length: usize, exclude: impl Into<String>) -> Self {
        Self {
            length,
            exclude: exclude.into(),
        }
    }

    /// A password now, without the async trait's ceremony.
    pub fn generate(&self) -> Result<String, String> {
        generate_excluding(self.length, &self.exclude).ok_or_else(|| {
            format!(
                "the excluded characters leave fewer than 10 of `{}` to draw passwords from",
                String::from_utf8_lossy(ALPHABET)
            )
        })
    }
}

impl Default for LocalPasswords {
    /// 32 characters from the whole alphabet: about 193 bits.
    fn default() -> Self {
        Self::new(crate::PASSWORD_LENGTH, "")
    }
}

#[async_trait]
impl PasswordSource for LocalPasswords {
    async fn new_password(&self) -> Result<String, String> {
        self.generate()
    }
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

    #[test]
    fn excluded_characters_never_appear() {
        let exclude = "abcdefghijklmnopqrstuvwxyz-_.~";
        for _ in 0..50 {
            let password = generate_excluding(64, exclude).expect("36 characters remain");
            assert!(!password.chars().any(|c| exclude.contains(c)), "{password}");
        }
        assert_eq!(
            generate_excluding(8, std::str::from_utf8(ALPHABET).unwrap()),
            None
        );
        assert!(
            LocalPasswords::new(8, std::str::from_utf8(&ALPHABET[3..]).unwrap())
                .generate()
                .is_err()
        );
    }
}
