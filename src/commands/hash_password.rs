//! `rouse hash-password`: turns a password read from standard input into the
//! Argon2id PHC string a person's `login: {password_hash: …}` takes, so the
//! YAML never holds a password.

use std::io::BufRead;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("no password on standard input")]
    Empty,
    #[error("cannot read standard input: {0}")]
    Read(#[from] std::io::Error),
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// Reads the first line of `input` (without its line ending) and hashes it
/// with Argon2id's default (OWASP-recommended) parameters and a random salt.
pub fn hash_password(input: &mut dyn BufRead) -> Result<String, HashError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    hash(password)
}

pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn the_hash_verifies_the_password_and_nothing_else() {
        let phc = hash_password(&mut "correct horse\n".as_bytes()).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        let argon = argon2::Argon2::default();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"correct horse\n", &parsed).is_err());
        assert!(matches!(
            hash_password(&mut "\n".as_bytes()),
            Err(HashError::Empty)
        ));
    }
}
