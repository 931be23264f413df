//! Runs the simulated fleet on the platform clock: creates the configured simulated vehicles
//! (idempotently: the same ids on every start), adopts vehicles created with `simulate: true`,
//! and every simulated minute writes what changed through `ingest::apply`, the same road as
//! the ingest API.
//!
//! On a store shared by several nodes one node at a time simulates the fleet: the one holding
//! the `simulator` lease (`Store::lead`). Another node takes over when the leader stops
//! renewing it, and carries every vehicle on from its recorded signals.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{watch, Mutex};

use crate::clock::{sleep_until, Millis};
use crate::ids::new_token;
use crate::model::{App, Page, Vehicle, VehicleMode};
use crate::server::SharedState;
use crate::sources::simulator::{fleet_spec, vehicle_spec, Powertrain, SimVehicle, SimVehicleSpec};
use crate::store::StoreResult;

/// Platform time between two simulation steps.
pub const TICK_MS: Millis = 60_000;
/// Steps between two looks for vehicles created with `simulate: true`.
const ADOPT_EVERY: u32 = 10;
/// The seed of the fleet made by `FLEETHOOK_SIMULATED_VEHICLES`.
pub const FLEET_SEED: u64 = 0x000f_1ee7;
/// The role under which one node of several simulates the fleet.
const SIMULATOR_ROLE: &str = "simulator";
/// The leader's lease lasts this many steps (and never less than `MIN_LEAD_MS` real time),
/// so a missed renewal or two does not hand the fleet over.
const LEAD_STEPS: u32 = 3;
const MIN_LEAD_MS: Millis = 5_000;

/// The simulated vehicles and their models.
pub struct Simulation {
    state: SharedState,
    vehicles: Mutex<HashMap<String, (Vehicle, SimVehicle)>>,
}

/// The id of simulated vehicle `index` of an application: the same on every start, so a
/// restart does not create the fleet again.
pub fn simulated_vehicle_id(app: &App, index: u32) -> String {
    let short: String = app
        .id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!("sim-{short}-{index:06}")
}

impl Simulation {
    /// Makes sure the application has `count` simulated vehicles and starts modelling every
    /// simulated vehicle in the store.
    pub async fn start(state: SharedState, app: &App, count: u32) -> StoreResult<Arc<Simulation>> {
        let now = state.clock.now_ms();
        for spec in fleet_spec(FLEET_SEED, count) {
            let id = simulated_vehicle_id(app, spec.index);
            if state.store.vehicle(&app.id, &id).await?.is_none() {
                let vehicle = Vehicle {
                    id,
                    app_id: app.id.clone(),
                    user_id: format!("sim-user-{:06}", spec.index),
                    access_token: new_token("vat_"),
                    make: spec.make.clone(),
                    model: spec.model.clone(),
                    year: spec.year,
                    vin: spec.vin.clone(),
                    mode: VehicleMode::Simulated,
                    simulated: true,
                    created_at: now,
                };
                state.store.create_vehicle(&vehicle).await?;
            }
        }
        let simulation = Arc::new(Simulation {
            state,
            vehicles: Mutex::new(HashMap::new()),
        });
        simulation.adopt().await?;
        Ok(simulation)
    }

    /// Starts modelling simulated vehicles not modelled yet.
    async fn adopt(&self) -> StoreResult<()> {
        let now = self.state.clock.now_ms();
        let mut vehicles = self.vehicles.lock().await;
        for app in self.state.store.list_apps().await? {
            let mut offset = 0;
            loop {
                let page = Page {
                    limit: 1000,
                    offset,
                };
                let (batch, _) = self.state.store.list_vehicles(&app.id, None, page).await?;
                if batch.is_empty() {
                    break;
                }
                offset += batch.len() as i64;
                for vehicle in batch.into_iter().filter(|v| v.simulated) {
                    if vehicles.contains_key(&vehicle.id) {
                        continue;
                    }
                    let spec = fleet_index(&app, &vehicle.id)
                        .map(|index| vehicle_spec(FLEET_SEED, index))
                        .unwrap_or_else(|| spec_for(&vehicle));
                    let mut model = SimVehicle::new(&spec, FLEET_SEED, now);
                    // After a restart, carry on from what was recorded rather than from the
                    // seed: odometers never run back.
                    let stored = self.state.store.signals(&vehicle.id).await?;
                    if !stored.is_empty() {
                        model.resume(&stored);
                    }
                    vehicles.insert(vehicle.id.clone(), (vehicle, model));
                }
            }
        }
        Ok(())
    }

