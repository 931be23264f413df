//! The dispatcher: claims due payloads from the outbox under a lease, sends each one signed over
//! the shared client, decides its retry road, and writes the outcomes back in batches.
//!
//! Every send is its own task, bounded by a global semaphore and a per-webhook in-flight cap,
//! so a slow or dead endpoint can hold at most its cap of slots and never delays the others;
//! slow endpoints together hold at most a quarter of the slots (`slow_lane`), so many dead
//! endpoints cannot fill them all either.
//! Completions are written in batches, because a store round trip per delivery would cap
//! throughput long before HTTP does: under load they wait for the next claim and go to the
//! store in the same call (`Store::complete_and_claim`), so that on SQLite's one write
//! connection a claim never waits behind a completion write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use hyper::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::clock::{self, real_now_ms, Millis, SharedClock};
use crate::delivery::http::{check_target, DeliveryClient, ATTEMPT_TIMEOUT};
use crate::delivery::parsed_urls::ParsedUrls;
use crate::delivery::retry::{self, AttemptResult, Next};
use crate::delivery::slow_lane::SlowLane;
use crate::metrics::Metrics;
use crate::model::{Attempt, ClaimedDelivery, Completion, DeliveryPurpose, Outcome, WebhookStatus};
use crate::store::{ClaimRequest, SharedStore, StoreError};

/// How much of a response body is read; the rest is left unread (the receiver's answer only
/// matters for the log and the challenge).
pub const MAX_RESPONSE_READ: usize = 64 * 1024;

/// How much of a response body the attempt log keeps.
pub const MAX_RESPONSE_KEPT: usize = 4 * 1024;

/// Completions per `complete_many` call at most.
const WRITE_BATCH: usize = 512;

/// Completions waiting for the loop before senders wait for it (at least twice the slots).
const COMPLETION_QUEUE: usize = 4096;

/// How long completions wait for the next claim at most, after the last slot freed, before
/// they are written on their own.
const COMPLETION_WAIT: Duration = Duration::from_millis(50);

/// `complete_many` tries before a batch is given up; its leases then expire and the deliveries
/// are sent again (at least once).
const WRITE_TRIES: u32 = 5;

/// How often to look again when something is due but cannot be claimed now (leased by another
/// node or by a crashed run, or its webhook is at its in-flight cap), and, on a store shared by
/// several nodes, for work the others enqueued.
const POLL_WHEN_BLOCKED: Duration = Duration::from_secs(1);

/// The headers every attempt sets beside `Content-Type` and `User-Agent`. Named by constants,
/// their names are checked once at compile time; named by strings, every attempt parsed them.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const SC_SIGNATURE: HeaderName = HeaderName::from_static("sc-signature");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// How often the outbox depth gauge is refreshed at most, in real milliseconds.
const DEPTH_REFRESH_MS: Millis = 1_000;

/// How the dispatcher works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherSettings {
    /// Attempts in flight at once, over all webhooks.
    pub concurrency: usize,
    /// Attempts in flight at once to one webhook, so a slow endpoint cannot take every slot.
    pub per_webhook_in_flight: usize,
    /// How long a claim holds a delivery, in real milliseconds; longer than any attempt.
    pub lease_ms: i64,
    /// Callbacks on loopback and private addresses are allowed.
    pub allow_private: bool,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            concurrency: 256,
            per_webhook_in_flight: 32,
            lease_ms: 60_000,
            allow_private: false,
        }
    }
}

/// The result of one synchronous attempt ([`Dispatcher::attempt_now`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    /// The attempt as logged.
    pub attempt: Attempt,
    /// Where the delivery stands after it.
    pub outcome: Outcome,
    /// What the receiver answered (up to 4 KB).
    pub response_body: Option<String>,
}

/// Why [`Dispatcher::attempt_now`] made no attempt.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// No such delivery in this application (or its webhook is gone).
    #[error("delivery {0} was not found")]
    NotFound(String),
    /// The delivery is leased: an attempt of it is under way right now.
    #[error("delivery {0} is being delivered right now")]
    Busy(String),
    /// Only the challenge goes to a webhook that is not enabled; nothing was sent.
    #[error("webhook is {}", .0.as_str())]
    WebhookNotEnabled(WebhookStatus),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which decisions follow an attempt.
