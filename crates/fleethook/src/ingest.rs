//! The one road by which vehicle data enters: the ingest API and the simulator both call
//! `apply`, so every source gets the same change detection and the same triggers.
//!
//! Ingests go through a queue to one writer task that hands the store everything that arrived
//! while the previous batch was being written ([`Store::apply_ingest_batch`]): under load the
//! store's transaction and commit are shared by many ingests (group commit), and with no load
//! a batch is a single ingest, with no added wait.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use fleethook_wire::signal::SignalValue;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Millis;
use crate::model::{Vehicle, VehicleErrorState, Webhook};
use crate::server::AppState;
use crate::store::{IngestApplied, IngestItem, SharedStore, Store, StoreError, StoreResult};

/// Ingests handed to the store at once, at most.
const MAX_BATCH: usize = 256;

/// Ingests waiting for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

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
    // in the outbox exactly when the change is recorded: a crash loses neither. The change
    // webhooks are looked up where the ingest is applied: once per group on the queue.
    let (applied, enqueued) = state
        .ingest
        .submit(
            state.store.as_ref(),
            Pending {
                vehicle: vehicle.clone(),
                signals: signals.to_vec(),
                errors: errors.map(<[VehicleErrorState]>::to_vec),
                now,
                webhooks: Vec::new(),
            },
        )
        .await?;
    if enqueued > 0 {
        state.dispatcher.wake();
    }
    if crate::triggers::on_ingest(state.store.as_ref(), &vehicle.id, &applied, now).await? {
        state.triggers.wake();
    }
    Ok(applied)
}

/// One ingest waiting for the writer task, owning what the store needs.
struct Pending {
    vehicle: Vehicle,
    signals: Vec<SignalValue>,
    errors: Option<Vec<VehicleErrorState>>,
    now: Millis,
    /// The vehicle's enabled change webhooks (empty: nothing to render); filled in just before
    /// the store applies the ingest.
    webhooks: Vec<Arc<Webhook>>,
}

type Reply = oneshot::Sender<StoreResult<(IngestApplied, usize)>>;

/// The queue in front of the store's ingest (see the module documentation).
pub struct IngestQueue {
    /// `None` for a store that does not group ingests: callers then go to it directly, in
    /// parallel, rather than one at a time through the task.
    tx: Option<mpsc::Sender<(Pending, Reply)>>,
}

impl IngestQueue {
    /// Starts the writer task when the store groups ingests. The task holds the store weakly,
    /// so dropping the server's state closes the store even while the task winds down.
    pub fn start(store: &SharedStore) -> IngestQueue {
        if !store.groups_ingests() {
            return IngestQueue { tx: None };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(Arc::downgrade(store), rx));
        IngestQueue { tx: Some(tx) }
    }

    async fn submit(
        &self,
        store: &dyn Store,
        pending: Pending,
    ) -> StoreResult<(IngestApplied, usize)> {
        let Some(tx) = &self.tx else {
            let mut pending = pending;
            pending.webhooks = crate::triggers::change_webhooks(store, &pending.vehicle.id).await?;
            let batch = std::slice::from_ref(&pending);
            return apply_batch(store, batch).await.pop().unwrap_or_else(|| {
                Err(StoreError::Corrupt("the store answered no ingest".into()))
            });
        };
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Corrupt("the ingest writer has stopped".into());
        tx.send((pending, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_loop(store: Weak<dyn Store>, mut rx: mpsc::Receiver<(Pending, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let Some(store) = store.upgrade() else {
            break;
        };
        let (mut pending, replies): (Vec<Pending>, Vec<Reply>) = batch.drain(..).unzip();
        let results = match with_change_webhooks(store.as_ref(), &mut pending).await {
            Ok(()) => apply_batch(store.as_ref(), &pending).await,
            Err(err) => {
                // Nothing was applied: every ingest of the group fails alike (the store's error
                // is not Clone; its text is kept).
                tracing::warn!(%err, "cannot read the change webhooks of an ingest group");
                let message = format!("cannot read the vehicles' webhooks: {err}");
                pending
                    .iter()
                    .map(|_| Err(StoreError::Corrupt(message.clone())))
                    .collect()
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that went away (its request was cancelled) needs no answer.
            let _ = reply.send(result);
        }
    }
}

/// Looks up the change webhooks of every vehicle in the group with one store read.
async fn with_change_webhooks(store: &dyn Store, pending: &mut [Pending]) -> StoreResult<()> {
    let vehicle_ids: Vec<&str> = pending.iter().map(|p| p.vehicle.id.as_str()).collect();
    let mut by_vehicle = crate::triggers::change_webhooks_many(store, &vehicle_ids).await?;
    for item in pending.iter_mut() {
        // A vehicle ingested twice in the group renders with the same webhooks both times.
        item.webhooks = by_vehicle
            .get(&item.vehicle.id)
            .cloned()
            .unwrap_or_default();
    }
    by_vehicle.clear();
    Ok(())
}

/// Hands a batch to the store, each item with the renderer of its own change webhooks.
async fn apply_batch(
    store: &dyn Store,
    pending: &[Pending],
) -> Vec<StoreResult<(IngestApplied, usize)>> {
    let renders: Vec<_> = pending
        .iter()
        .map(|p| {
            move |applied: &IngestApplied, after: &HashMap<String, SignalValue>| {
                crate::triggers::render_changes(&p.webhooks, &p.vehicle, applied, after, p.now)
            }
        })
        .collect();
    let items: Vec<IngestItem<'_>> = pending
        .iter()
        .zip(&renders)
        .map(|(p, render)| IngestItem {
            vehicle_id: &p.vehicle.id,
            signals: &p.signals,
            errors: p.errors.as_deref(),
            now: p.now,
            render: (!p.webhooks.is_empty()).then_some(render as _),
        })
        .collect();
    store.apply_ingest_batch(&items).await
}
