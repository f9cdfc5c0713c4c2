//! Operator passwords (argon2id PHC strings) and tenant clientIds (random, stored as sha256).
//! Pure functions: no SQL, no clock.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::CentralError;

/// Passwords shorter than this many characters are refused.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer ones too: hashing megabytes on request is a denial of service.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The argon2id PHC string of `password` (default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, CentralError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CentralError::Invalid(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters are required"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CentralError::Invalid(format!(
            "the password is too long: at most {MAX_PASSWORD_BYTES} bytes are allowed"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CentralError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `phc`; false when `phc` does not parse.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A new tenant clientId: 32 random bytes as 64 lowercase hex digits.
pub fn new_client_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What is stored of a clientId: sha256 of its bytes. ClientIds are high-entropy, so a fast
/// digest is enough and allows looking the tenant up by it.
pub fn client_secret_digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a random salt each time");
        assert!(verify_password("correct horse", &a));
        assert!(verify_password("correct horse", &b));
        assert!(!verify_password("correct horsE", &a));
        assert!(!verify_password("correct horse", "not a phc string"));
        assert!(!verify_password("correct horse", ""));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        let short = hash_password("1234567").unwrap_err();
        assert!(
            matches!(&short, CentralError::Invalid(m) if m.contains("at least 8")),
            "{short}"
        );
        // Characters are counted, not bytes.
        assert!(hash_password("пароль1").is_err());
        assert!(hash_password("пароль12").is_ok());
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hash_password(&huge),
            Err(CentralError::Invalid(_))
        ));
        assert!(!verify_password(
            &huge,
            "$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB"
        ));
    }

    #[test]
    fn client_secrets_are_random_hex_and_digests_are_sha256() {
        let a = new_client_secret();
        let b = new_client_secret();
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert_eq!(
            hex::encode(client_secret_digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(client_secret_digest(&a).len(), 32);
    }
}
