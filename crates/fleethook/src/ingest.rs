//! The one road by which vehicle data enters: the ingest API and the simulator both call
//! `apply`, so every source gets the same change detection and the same triggers.

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
    let applied = state
        .store
        .apply_ingest(&vehicle.id, signals, errors, now)
        .await?;
    if crate::triggers::on_ingest(state.store.as_ref(), &vehicle.id, &applied, now).await? {
        state.triggers.wake();
    }
    let deliveries =
        crate::triggers::change_deliveries(state.store.as_ref(), vehicle, signals, &applied, now)
            .await?;
    if !deliveries.is_empty() {
        state.store.enqueue_many(&deliveries).await?;
        state.dispatcher.wake();
    }
    Ok(applied)
}
