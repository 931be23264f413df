//! Payloads this process has just written to the SQLite outbox, kept in memory until their
//! first claim, so that a claim soon after the insert need not read them back.
//!
//! In `bench throughput` the end-to-end phase claimed each payload a few milliseconds after
//! its ingest committed it, then read it back on a reader connection: the body, the ids and
//! the vehicle list, decoded into a fresh `Delivery`. SQLite drops a reader's page cache
//! whenever the writer has committed since its last read, and the writer commits between every
//! two claims, so each read went back to the write-ahead log for its pages. Keeping them took
//! the reader threads from 10.2 % to 7.5 % of an end-to-end profile's samples, and the decoding
//! from 2.0 % to 0.8 %.
//!
//! An entry stands for its row as inserted, so it is used only while the row can be in no
//! other state: the claim returns each leased row's attempt count, and only a row never
//! attempted is served from here; an entry leaves at its first claim; anything else that can
//! change a pending row before its first claim (an attempt made by hand, `claim_one`) empties
//! the cache; and it is kept only while this process holds the file alone, so no other process
//! can delete a row and insert another under its seq. The oldest entries leave first when the
//! bounds are reached. A payload that is not claimed soon (a backlog, a retry, one left from
//! before a restart) is read from the store as before.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::model::NewDelivery;

/// Payloads kept at most. A live outbox claims its payloads within a round of the dispatcher
/// (about a hundred at a time under load); more than that is a backlog, which is read from the
/// store. Kept small so that draining a full outbox measures reads from the store.
const CAPACITY: usize = 4_096;

/// Body bytes kept at most: scheduled payloads carry up to about 50 KB each.
const MAX_BYTES: usize = 16 << 20;

/// The cache (see the module documentation).
pub(crate) struct FreshPayloads {
    /// `None`: keeps nothing (a store that other processes may write at the same time).
    state: Option<Mutex<State>>,
}

#[derive(Default)]
struct State {
    by_seq: HashMap<i64, NewDelivery>,
    /// Seqs in the order they were kept; a seq already taken is skipped when it comes up.
    order: VecDeque<i64>,
    /// Body bytes of the entries in `by_seq`.
    bytes: usize,
}

