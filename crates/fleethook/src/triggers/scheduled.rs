//! Scheduled webhooks: at each UTC boundary of a webhook's cadence, every vehicle subscribed
//! before the boundary gets the configured endpoints in the configured units.
//!
//! The store keeps one row per scheduled webhook: the boundary to deliver and a cursor (the
//! last vehicle id enqueued for it). A boundary is delivered page by page; each page's payloads
//! and the cursor move are one transaction, fenced on the cursor read, so a crash or a second
//! node resumes where the last page ended and no vehicle gets a boundary twice or not at all.
//! The next page is read while a page is written, so memory is two pages, whatever the fleet
//! size, and nothing grows with boundaries passed.

use fleethook_wire::v2::VehicleInfo;

use super::batch::{pack, DueBatch};
use super::schedule::{last_boundary, next_boundary};
use crate::clock::Millis;
use crate::kinds::KindConfig;
use crate::model::{VehicleMode, Webhook, WebhookStatus};
use crate::render::v2_vehicle_data;
use crate::store::{ScheduleDue, ScheduleProgress, Store, StoreResult};

/// Vehicles read and rendered per page (one transaction each).
pub const PAGE: i64 = 1_000;

/// Delivers every scheduled boundary due at `now`; returns the payloads enqueued. `enqueued`
/// is called after each page whose payloads are committed, so the dispatcher can start
/// sending a large boundary while later pages are still being rendered.
pub async fn fire_due(
    store: &dyn Store,
    now: Millis,
    enqueued: &(dyn Fn() + Send + Sync),
) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let due = store.due_schedules(now, 64).await?;
        if due.is_empty() {
            return Ok(total);
        }
        for schedule in due {
            total += fire(store, schedule, now, enqueued).await?;
        }
    }
}

/// Delivers one webhook's due boundary to completion (or skips it when the webhook is not
/// enabled), then moves the webhook to its next boundary.
async fn fire(
    store: &dyn Store,
    due: ScheduleDue,
    now: Millis,
    on_enqueued: &(dyn Fn() + Send + Sync),
) -> StoreResult<usize> {
    let webhook = &due.webhook;
    let Ok(KindConfig::Scheduled {
        schedule,
        endpoints,
        units,
    }) = KindConfig::from_stored(webhook.kind, &webhook.config)
    else {
        // Not a scheduled webhook any more (or a config this version cannot read): stop firing.
        store
            .schedule_progress(&progress(&due, None, None), &[])
            .await?;
        return Ok(0);
    };
    // A boundary missed while the process was down is delivered once; older ones are skipped,
    // because they would carry the same current data. A boundary already under way finishes.
    let boundary = if due.cursor.is_none() && next_boundary(&schedule, due.boundary_at) <= now {
        last_boundary(&schedule, now)
    } else {
        due.boundary_at
    };
    let following = next_boundary(&schedule, boundary);
    if webhook.status != WebhookStatus::Enabled {
        // Nothing but the challenge goes to a webhook that is not enabled; skip this boundary.
        let done = ScheduleProgress {
            next_boundary_at: Some(next_boundary(&schedule, now)),
            ..progress(&due, None, None)
        };
        store.schedule_progress(&done, &[]).await?;
        return Ok(0);
    }
    let mut cursor = due.cursor.clone();
    // The fence: what the store holds now (the first page rewrites a caught-up boundary).
    let mut stored_boundary = due.boundary_at;
    let mut enqueued = 0;
    let mut page = store
        .schedule_page(&webhook.id, boundary, cursor.as_deref(), PAGE)
        .await?;
    loop {
        let last_page = (page.len() as i64) < PAGE;
        let new_cursor = page.last().map(|v| v.vehicle.id.clone()).or(cursor.clone());
        let mut deliveries = Vec::new();
        for mode in [VehicleMode::Live, VehicleMode::Simulated] {
            let vehicles: Vec<_> = page
                .iter()
                .filter(|v| v.vehicle.mode == mode)
                .map(|v| {
                    let info = VehicleInfo {
                        id: &v.vehicle.id,
                        make: &v.vehicle.make,
                        model: &v.vehicle.model,
                        year: v.vehicle.year,
                        vin: Some(&v.vehicle.vin),
                    };
                    v2_vehicle_data(&info, &v.signals, &endpoints, units)
                })
                .collect();
            if vehicles.is_empty() {
                continue;
            }
            deliveries.extend(pack(DueBatch {
                webhook,
                event_name: "scheduled",
                mode: mode.as_str(),
                vehicles,
                now,
            }));
        }
        let step = ScheduleProgress {
            webhook_id: webhook.id.clone(),
            boundary_at: stored_boundary,
            expected_cursor: cursor.clone(),
            delivering_boundary_at: boundary,
            new_cursor: if last_page { None } else { new_cursor.clone() },
            next_boundary_at: if last_page { Some(following) } else { None },
        };
        // Unless this is the last page, the next one is read while this one is written: it
        // lies after this page's last vehicle, which the write does not touch.
        let (applied, next) = if last_page {
            (store.schedule_progress(&step, &deliveries).await, None)
        } else {
            let (applied, next) = tokio::join!(
                store.schedule_progress(&step, &deliveries),
                store.schedule_page(&webhook.id, boundary, new_cursor.as_deref(), PAGE),
            );
            (applied, Some(next))
        };
        if !applied? {
            // Someone else (another node) moved this schedule: leave it to them.
            return Ok(enqueued);
        }
        enqueued += deliveries.len();
        if !deliveries.is_empty() {
            on_enqueued();
        }
        let Some(next) = next else {
            return Ok(enqueued);
        };
        page = next?;
        cursor = new_cursor;
        stored_boundary = boundary;
    }
}

