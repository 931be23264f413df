//! A small in-process cache for the lookups every API request repeats (the application of a
//! management token, the vehicle an ingest names) and those of the outbox's rounds and ingest
//! groups (webhooks by id), for a store that makes every change to them itself. Each lookup
//! it saves is a statement on a reader connection: a round trip to the connection's thread
//! and back, plus the pool's test of the connection on release.
//!
//! Only hits are kept: a token or vehicle that is not found is asked again next time, so
//! whatever is created (even by another process) is seen at once. Whatever the store changes
//! it invalidates ([`LookupCache::invalidate`]) after writing; a generation number keeps a
//! read that raced with the change from putting the old value back. Entries also expire after
//! a while, which bounds how long a change made behind the store's back (by hand in a SQL
//! shell) goes unseen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry is trusted.
const TTL: Duration = Duration::from_secs(60);

/// The cache of one kind of lookup, by a text key.
pub(crate) struct LookupCache<V> {
    /// `None`: caching is off (a store that others may change at the same time).
    state: Option<Mutex<State<V>>>,
    /// Entries kept at most; a full cache is emptied and fills again with what is in use.
    capacity: usize,
}

struct State<V> {
    entries: HashMap<String, (V, Instant)>,
    /// Moves on with every invalidation.
    generation: u64,
}

/// Where the cache stood when a lookup started: [`LookupCache::insert`] keeps the result only
/// if nothing was invalidated since.
#[derive(Clone, Copy)]
pub(crate) struct Generation(u64);

impl<V: Clone> LookupCache<V> {
    /// A cache of at most `capacity` entries, or one that keeps nothing when not `enabled`.
    pub(crate) fn new(enabled: bool, capacity: usize) -> Self {
        LookupCache {
            state: enabled.then(|| {
                Mutex::new(State {
                    entries: HashMap::new(),
                    generation: 0,
                })
            }),
            capacity,
        }
    }

    /// The live entry for `key`, or where the cache stands for a lookup to fill it.
    pub(crate) fn get(&self, key: &str) -> Result<V, Generation> {
        let Some(state) = self.lock() else {
            return Err(Generation(0));
        };
        match state.entries.get(key) {
            Some((value, at)) if at.elapsed() < TTL => Ok(value.clone()),
            _ => Err(Generation(state.generation)),
        }
    }

    /// Keeps what a lookup that started at `since` found, unless something was invalidated
    /// meanwhile (the value may predate that change).
    pub(crate) fn insert(&self, since: Generation, key: &str, value: V) {
        let Some(mut state) = self.lock() else {
            return;
        };
        if state.generation != since.0 {
            return;
        }
        if state.entries.len() >= self.capacity {
            state.entries.clear();
        }
        state
            .entries
            .insert(key.to_string(), (value, Instant::now()));
    }

    /// Forgets every entry `stale` says is out of date, after the store changed them.
    pub(crate) fn invalidate(&self, mut stale: impl FnMut(&str, &V) -> bool) {
        let Some(mut state) = self.lock() else {
            return;
        };
        state.generation += 1;
        state.entries.retain(|key, (value, _)| !stale(key, value));
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, State<V>>> {
        // A panic while holding the lock cannot leave the map half-changed in a way that
        // matters: at worst an entry is missing.
        let state = self.state.as_ref()?;
        Some(state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_kept_until_invalidated() {
        let cache = LookupCache::new(true, 10);
        let since = cache.get("a").unwrap_err();
        cache.insert(since, "a", 1);
        assert_eq!(cache.get("a").ok(), Some(1));
        cache.invalidate(|key, _| key == "a");
        assert!(cache.get("a").is_err());
    }

    #[test]
    fn a_lookup_that_raced_with_an_invalidation_is_not_kept() {
        let cache = LookupCache::new(true, 10);
        let since = cache.get("a").unwrap_err();
        cache.invalidate(|_, _| true);
        cache.insert(since, "a", 1);
        assert!(cache.get("a").is_err(), "the value may predate the change");
    }

    #[test]
    fn a_full_cache_starts_again_and_a_disabled_one_keeps_nothing() {
        let cache = LookupCache::new(true, 2);
        for key in ["a", "b", "c"] {
            let since = cache.get(key).unwrap_err();
            cache.insert(since, key, 0);
        }
        assert!(cache.get("a").is_err());
        assert!(cache.get("c").is_ok());

        let off = LookupCache::new(false, 2);
        let since = off.get("a").unwrap_err();
        off.insert(since, "a", 0);
        assert!(off.get("a").is_err());
    }
}