#[derive(Debug, Clone, Copy)]
enum Road<'a> {
    /// The retry road of the webhook's kind (SPEC 8).
    Automatic,
    /// One attempt, no retries, no disabling (manual retry, verification); with a challenge,
    /// success also needs the right answer to it.
    Single { expect_challenge: Option<&'a str> },
}

/// What processing one claimed delivery produced.
struct Processed {
    completion: Completion,
    /// The attempt, for a caller that made it by hand (`Road::Single`).
    report: Option<AttemptReport>,
    /// Set when nothing was sent because the webhook is not enabled.
    not_enabled: Option<WebhookStatus>,
}

/// What one HTTP attempt produced.
struct Sent {
    attempt: Attempt,
    result: AttemptResult,
    retry_after: Option<Duration>,
}

/// The delivery engine: the only code that sends HTTP. See the module documentation.
pub struct Dispatcher {
    /// Lets `&self` methods hand owned handles to the tasks they spawn.
    me: Weak<Dispatcher>,
    store: SharedStore,
    clock: SharedClock,
    client: DeliveryClient,
    /// Callback URLs, each parsed once.
    parsed_urls: ParsedUrls,
    metrics: Arc<Metrics>,
    settings: DispatcherSettings,
    wake: Notify,
    slot_freed: Notify,
    slots: Arc<Semaphore>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Slow webhooks share a bounded part of the slots (see `slow_lane`).
    slow_lane: Mutex<SlowLane>,
    depth_refreshed_at: AtomicI64,
}

