//! Identifiers and secrets: random, URL-safe, and never derived from anything guessable.

use rand::RngCore;

/// A new random id (UUID v4), used for every record and event.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new random token of 32 bytes, hex encoded, with a prefix that tells what it is for.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}
