//! The leases of a SQLite outbox, kept in memory.
//!
//! A lease keeps a delivery that is being sent out of the next claims until its completion is
//! recorded, or until the lease ends (real time) because its sender died. A SQLite store is
//! served by one process, and a restart releases every lease anyway
//! (`Store::release_all_leases`), so the leases need not be written to the database: written,
//! each was a row update on the one write connection for every delivery, and the completion
//! a few milliseconds later rewrote the same rows and sent their pages to the WAL a second
//! time.
//!
//! A claim reads the due rows in the writer's turn (`sqlite::round`), leaving out the leased
//! ones by their `seq` (a list the outbox index answers before any row is read), and
//! [`MemoryLeases::take`] leases what it may take before the connection is let go;
//! completions end theirs in the turn that commits them. So the leases change only together
//! with the rows they guard, as they did in the rows themselves.
//!
//! A store opened beside a running server (`SqliteStore::open_shared`, for `fleethook apps
//! create`) has leases of its own that the server cannot see: it must not claim.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::clock::Millis;

/// A due delivery that a claim read, in due order: where it is, the webhook it goes to (the
/// webhook's row number, so a claim counts per webhook without decoding ids) and whether it
/// was ever attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    pub seq: i64,
    pub webhook: i64,
    pub attempt_count: i64,
}

/// A lease: the real time it ends, and the delivery's id once the claim has read it (a
/// completion names its delivery by id).
#[derive(Debug)]
struct Lease {
    end: Millis,
    id: Option<String>,
}

/// The live leases of one store, by delivery seq.
#[derive(Debug, Default)]
pub(crate) struct MemoryLeases {
    until: Mutex<HashMap<i64, Lease>>,
}