impl Dispatcher {
    /// A dispatcher over `store`, sending with `client` (see `http::DeliveryClient`).
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        client: DeliveryClient,
        metrics: Arc<Metrics>,
        settings: DispatcherSettings,
    ) -> Arc<Dispatcher> {
        let settings = DispatcherSettings {
            concurrency: settings.concurrency.max(1),
            per_webhook_in_flight: settings.per_webhook_in_flight.max(1),
            // A lease shorter than an attempt would let a second claim send the same payload
            // while the first attempt is still running.
            lease_ms: settings
                .lease_ms
                .max(ATTEMPT_TIMEOUT.as_millis() as i64 + 5_000),
            ..settings
        };
        Arc::new_cyclic(|me| Dispatcher {
            me: me.clone(),
            store,
            clock,
            client,
            parsed_urls: ParsedUrls::default(),
            metrics,
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            slow_lane: Mutex::new(SlowLane::new(settings.concurrency)),
            settings,
            wake: Notify::new(),
            slot_freed: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            depth_refreshed_at: AtomicI64::new(i64::MIN),
        })
    }

    /// The settings in force (after clamping to sane minimums).
    pub fn settings(&self) -> &DispatcherSettings {
        &self.settings
    }

    /// Tells the loop that new work was enqueued, so it claims now instead of at its next timer.
    pub fn wake(&self) {
        // notify_one keeps a permit when the loop is busy, so a wake-up is never lost.
        self.wake.notify_one();
    }

    /// Runs until `shutdown` turns true: claims due deliveries into free slots, sends them
    /// concurrently, writes their completions in batches with the next claim, and sleeps until
    /// there is something to do. On shutdown, attempts in flight finish and are written.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Every attempt in flight hands over one completion before its slot frees, and every
        // round takes all that are waiting: the queue never holds much more than the slots.
        let (tx, mut rx) =
            mpsc::channel::<Completion>(COMPLETION_QUEUE.max(2 * self.settings.concurrency));
        let mut completions: Vec<Completion> = Vec::new();
        let mut tasks = JoinSet::new();
        let mut store_failures = 0u32;
        // Under load, claim in batches: a claim is a write transaction, and claiming each slot
        // as it freed made most claims take one or two deliveries, which kept the store's
        // writer busy with claims instead of sending. With little in flight, claim at once:
        // latency matters more then.
        let min_claim = (self.settings.concurrency / 8).max(1);
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(joined) = tasks.try_join_next() {
                log_join(joined);
            }
            self.refresh_depth(false).await;
            take_ready(&mut rx, &mut completions);

            let free = self.slots.available_permits();
            let busy = self.settings.concurrency - free;
            // With enough in flight, a claim comes soon: the completions wait for it and go
            // to the store in its turn, instead of in a turn of their own that the claim would
            // wait behind (which made most completion writes one or two rows).
            let claim_comes = busy >= min_claim;
            if free > 0 && free < min_claim && claim_comes {
                let waited_long = tokio::select! {
                    _ = self.slot_freed.notified() => false,
                    // Slots held by slow endpoints may keep the claim from coming: the
                    // delivery log should not show finished attempts as pending for long.
                    _ = tokio::time::sleep(COMPLETION_WAIT), if !completions.is_empty() => true,
                    _ = shutdown.changed() => false,
                };
                if waited_long {
                    let _ = self.write(&completions).await;
                    completions.clear();
                }
                continue;
            }
            if free > 0 {
                let (written, claimed) = self.complete_and_claim(&completions, free).await;
                if written.is_err() {
                    // The combined turn failed; the completions get the usual tries alone.
                    let _ = self.write(&completions).await;
                }
                completions.clear();
                match claimed {
                    Ok(batch) if !batch.is_empty() => {
                        store_failures = 0;
                        for claimed in batch {
                            let guard =
                                self.enter(&claimed, self.slots.clone().try_acquire_owned().ok());
                            let this = self.clone();
                            let tx = tx.clone();
                            tasks.spawn(async move {
                                let processed = this.process(claimed, Road::Automatic).await;
                                // Hand the completion over before freeing the slot, so the loop
                                // always holds the completion of an attempt it no longer counts.
                                let _ = tx.send(processed.completion).await;
                                drop(guard);
                            });
                        }
                        // More may be due right now: claim again before sleeping.
                        continue;
                    }
                    Ok(_) => store_failures = 0,
                    Err(err) => {
                        store_failures += 1;
                        let backoff = Duration::from_millis(100 * 2u64.pow(store_failures.min(6)));
                        tracing::warn!(%err, ?backoff, "cannot claim deliveries");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            } else if !completions.is_empty() && !claim_comes {
                let _ = self.write(&completions).await;
                completions.clear();
            }

            // Nothing claimable now: sleep until something can change that.
            let now = self.clock.now_ms();
            let next_due = match self.store.next_due_at().await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(%err, "cannot read the next due time");
                    Some(now)
                }
            };
            let timer_at = next_due.filter(|at| *at > now);
            // Due but not claimed: leased by someone else or held back by a cap. Slots freeing
            // and writes wake the loop; the poll covers leases that expire elsewhere, and on a
            // shared store the payloads other nodes enqueue, which never wake this loop.
            let blocked =
                free == 0 || next_due.is_some_and(|at| at <= now) || self.store.multi_node();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.slot_freed.notified() => {}
                // With little in flight no claim may come soon: a completion is written when
                // it arrives (and a retry it schedules may be due before the timer).
                n = rx.recv_many(&mut completions, WRITE_BATCH), if !claim_comes => {
                    if n == 0 {
                        break;
                    }
                }
                _ = sleep_until_opt(&self.clock, timer_at) => {}
                _ = tokio::time::sleep(POLL_WHEN_BLOCKED), if blocked => {}
                _ = shutdown.changed() => {}
            }
        }
        // Attempts in flight end within the HTTP timeout; let them finish and be recorded
        // rather than sending them all again after the restart.
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
        drop(tx);
        while rx.recv_many(&mut completions, WRITE_BATCH).await > 0 {}
        for chunk in completions.chunks(WRITE_BATCH) {
            let _ = self.write(chunk).await;
        }
    }

    /// Processes everything due at the current platform time, round after round, until nothing
    /// is due; returns how many deliveries were processed. For tests and deterministic stepping
    /// under a manual clock; shares the send code with [`Dispatcher::run`].
    pub async fn run_due(&self) -> usize {
        let this = self.arc();
        let mut processed = 0;
        loop {
            let free = self.slots.available_permits().max(1);
            let batch = match self.claim(free).await {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(%err, "cannot claim deliveries");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let mut tasks = JoinSet::new();
            for claimed in batch {
                let permit = self.slots.clone().acquire_owned().await.ok();
                let guard = self.enter(&claimed, permit);
                let this = this.clone();
                tasks.spawn(async move {
                    let processed = this.process(claimed, Road::Automatic).await;
                    drop(guard);
                    processed.completion
                });
            }
            let mut completions = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(completion) => completions.push(completion),
                    Err(err) => log_join::<()>(Err(err)),
                }
            }
            processed += completions.len();
            for chunk in completions.chunks(WRITE_BATCH) {
                if self.write(chunk).await.is_err() {
                    // The leases will expire and these deliveries come round again.
                    return processed;
                }
            }
        }
        self.refresh_depth(true).await;
        processed
    }

    /// Makes one attempt of a delivery now, whatever its due time, and records it: the
    /// verification challenge (with `expect_challenge`, the hex HMAC the receiver must echo) and
    /// manual retries. One attempt only: success is `Succeeded`, anything else `Failed`, with no
    /// automatic retries and no disabling.
    pub async fn attempt_now(
        &self,
        app_id: &str,
        delivery_id: &str,
        expect_challenge: Option<&str>,
    ) -> Result<AttemptReport, DispatchError> {
        let not_found = || DispatchError::NotFound(delivery_id.to_string());
        // Look before claiming: a refused manual retry must leave the log as it was, and a
        // missing delivery must not read as a busy one.
        let delivery = self
            .store
            .delivery(app_id, delivery_id)
            .await?
            .ok_or_else(not_found)?;
        let webhook = self
            .store
            .webhook(app_id, &delivery.webhook_id)
            .await?
            .ok_or_else(not_found)?;
        if webhook.status != WebhookStatus::Enabled && delivery.purpose != DeliveryPurpose::Verify {
            return Err(DispatchError::WebhookNotEnabled(webhook.status));
        }
        let lease_until = real_now_ms() + self.settings.lease_ms;
        let claimed = self
            .store
            .claim_one(app_id, delivery_id, lease_until)
            .await?
            .ok_or_else(|| DispatchError::Busy(delivery_id.to_string()))?;
        let guard = self.enter(&claimed, None);
        let processed = self
            .process(claimed, Road::Single { expect_challenge })
            .await;
        drop(guard);
        self.write(std::slice::from_ref(&processed.completion))
            .await?;
        self.refresh_depth(true).await;
        match (processed.report, processed.not_enabled) {
            (Some(report), _) => Ok(report),
            (None, Some(status)) => Err(DispatchError::WebhookNotEnabled(status)),
            // Every path that makes no attempt sets `not_enabled`.
            (None, None) => Err(DispatchError::Busy(delivery_id.to_string())),
        }
    }

    fn arc(&self) -> Arc<Dispatcher> {
        self.me
            .upgrade()
            .expect("a Dispatcher only exists inside the Arc made by Dispatcher::new")
    }

    /// Claims up to `free` due deliveries, respecting the per-webhook cap. Webhooks at half
    /// their cap or more are skipped, and the claim gives no webhook more than the room left
    /// under the cap of the busiest webhook not skipped, so no webhook can exceed its cap; a
    /// busy webhook oscillates between half and full cap. (The room used to bound the whole
    /// claim, which held every claim to one webhook's cap: 30 deliveries a claim with 226
    /// slots free, the drain's bottleneck.) Slow webhooks are skipped, or the claim shrunk, to
    /// keep them within their shared budget (`slow_lane`).
    async fn claim(&self, free: usize) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.complete_and_claim(&[], free).await.1
    }

    /// Writes `completions` (one try) and claims as [`Dispatcher::claim`] does, in one store
    /// call.
    async fn complete_and_claim(
        &self,
        completions: &[Completion],
        free: usize,
    ) -> (
        Result<(), StoreError>,
        Result<Vec<ClaimedDelivery>, StoreError>,
    ) {
        let cap = self.settings.per_webhook_in_flight;
        let threshold = cap.div_ceil(2);
        let (mut skip, busiest) = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let mut skip = Vec::new();
            let mut busiest = 0;
            for (webhook, &n) in in_flight.iter() {
                if n >= threshold {
                    skip.push(webhook.clone());
                } else {
                    busiest = busiest.max(n);
                }
            }
            (skip, busiest)
        };
        let limit = self
            .slow_lane
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restrict(Instant::now(), &mut skip, free);
        let lease_now = real_now_ms();
        let claim = ClaimRequest {
            now: self.clock.now_ms(),
            lease_now,
            lease_until: lease_now + self.settings.lease_ms,
            // No room: the store claims nothing, and still writes the completions.
            limit: limit as i64,
            per_webhook: (cap - busiest) as i64,
            skip_webhooks: &skip,
        };
        self.store.complete_and_claim(completions, &claim).await
    }

    /// Counts a delivery as in flight for its webhook until the returned guard drops.
    fn enter(&self, claimed: &ClaimedDelivery, permit: Option<OwnedSemaphorePermit>) -> InFlight {
        let webhook_id = claimed.webhook.id.clone();
        *self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(webhook_id.clone())
            .or_default() += 1;
        let started = Instant::now();
        self.slow_lane
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .enter(&webhook_id, started);
        InFlight {
            dispatcher: self.arc(),
            webhook_id,
            started,
            _permit: permit,
        }
    }

    /// Sends one claimed delivery (or decides not to) and builds its completion.
    async fn process(&self, claimed: ClaimedDelivery, road: Road<'_>) -> Processed {
        let delivery = &claimed.delivery;
        let webhook = &claimed.webhook;
        if webhook.status != WebhookStatus::Enabled && delivery.purpose != DeliveryPurpose::Verify {
            let completion = Completion {
                delivery_id: delivery.id.clone(),
                attempt: None,
                outcome: Outcome::Failed,
                last_error: Some(format!("webhook is {}", webhook.status.as_str())),
                disable_webhook: None,
                at: self.clock.now_ms(),
            };
            self.metrics.record_outcome(&completion.outcome);
            return Processed {
                completion,
                report: None,
                not_enabled: Some(webhook.status),
            };
        }

        let expect_challenge = match road {
            Road::Single { expect_challenge } => expect_challenge,
            Road::Automatic => None,
        };
        let sent = self.send(&claimed, expect_challenge).await;
        let decision = match road {
            Road::Automatic => retry::decide(
                webhook.kind,
                delivery.purpose,
                sent.attempt.number,
                &sent.result,
                sent.retry_after,
                retry::random_jitter(),
            ),
            Road::Single { .. } => retry::decide_single(&sent.result),
        };
        let at = self.clock.now_ms();
        let outcome = match decision.next {
            Next::Succeeded => Outcome::Succeeded,
            Next::Retry(wait) => Outcome::RetryAt(at + wait.as_millis() as Millis),
            Next::Failed => Outcome::Failed,
        };
        self.metrics.record_outcome(&outcome);
        // Only an attempt made by hand reports back; the dispatcher's own would copy the
        // attempt and the response for nothing.
        let report = matches!(road, Road::Single { .. }).then(|| AttemptReport {
            attempt: sent.attempt.clone(),
            outcome: outcome.clone(),
            response_body: sent.attempt.response_body.clone(),
        });
        let completion = Completion {
            delivery_id: delivery.id.clone(),
            last_error: sent.attempt.error.clone(),
            attempt: Some(sent.attempt),
            outcome,
            disable_webhook: decision.disable.map(|reason| (webhook.id.clone(), reason)),
            at,
        };
        Processed {
            completion,
            report,
            not_enabled: None,
        }
    }

    /// One signed HTTP attempt. Never fails: every problem becomes the attempt's error.
    async fn send(&self, claimed: &ClaimedDelivery, expect_challenge: Option<&str>) -> Sent {
        let delivery = &claimed.delivery;
        let now = self.clock.now_ms();
        let wire_delivery_id = crate::ids::new_id();
        let mut attempt = Attempt {
            delivery_id: delivery.id.clone(),
            number: delivery.attempt_count + 1,
            wire_delivery_id: wire_delivery_id.clone(),
            started_at: now,
            status_code: None,
            duration_ms: 0,
            error: None,
            response_body: None,
        };
        // Problems found before sending count as network failures: same road, same log.
        let refuse = |mut attempt: Attempt, error: String| {
            attempt.error = Some(error.clone());
            Sent {
                attempt,
                result: AttemptResult::Failed {
                    status: None,
                    error,
                },
                retry_after: None,
            }
        };

        let target = match self.parsed_urls.parse(&delivery.target_uri) {
            Ok(target) => target,
            Err(err) => return refuse(attempt, format!("callback URI is not a valid URL: {err}")),
        };
        // Before every attempt: the resolver only guards names, not IP literals.
        if let Err(reason) = check_target(&target.url, self.settings.allow_private) {
            return refuse(attempt, reason);
        }

        // v3/v4 bodies carry a per-attempt deliveryId/deliveredAt; a body the stamper cannot
        // read is still worth delivering as rendered.
        let body = fleethook_wire::payload::stamp_attempt(&delivery.body, &wire_delivery_id, now)
            .unwrap_or_else(|_| delivery.body.clone());
        let sc_signature =
            fleethook_wire::signing::sc_signature(&claimed.management_token, body.as_bytes());
        // Receivers compare webhook-timestamp with their own clock: real time, even when the
        // platform clock is scaled.
        let timestamp = real_now_ms().div_euclid(1000);
        let secrets = claimed.webhook.active_secrets(now);
        let standard_signature = match fleethook_wire::signing::standard::signature_header(
            &secrets,
            &delivery.event_id,
            timestamp,
            body.as_bytes(),
        ) {
            Ok(header) => header,
            Err(err) => {
                return refuse(
                    attempt,
                    format!("the webhook's signing secret is unusable: {err}"),
                )
            }
        };
        let event_id = match HeaderValue::from_str(&delivery.event_id) {
            Ok(value) => value,
            Err(_) => {
                return refuse(
                    attempt,
                    "the event id is not a valid header value".to_string(),
                )
            }
        };
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(WEBHOOK_ID, event_id);
        // Hex, digits and base64: valid header values, checked all the same.
        for (name, value) in [
            (SC_SIGNATURE, sc_signature),
            (WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (WEBHOOK_SIGNATURE, standard_signature),
        ] {
            match HeaderValue::try_from(value) {
                Ok(value) => headers.insert(name, value),
                Err(_) => return refuse(attempt, format!("the {name} header is not valid")),
            };
        }

        let started = Instant::now();
        let answer = self
            .client
            .post(
                target.uri.clone(),
                headers,
                Bytes::from(body),
                MAX_RESPONSE_READ,
            )
            .await;
        let (result, retry_after) = match answer {
            Err(err) => (
                AttemptResult::Failed {
                    status: None,
                    error: err.describe(),
                },
                None,
            ),
            Ok(answer) => {
                attempt.status_code = Some(i64::from(answer.status.as_u16()));
                let retry_after = answer
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                let location = answer.headers.get(LOCATION).and_then(|v| v.to_str().ok());
                attempt.response_body =
                    (!answer.body.is_empty()).then(|| keep_prefix(&answer.body, MAX_RESPONSE_KEPT));
                let result = judge(answer.status, location, &answer.body, expect_challenge);
                (result, retry_after)
            }
        };
        let elapsed = started.elapsed();
        attempt.duration_ms = elapsed.as_millis() as i64;
        self.metrics.observe_attempt_duration(elapsed.as_secs_f64());
        if let AttemptResult::Failed { error, .. } = &result {
            attempt.error = Some(error.clone());
        }
        Sent {
            attempt,
            result,
            retry_after,
        }
    }

    /// Writes completions, retrying briefly: losing them only means sending again later.
    async fn write(&self, completions: &[Completion]) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.store.complete_many(completions).await {
                Ok(()) => return Ok(()),
                Err(err) if tries < WRITE_TRIES => {
                    tracing::warn!(%err, tries, "cannot record completions, trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => {
                    tracing::error!(
                        %err,
                        count = completions.len(),
                        "cannot record completions; their leases will expire and they will be sent again"
                    );
                    return Err(err);
                }
            }
        }
    }

    /// Refreshes the outbox depth gauge and the write-busy counter, at most once a second
    /// unless `force`.
    async fn refresh_depth(&self, force: bool) {
        let now = real_now_ms();
        let last = self.depth_refreshed_at.load(Ordering::Relaxed);
        if !force && now.saturating_sub(last) < DEPTH_REFRESH_MS {
            return;
        }
        self.depth_refreshed_at.store(now, Ordering::Relaxed);
        match self.store.outbox_depth().await {
            Ok(depth) => self.metrics.set_outbox_depth(depth),
            Err(err) => tracing::warn!(%err, "cannot read the outbox depth"),
        }
        if let Some(busy) = self.store.write_busy() {
            self.metrics.set_write_busy(busy);
        }
    }
}