/// A progress step that ends the due row's boundary without delivering anything.
fn progress(
    due: &ScheduleDue,
    new_cursor: Option<String>,
    next: Option<Millis>,
) -> ScheduleProgress {
    ScheduleProgress {
        webhook_id: due.webhook.id.clone(),
        boundary_at: due.boundary_at,
        expected_cursor: due.cursor.clone(),
        delivering_boundary_at: due.boundary_at,
        new_cursor,
        next_boundary_at: next,
    }
}

/// The first boundary a newly created or re-scheduled webhook waits for.
pub fn first_boundary(webhook: &Webhook, now: Millis) -> Option<Millis> {
    match KindConfig::from_stored(webhook.kind, &webhook.config) {
        Ok(KindConfig::Scheduled { schedule, .. }) => Some(next_boundary(&schedule, now)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::model::{App, Vehicle, WebhookKind};
    use crate::store::sqlite::SqliteStore;
    use crate::triggers::fixtures;

    /// A boundary of a fleet larger than a page is enqueued page by page, and the caller
    /// hears of each page as it is committed (the trigger loop wakes the dispatcher then), not
    /// only once the whole fleet is in the outbox.
    #[tokio::test]
    async fn a_large_boundary_reports_each_committed_page() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("fleethook.db"))
            .await
            .expect("open a fresh SQLite store");
        store
            .create_app(&App {
                id: "app_1".into(),
                name: "fleet".into(),
                management_token: "amt".into(),
                created_at: 0,
            })
            .await
            .unwrap();
        let webhook = fixtures::webhook(
            WebhookKind::Scheduled,
            "hourly",
            "http://127.0.0.1:9/hook",
            json!({"schedule": {"frequency": "hourly", "interval": 1},
                   "endpoints": ["/battery"], "units": "metric"}),
        );
        store.create_webhook(&webhook).await.unwrap();
        let fleet = (PAGE as usize) * 2 + 500;
        let vehicles: Vec<Vehicle> = (0..fleet)
            .map(|i| Vehicle {
                id: format!("veh_{i:05}"),
                access_token: format!("tok_{i}"),
                vin: format!("VIN{i:014}"),
                ..fixtures::vehicle(VehicleMode::Live)
            })
            .collect();
        store.create_vehicles(&vehicles).await.unwrap();
        let ids: Vec<String> = vehicles.into_iter().map(|v| v.id).collect();
        assert_eq!(
            store
                .subscribe_many(&webhook.id, &ids, 1_000)
                .await
                .unwrap(),
            fleet as u64
        );
        let boundary = 3_600_000;
        store
            .schedule_set(&webhook.id, Some(boundary))
            .await
            .unwrap();

        let pages = AtomicUsize::new(0);
        let enqueued = fire_due(&store, boundary, &|| {
            pages.fetch_add(1, Ordering::SeqCst);
        })
        .await
        .unwrap();
        assert_eq!(
            pages.load(Ordering::SeqCst),
            3,
            "one report per committed page"
        );
        assert!(enqueued >= 3);
        assert_eq!(store.outbox_depth().await.unwrap(), enqueued as i64);
        assert_eq!(
            store.next_trigger_at().await.unwrap(),
            Some(boundary + 3_600_000),
            "the schedule moved on to the next boundary"
        );
    }
}