    /// Advances every simulated vehicle to the current platform time and writes what changed.
    /// Returns the vehicles that changed.
    pub async fn step(&self) -> StoreResult<usize> {
        let now = self.state.clock.now_ms();
        let mut vehicles = self.vehicles.lock().await;
        let mut changed = 0;
        for (vehicle, model) in vehicles.values_mut() {
            let update = model.advance(now);
            if update.signals.is_empty() && update.errors.is_none() {
                continue;
            }
            match crate::ingest::apply(
                &self.state,
                vehicle,
                &update.signals,
                update.errors.as_deref(),
                now,
            )
            .await
            {
                Ok(_) => changed += 1,
                // A vehicle deleted meanwhile: stop modelling it at the next adoption.
                Err(err) => {
                    tracing::warn!(vehicle = %vehicle.id, %err, "simulated update not applied")
                }
            }
        }
        Ok(changed)
    }

    /// Takes or renews the simulator lease. A node that gains it after another node led forgets
    /// its models and carries every vehicle on from what the leader recorded.
    async fn lead(&self, was_leading: bool) -> StoreResult<bool> {
        let now = self.state.clock.now_ms();
        let step_real = self
            .state
            .clock
            .real_wait_until(now + TICK_MS)
            .map_or(0, |d| d.as_millis() as Millis);
        let lease = (step_real * Millis::from(LEAD_STEPS)).max(MIN_LEAD_MS);
        let leading = self.state.store.lead(SIMULATOR_ROLE, lease).await?;
        if leading && !was_leading {
            self.vehicles.lock().await.clear();
            self.adopt().await?;
        }
        Ok(leading)
    }

    /// The loop: a step every simulated minute until shutdown, while this node leads.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut steps: u32 = 0;
        // `start` has just modelled the fleet from the store.
        let mut leading = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            leading = match self.lead(leading).await {
                Ok(leading) => leading,
                Err(err) => {
                    tracing::error!(%err, "cannot renew the simulator lease");
                    false
                }
            };
            steps = steps.wrapping_add(1);
            if leading && steps.is_multiple_of(ADOPT_EVERY) {
                if let Err(err) = self.adopt().await {
                    tracing::error!(%err, "looking for simulated vehicles failed");
                }
            }
            if leading {
                if let Err(err) = self.step().await {
                    tracing::error!(%err, "simulation step failed");
                }
            }
            let next = self.state.clock.now_ms() + TICK_MS;
            tokio::select! {
                _ = sleep_until(self.state.clock.as_ref(), next) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// The fleet index of a vehicle made by `Simulation::start` for `app`, so it keeps its own
/// spec (and so the seed's history) across restarts.
fn fleet_index(app: &App, vehicle_id: &str) -> Option<u32> {
    let index: u32 = vehicle_id.rsplit('-').next()?.parse().ok()?;
    (simulated_vehicle_id(app, index) == vehicle_id).then_some(index)
}

/// A model for a vehicle made outside the fleet (`simulate: true`): its own make and model,
/// a powertrain guessed from them, behaviour seeded by its id.
fn spec_for(vehicle: &Vehicle) -> SimVehicleSpec {
    let index = vehicle
        .id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let name = format!("{} {}", vehicle.make, vehicle.model).to_ascii_lowercase();
    let electric = [
        "tesla", "ev", "e-tron", "ioniq", "mach-e", "leaf", "bolt", "taycan", "id.",
    ];
    let hybrid = ["prime", "hybrid", "phev", "e-hybrid", "xdrive50e", "4xe"];
    let powertrain = if hybrid.iter().any(|k| name.contains(k)) {
        Powertrain::PluginHybrid
    } else if electric.iter().any(|k| name.contains(k)) {
        Powertrain::Electric
    } else {
        Powertrain::Combustion
    };
    SimVehicleSpec {
        index,
        make: vehicle.make.clone(),
        model: vehicle.model.clone(),
        year: vehicle.year,
        vin: vehicle.vin.clone(),
        powertrain,
    }
}