/// A delivery in flight: holds a concurrency slot and counts against its webhook's cap until
/// dropped (also when its task panics).
struct InFlight {
    dispatcher: Arc<Dispatcher>,
    webhook_id: String,
    started: Instant,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut in_flight = self
            .dispatcher
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = in_flight.get_mut(&self.webhook_id) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.webhook_id);
            }
        }
        drop(in_flight);
        self.dispatcher
            .slow_lane
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .exit(&self.webhook_id, self.started, Instant::now());
        self.dispatcher.slot_freed.notify_one();
    }
}

/// Moves every completion already queued into `completions`, without waiting.
fn take_ready(rx: &mut mpsc::Receiver<Completion>, completions: &mut Vec<Completion>) {
    while let Ok(completion) = rx.try_recv() {
        completions.push(completion);
    }
}

/// Sleeps until platform time `at`, or forever when there is no such time.
async fn sleep_until_opt(clock: &SharedClock, at: Option<Millis>) {
    match at {
        Some(at) => clock::sleep_until(clock.as_ref(), at).await,
        None => std::future::pending().await,
    }
}

fn log_join<T>(joined: Result<T, tokio::task::JoinError>) {
    if let Err(err) = joined {
        // The lease expires and the delivery is sent again.
        tracing::error!(%err, "a delivery task failed");
    }
}