impl State {
    /// Drops the seqs at the front of `order` that were taken: claims take the oldest first,
    /// so this keeps the front the least seq still kept.
    fn drop_taken_front(&mut self) {
        while let Some(front) = self.order.front() {
            if self.by_seq.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
    }
}

impl FreshPayloads {
    /// A cache, or one that keeps nothing when not `enabled`.
    pub(crate) fn new(enabled: bool) -> Self {
        FreshPayloads {
            state: enabled.then(|| Mutex::new(State::default())),
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        Some(
            self.state
                .as_ref()?
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Keeps `payloads`, committed under the given seqs, making room by dropping the oldest.
    pub(crate) fn keep(&self, payloads: impl IntoIterator<Item = (i64, NewDelivery)>) {
        let Some(mut state) = self.lock() else {
            return;
        };
        for (seq, payload) in payloads {
            // Only what the dispatcher claims: a payload with no due time is attempted by
            // its caller (verification). Whatever was kept under its seq (a row since deleted)
            // is not its row.
            if payload.next_attempt_at.is_none() || payload.body.len() > MAX_BYTES {
                if let Some(old) = state.by_seq.remove(&seq) {
                    state.bytes -= old.body.len();
                }
                continue;
            }
            state.bytes += payload.body.len();
            if let Some(old) = state.by_seq.insert(seq, payload) {
                state.bytes -= old.body.len();
            }
            state.order.push_back(seq);
            while state.by_seq.len() > CAPACITY || state.bytes > MAX_BYTES {
                let Some(oldest) = state.order.pop_front() else {
                    break;
                };
                if let Some(gone) = state.by_seq.remove(&oldest) {
                    state.bytes -= gone.body.len();
                }
            }
        }
        // Taken entries leave `order` only when they come up; keep it from growing without
        // bound when most entries are taken long before that.
        if state.order.len() > 2 * CAPACITY {
            let State { by_seq, order, .. } = &mut *state;
            order.retain(|seq| by_seq.contains_key(seq));
        }
    }

    /// No payload under a seq below this one is kept (`i64::MAX` when nothing is): a claim
    /// reads such rows whole instead of leaving them to the cache.
    pub(crate) fn kept_from(&self) -> i64 {
        // Seqs are kept in rising order (commits take them in turn), so the oldest in `order`
        // is the least; a seq kept out of order only costs a read.
        self.lock()
            .and_then(|mut state| {
                state.drop_taken_front();
                state.order.front().copied()
            })
            .unwrap_or(i64::MAX)
    }

    /// The payload kept under `seq`; it is no longer kept.
    pub(crate) fn take(&self, seq: i64) -> Option<NewDelivery> {
        let mut state = self.lock()?;
        let payload = state.by_seq.remove(&seq)?;
        state.bytes -= payload.body.len();
        state.drop_taken_front();
        Some(payload)
    }

    /// Keeps nothing of what it kept: a row may have changed other than by a claim.
    pub(crate) fn clear(&self) {
        if let Some(mut state) = self.lock() {
            *state = State::default();
        }
    }

    /// Entries kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map_or(0, |state| state.by_seq.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeliveryPurpose;

    fn payload(id: &str, body_len: usize) -> NewDelivery {
        NewDelivery {
            id: id.into(),
            app_id: "app".into(),
            webhook_id: "wh".into(),
            event_id: format!("ev-{id}"),
            purpose: DeliveryPurpose::Event,
            target_uri: "http://127.0.0.1:1/hook".into(),
            body: "x".repeat(body_len),
            event_type: "VEHICLE_STATE".into(),
            vehicle_ids: vec!["v1".into()],
            next_attempt_at: Some(1_000),
            created_at: 1_000,
        }
    }

    #[test]
    fn a_payload_is_taken_once() {
        let fresh = FreshPayloads::new(true);
        fresh.keep([(1, payload("a", 10)), (2, payload("b", 10))]);
        assert_eq!(fresh.take(1).map(|p| p.event_id), Some("ev-a".into()));
        assert!(fresh.take(1).is_none(), "taken twice");
        assert_eq!(fresh.len(), 1);
        fresh.clear();
        assert!(fresh.take(2).is_none(), "kept after a clear");
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let fresh = FreshPayloads::new(false);
        fresh.keep([(1, payload("a", 10))]);
        assert!(fresh.take(1).is_none());
    }

    #[test]
    fn payloads_without_a_due_time_are_not_kept_and_replace_what_was() {
        let fresh = FreshPayloads::new(true);
        let mut verify = payload("v", 10);
        verify.next_attempt_at = None;
        fresh.keep([(7, verify.clone())]);
        assert!(fresh.take(7).is_none());
        // A row inserted under the seq of one kept earlier replaces it, kept or not.
        fresh.keep([(8, payload("old", 10))]);
        fresh.keep([(8, verify)]);
        assert!(fresh.take(8).is_none());
        assert_eq!(fresh.len(), 0);
    }

    #[test]
    fn the_oldest_go_first_when_the_count_is_reached() {
        let fresh = FreshPayloads::new(true);
        let total = CAPACITY as i64 + 10;
        fresh.keep((0..total).map(|seq| (seq, payload(&seq.to_string(), 1))));
        assert_eq!(fresh.len(), CAPACITY);
        assert!(fresh.take(9).is_none(), "among the oldest, dropped");
        assert!(fresh.take(10).is_some(), "the oldest kept");
        assert!(fresh.take(total - 1).is_some());
    }

    #[test]
    fn the_oldest_go_first_when_the_bytes_are_reached() {
        let fresh = FreshPayloads::new(true);
        let body = MAX_BYTES / 4;
        fresh.keep((0..6).map(|seq| (seq, payload(&seq.to_string(), body))));
        assert_eq!(fresh.len(), 4);
        assert!(fresh.take(1).is_none());
        assert!(fresh.take(2).is_some());
        // Room freed by a take is room for the next.
        fresh.keep([(6, payload("6", body))]);
        assert_eq!(fresh.len(), 4);
        assert!(fresh.take(3).is_some());
    }

    #[test]
    fn taken_entries_do_not_pile_up_in_the_order() {
        let fresh = FreshPayloads::new(true);
        for seq in 0..(3 * CAPACITY as i64) {
            fresh.keep([(seq, payload(&seq.to_string(), 1))]);
            assert!(fresh.take(seq).is_some());
        }
        let state = fresh.lock().unwrap();
        assert!(state.order.len() <= 2 * CAPACITY + 1);
        assert_eq!(state.bytes, 0);
    }

    #[test]
    fn kept_from_is_the_least_seq_still_kept() {
        let fresh = FreshPayloads::new(true);
        assert_eq!(fresh.kept_from(), i64::MAX, "nothing kept");
        fresh.keep((5..=8).map(|seq| (seq, payload(&seq.to_string(), 10))));
        assert_eq!(fresh.kept_from(), 5);
        fresh.take(6);
        assert_eq!(fresh.kept_from(), 5, "an entry taken behind the least");
        fresh.take(5);
        assert_eq!(fresh.kept_from(), 7, "taken entries leave the front");
        fresh.take(7);
        fresh.take(8);
        assert_eq!(fresh.kept_from(), i64::MAX);
        assert!(fresh.lock().unwrap().order.is_empty());
        assert_eq!(
            FreshPayloads::new(false).kept_from(),
            i64::MAX,
            "keeps nothing"
        );
    }
}
