//! The trigger loop: fires scheduled boundaries and dynamic cadences when platform time
//! reaches them, and wakes the dispatcher for what it enqueued. Tests step it by hand with
//! `run_due` on a manual clock.

use std::sync::Arc;

use tokio::sync::{watch, Notify};

use super::{dynamic, scheduled};
use crate::clock::{sleep_until, SharedClock};
use crate::delivery::Dispatcher;
use crate::store::{SharedStore, StoreResult};

/// How long the loop sleeps when nothing is scheduled at all (platform time); a new webhook or
/// subscription wakes it earlier.
const IDLE_MS: i64 = 60 * 60 * 1000;

/// How often the loop looks again, in real time, when what is due is held by another node, and
/// on a shared store for changes made on other nodes.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Fires time-based triggers.
pub struct Triggers {
    store: SharedStore,
    clock: SharedClock,
    dispatcher: Arc<Dispatcher>,
    changed: Notify,
}

impl Triggers {
    /// A trigger loop over the store, reading time from `clock`, handing work to `dispatcher`.
    pub fn new(store: SharedStore, clock: SharedClock, dispatcher: Arc<Dispatcher>) -> Arc<Self> {
        Arc::new(Triggers {
            store,
            clock,
            dispatcher,
            changed: Notify::new(),
        })
    }

    /// Something that decides when triggers fire changed (a webhook, a subscription, a plug-in).
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    /// Fires everything due at the clock's current time; returns the payloads enqueued.
    pub async fn run_due(&self) -> StoreResult<usize> {
        let now = self.clock.now_ms();
        // A large boundary is enqueued page by page: wake the dispatcher for each page, so
        // sending overlaps rendering instead of waiting for the whole fleet.
        let wake = || self.dispatcher.wake();
        let enqueued = scheduled::fire_due(self.store.as_ref(), now, &wake).await?
            + dynamic::fire_due(self.store.as_ref(), now).await?;
        if enqueued > 0 {
            self.dispatcher.wake();
        }
        Ok(enqueued)
    }

    /// The loop: fire what is due, sleep until the next due time or a change, until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(err) = self.run_due().await {
                tracing::error!(%err, "firing triggers failed; retrying shortly");
            }
            let next = match self.store.next_trigger_at().await {
                Ok(Some(at)) => at,
                Ok(None) => self.clock.now_ms() + IDLE_MS,
                Err(err) => {
                    tracing::error!(%err, "reading the next trigger time failed");
                    self.clock.now_ms() + 1_000
                }
            };
            // Still due after firing: another node holds it under a lease (or the store failed);
            // look again shortly rather than spin. On a shared store, webhooks and
            // subscriptions changed on other nodes never wake this loop: look every so often.
            let blocked = next <= self.clock.now_ms();
            let poll = blocked || self.store.multi_node();
            tokio::select! {
                _ = sleep_until(self.clock.as_ref(), next), if !blocked => {}
                _ = tokio::time::sleep(POLL), if poll => {}
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