/// Decides an answered attempt: any 2xx succeeds (with a challenge, only the right echo).
fn judge(
    status: StatusCode,
    location: Option<&str>,
    body: &[u8],
    expect_challenge: Option<&str>,
) -> AttemptResult {
    let code = status.as_u16();
    let fail = |error: String| AttemptResult::Failed {
        status: Some(code),
        error,
    };
    if status.is_redirection() {
        return fail(match location {
            Some(to) => format!("redirect to {to} not followed (HTTP {code})"),
            None => format!("redirect not followed (HTTP {code})"),
        });
    }
    if !status.is_success() {
        return fail(format!("HTTP {code}"));
    }
    let Some(expected) = expect_challenge else {
        return AttemptResult::Succeeded;
    };
    let answer: Value = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(_) => return fail("response is not JSON".to_string()),
    };
    match answer.get("challenge") {
        Some(Value::String(received)) if received.eq_ignore_ascii_case(expected) => {
            AttemptResult::Succeeded
        }
        Some(Value::String(received)) => fail(format!(
            "expected challenge {expected}, received {received}"
        )),
        Some(other) => fail(format!("expected challenge {expected}, received {other}")),
        None => fail(format!(
            "expected challenge {expected}, received no challenge field"
        )),
    }
}

/// The first `limit` bytes of `body` as text, cut at a character boundary.
fn keep_prefix(body: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(limit)]);
    let mut text = text.into_owned();
    // A multi-byte character cut in half shows as U+FFFD at the end; drop it.
    if body.len() > limit && text.ends_with('\u{FFFD}') {
        text.pop();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_statuses_and_challenges() {
        let ok = StatusCode::OK;
        assert_eq!(judge(ok, None, b"", None), AttemptResult::Succeeded);
        assert_eq!(
            judge(StatusCode::NO_CONTENT, None, b"", None),
            AttemptResult::Succeeded
        );
        let err = |r: AttemptResult| match r {
            AttemptResult::Failed { error, .. } => error,
            AttemptResult::Succeeded => panic!("expected a failure"),
        };
        assert_eq!(
            err(judge(StatusCode::INTERNAL_SERVER_ERROR, None, b"", None)),
            "HTTP 500"
        );
        assert_eq!(
            err(judge(
                StatusCode::FOUND,
                Some("https://elsewhere.example/x"),
                b"",
                None
            )),
            "redirect to https://elsewhere.example/x not followed (HTTP 302)"
        );
        assert_eq!(
            judge(ok, None, br#"{"challenge":"ABCDEF"}"#, Some("abcdef")),
            AttemptResult::Succeeded
        );
        assert_eq!(
            err(judge(ok, None, b"hello", Some("ab"))),
            "response is not JSON"
        );
        assert_eq!(
            err(judge(ok, None, br#"{"challenge":"cd"}"#, Some("ab"))),
            "expected challenge ab, received cd"
        );
        assert_eq!(
            err(judge(ok, None, br#"{"other":1}"#, Some("ab"))),
            "expected challenge ab, received no challenge field"
        );
        assert_eq!(
            err(judge(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                b"",
                Some("ab")
            )),
            "HTTP 500"
        );
    }

    #[test]
    fn keeps_a_prefix_at_a_character_boundary() {
        assert_eq!(keep_prefix(b"hello", 10), "hello");
        assert_eq!(keep_prefix(b"hello", 3), "hel");
        assert_eq!(keep_prefix("héllo".as_bytes(), 2), "h");
    }
}
