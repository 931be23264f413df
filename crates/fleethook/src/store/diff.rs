//! What an ingest changes, as pure functions of what it brings and what the store held: every
//! store reads the stored values inside its ingest transaction and asks these, so SQLite and
//! Postgres report the same changes for the same input.

use std::collections::{HashMap, HashSet};

use fleethook_wire::signal::SignalValue;
use serde_json::Value;

use super::codec::json_eq;
use super::{IngestApplied, SignalChange};
use crate::clock::Millis;
use crate::model::VehicleErrorState;

/// The signals of one ingest with a code given twice counted once, with its last value: one
/// ingest is one step of the vehicle's state, and an upsert cannot touch the same row twice in
/// one statement anyway. First-seen order is kept.
pub(crate) fn latest_per_code(signals: &[SignalValue]) -> Vec<&SignalValue> {
    let mut latest: Vec<&SignalValue> = Vec::with_capacity(signals.len());
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(signals.len());
    for signal in signals {
        match position.get(signal.code.as_str()) {
            Some(&i) => latest[i] = signal,
            None => {
                position.insert(signal.code.as_str(), latest.len());
                latest.push(signal);
            }
        }
    }
    latest
}

/// The signals whose value differs (by value, not by text) from what was stored.
pub(crate) fn signal_changes(
    latest: &[&SignalValue],
    mut stored: HashMap<String, Value>,
) -> Vec<SignalChange> {
    let mut changes = Vec::new();
    for signal in latest {
        let previous = stored.remove(&signal.code);
        if previous.as_ref().is_some_and(|p| json_eq(p, &signal.body)) {
            continue;
        }
        changes.push(SignalChange {
            code: signal.code.clone(),
            previous,
            current: signal.body.clone(),
        });
    }
    changes
}

/// A vehicle's new set of active errors, compared with the stored one.
pub(crate) struct ErrorsDiff<'a> {
    /// The new active set, each with the time it became active, in the order given.
    pub active: Vec<(&'a VehicleErrorState, Millis)>,
    /// The stored set is exactly the new one: nothing to write.
    pub unchanged: bool,
}

/// Compares the errors an ingest names (its full active set; a (type, code) given twice
/// counts once) with the stored ones (in stored order, with their raise times); records the
/// raised and resolved ones in `applied`.
pub(crate) fn error_changes<'a>(
    errors: &'a [VehicleErrorState],
    stored: &[(VehicleErrorState, Millis)],
    now: Millis,
    applied: &mut IngestApplied,
) -> ErrorsDiff<'a> {
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(errors.len());
    let mut active: Vec<(&VehicleErrorState, Millis)> = Vec::with_capacity(errors.len());
    for error in errors {
        if !seen.insert((error.error_type.as_str(), error.code.as_str())) {
            continue;
        }
        let raised_at = stored
            .iter()
            .find(|(s, _)| s.error_type == error.error_type && s.code == error.code)
            .map(|(_, at)| *at);
        match raised_at {
            Some(at) => active.push((error, at)),
            None => {
                applied.raised.push(error.clone());
                active.push((error, now));
            }
        }
    }
    for (error, _) in stored {
        if !seen.contains(&(error.error_type.as_str(), error.code.as_str())) {
            applied.resolved.push(error.clone());
        }
    }
    let unchanged =
        stored.len() == active.len() && stored.iter().zip(&active).all(|((s, _), (a, _))| s == *a);
    ErrorsDiff { active, unchanged }
}

/// Whether an ingest changed anything (and so may call for payloads).
pub(crate) fn changed(applied: &IngestApplied) -> bool {
    !(applied.changes.is_empty() && applied.raised.is_empty() && applied.resolved.is_empty())
}
