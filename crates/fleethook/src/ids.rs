//! Identifiers and secrets: random, URL-safe, and never derived from anything guessable.

use rand::RngCore;

/// A new id for every record and event: a UUID v7, whose first 48 bits are the creation time
/// in milliseconds and whose other 74 are random. Ids made one after another sort together,
/// so the indexes keyed by them (the outbox, the delivery log, attempts) take each insert on
/// their last page instead of a random one: with v4 ids every delivery dirtied a random page
/// of each such index, which made writes, not HTTP, the limit of the dispatcher.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new random token of 32 bytes, hex encoded, with a prefix that tells what it is for.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}