impl MemoryLeases {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The deliveries under a lease live at `now` (real time), for a claim to leave out,
    /// except those named in `completing`: their completions run first in the claim's own
    /// transaction, and one that is due again at once (a retry with no wait) may be claimed
    /// there, as it was when leases were rows. The ended leases are dropped.
    pub(crate) fn live(&self, now: Millis, completing: &HashSet<&str>) -> Vec<i64> {
        let mut until = self.lock();
        until.retain(|_, lease| lease.end > now);
        until
            .iter()
            .filter(|(_, lease)| {
                lease
                    .id
                    .as_deref()
                    .is_none_or(|id| !completing.contains(id))
            })
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// Whether `seq` is under a lease live at `now`.
    pub(crate) fn is_leased(&self, seq: i64, now: Millis) -> bool {
        self.lock().get(&seq).is_some_and(|lease| lease.end > now)
    }

    /// Leases `seq`, the delivery `id`, until `end`, replacing a lease that ended.
    pub(crate) fn lease(&self, seq: i64, id: &str, end: Millis) {
        self.lock().insert(
            seq,
            Lease {
                end,
                id: Some(id.to_string()),
            },
        );
    }

    /// Records the id of the delivery leased under `seq`, once the claim has read it.
    pub(crate) fn identify(&self, seq: i64, id: &str) {
        if let Some(lease) = self.lock().get_mut(&seq) {
            lease.id = Some(id.to_string());
        }
    }

    /// Picks from `due` (in due order) what a claim takes: deliveries not under a lease live at
    /// `now`, at most `per_webhook` of each webhook and `limit` in all, as the first `limit`
    /// unleased ones numbered per webhook; and leases them until `end`.
    pub(crate) fn take(
        &self,
        due: &[Due],
        limit: usize,
        per_webhook: usize,
        now: Millis,
        end: Millis,
    ) -> Vec<Due> {
        let mut until = self.lock();
        let mut per: HashMap<i64, usize> = HashMap::new();
        let mut taken = Vec::new();
        let unleased = due
            .iter()
            .filter(|d| until.get(&d.seq).is_none_or(|lease| lease.end <= now))
            .take(limit);
        for d in unleased {
            let nth = per.entry(d.webhook).or_insert(0);
            *nth += 1;
            if *nth <= per_webhook {
                taken.push(*d);
            }
        }
        for d in &taken {
            until.insert(d.seq, Lease { end, id: None });
        }
        taken
    }

    /// Ends the leases of the deliveries `ids` names (their completions are committed). One
    /// pass over the leases, which are about as many as the slots: a completion knows its
    /// delivery by id, and asking the completions' statement for the seqs it updated
    /// (`RETURNING`) made each a row for SQLite to buffer and for the connection's thread to
    /// hand over.
    pub(crate) fn release(&self, ids: &HashSet<&str>) {
        if ids.is_empty() {
            return;
        }
        self.lock()
            .retain(|_, lease| lease.id.as_deref().is_none_or(|id| !ids.contains(id)));
    }

    /// Ends every lease; returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut until = self.lock();
        let count = until.len();
        until.clear();
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Lease>> {
        // A panic elsewhere while holding the map cannot leave it half-changed: every change
        // is one insert or remove, or a loop of them that a claim repeats if it fails.
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(seq: i64, webhook: i64) -> Due {
        Due {
            seq,
            webhook,
            attempt_count: 0,
        }
    }

    fn seqs(taken: &[Due]) -> Vec<i64> {
        taken.iter().map(|d| d.seq).collect()
    }

    #[test]
    fn a_claim_takes_the_first_unleased_ones_and_leases_them() {
        let leases = MemoryLeases::new();
        let rows = [due(1, 1), due(2, 1), due(3, 2), due(4, 2)];
        assert_eq!(seqs(&leases.take(&rows, 2, 10, 100, 200)), vec![1, 2]);
        assert!(leases.is_leased(1, 100) && leases.is_leased(2, 199));
        assert_eq!(
            seqs(&leases.take(&rows, 10, 10, 100, 200)),
            vec![3, 4],
            "leased ones are skipped"
        );
        assert!(leases.take(&rows, 10, 10, 199, 300).is_empty());
        let mut live = leases.live(199, &HashSet::new());
        live.sort_unstable();
        assert_eq!(live, vec![1, 2, 3, 4]);
        leases.identify(2, "d2");
        let mut live = leases.live(199, &HashSet::from(["d2"]));
        live.sort_unstable();
        assert_eq!(
            live,
            vec![1, 3, 4],
            "one completing in the claim's turn is not left out"
        );
        assert!(
            leases.is_leased(2, 199),
            "it stays leased until its completion commits"
        );
    }

    #[test]
    fn an_ended_lease_frees_its_delivery_and_is_dropped() {
        let leases = MemoryLeases::new();
        leases.lease(1, "d1", 200);
        assert!(leases.is_leased(1, 199));
        assert!(!leases.is_leased(1, 200), "a lease ends at its end time");
        assert_eq!(seqs(&leases.take(&[due(1, 1)], 1, 1, 200, 300)), vec![1]);
        assert!(leases.is_leased(1, 299), "taken again, under the new lease");
        assert!(
            leases.live(300, &HashSet::new()).is_empty(),
            "ended leases are dropped when listed"
        );
        assert_eq!(leases.clear(), 0);
    }

    #[test]
    fn the_webhook_cap_counts_only_unleased_deliveries_within_the_limit() {
        let leases = MemoryLeases::new();
        leases.lease(1, "d1", 1_000);
        let rows = [due(1, 7), due(2, 7), due(3, 7), due(4, 8), due(5, 7)];
        // Unleased in order: 2, 3, 4, 5; the limit keeps 2, 3, 4; the cap of 1 per webhook
        // keeps 2 of webhook 7 and 4 of webhook 8.
        assert_eq!(seqs(&leases.take(&rows, 3, 1, 0, 1_000)), vec![2, 4]);
        assert!(!leases.is_leased(3, 0), "what the cap left out stays free");
    }

    #[test]
    fn releases_and_clear_end_leases() {
        let leases = MemoryLeases::new();
        for seq in 1..=3 {
            leases.lease(seq, &format!("d{seq}"), 1_000);
        }
        leases.release(&HashSet::from(["d1", "d3", "d99"]));
        assert!(!leases.is_leased(1, 0) && leases.is_leased(2, 0) && !leases.is_leased(3, 0));
        assert_eq!(leases.clear(), 1);
        assert!(leases.live(0, &HashSet::new()).is_empty());
    }
}
