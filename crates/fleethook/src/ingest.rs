//! The one road by which vehicle data enters: the ingest API and the simulator both call
//! `apply`, so every source gets the same change detection and the same triggers.

use std::collections::HashMap;

use fleethook_wire::signal::SignalValue;

use crate::clock::Millis;
use crate::model::{Vehicle, VehicleErrorState};
use crate::server::AppState;
use crate::store::{IngestApplied, StoreResult};

/// Applies signals (and, when given, the full set of active errors) to a vehicle whose input
/// has been validated, and runs what the change triggers.
pub async fn apply(
    state: &AppState,
    vehicle: &Vehicle,
    signals: &[SignalValue],
    errors: Option<&[VehicleErrorState]>,
    now: Millis,
) -> StoreResult<IngestApplied> {
    // The payloads of the changes are rendered inside the ingest's transaction, so they are
    // in the outbox exactly when the change is recorded: a crash loses neither.
    let webhooks = crate::triggers::change_webhooks(state.store.as_ref(), &vehicle.id).await?;
    let applied = if webhooks.is_empty() {
        state
            .store
            .apply_ingest(&vehicle.id, signals, errors, now)
            .await?
    } else {
        let render = |applied: &IngestApplied, after: &HashMap<String, SignalValue>| {
            crate::triggers::render_changes(&webhooks, vehicle, applied, after, now)
        };
        let (applied, enqueued) = state
            .store
            .apply_ingest_rendered(&vehicle.id, signals, errors, now, &render)
            .await?;
        if enqueued > 0 {
            state.dispatcher.wake();
        }
        applied
    };
    if crate::triggers::on_ingest(state.store.as_ref(), &vehicle.id, &applied, now).await? {
        state.triggers.wake();
    }
    Ok(applied)
}
