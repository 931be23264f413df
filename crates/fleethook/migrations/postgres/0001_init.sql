-- fleethook's shared schema: the same records as migrations/sqlite, for several nodes.
--
-- Conventions:
-- * Times are epoch milliseconds (BIGINT), as in the model. Lease times (`lease_until`) are
--   real time; everything else is platform time.
-- * Payload bodies are TEXT, never JSONB: JSONB would reorder keys and respell numbers, and
--   the bytes a receiver gets (and that SC-Signature covers) must be exactly the ones
--   rendered. Signal bodies and webhook config are TEXT too and compared by value in Rust.
-- * Tables listed in insertion order carry `seq BIGINT GENERATED ALWAYS AS IDENTITY` as the
--   tie-breaker after their time column; the public id is a separate UNIQUE column.
-- * A lease is (`lease_owner`, `lease_until`): the node that claimed the row and until when.
--   Only a lease that has expired may be taken over; a starting node releases only its own.

CREATE TABLE apps (
    id               TEXT   NOT NULL PRIMARY KEY,
    name             TEXT   NOT NULL,
    management_token TEXT   NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL
);

CREATE TABLE vehicles (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY,
    id           TEXT    NOT NULL PRIMARY KEY,
    app_id       TEXT    NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL,
    -- Not unique: a user's vehicles may one day share the user's token.
    access_token TEXT    NOT NULL,
    make         TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    year         INTEGER NOT NULL,
    vin          TEXT    NOT NULL,
    mode         TEXT    NOT NULL CHECK (mode IN ('live', 'simulated')),
    simulated    BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    UNIQUE (app_id, vin)
);
CREATE INDEX vehicles_by_app ON vehicles (app_id, created_at, seq);
CREATE INDEX vehicles_by_user ON vehicles (app_id, user_id, created_at, seq);
CREATE INDEX vehicles_by_token ON vehicles (access_token);

-- The latest value of each signal of each vehicle.
CREATE TABLE signals (
    vehicle_id     TEXT   NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    code           TEXT   NOT NULL,
    body           TEXT   NOT NULL,
    oem_updated_at BIGINT,
    retrieved_at   BIGINT NOT NULL,
    -- Platform time of the ingest that last wrote the row.
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (vehicle_id, code)
);

-- A vehicle's active errors: the set the last ingest with `errors` named.
CREATE TABLE vehicle_errors (
    vehicle_id  TEXT    NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    error_type  TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    description TEXT,
    signals     TEXT[]  NOT NULL,
    -- Position in the last ingest's list, so errors read back in the order they were given.
    position    INTEGER NOT NULL,
    raised_at   BIGINT  NOT NULL,
    PRIMARY KEY (vehicle_id, error_type, code)
);

CREATE TABLE webhooks (
    seq                        BIGINT GENERATED ALWAYS AS IDENTITY,
    id                         TEXT   NOT NULL PRIMARY KEY,
    app_id                     TEXT   NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name                       TEXT   NOT NULL,
    kind                       TEXT   NOT NULL,
    callback_uri               TEXT   NOT NULL,
    error_callback_uri         TEXT,
    config                     TEXT   NOT NULL,
    status                     TEXT   NOT NULL CHECK (status IN ('unverified', 'enabled', 'disabled')),
    disabled_reason            TEXT,
    signing_secret             TEXT   NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at BIGINT,
    max_payload_bytes          BIGINT NOT NULL,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
CREATE INDEX webhooks_by_app ON webhooks (app_id, created_at, seq);

CREATE TABLE subscriptions (
    webhook_id  TEXT   NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    vehicle_id  TEXT   NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    -- Dynamic subscriptions carry their own next due time (NULL for other kinds) and, while a
    -- node renders them, its lease.
    next_due_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    PRIMARY KEY (webhook_id, vehicle_id)
);
-- Serves the cascade when a vehicle is deleted, and "which webhooks does this vehicle feed".
CREATE INDEX subscriptions_by_vehicle ON subscriptions (vehicle_id);
CREATE INDEX subscriptions_due ON subscriptions (next_due_at) WHERE next_due_at IS NOT NULL;

-- The outbox and the delivery log in one table: a delivery is pending until it succeeds or
-- fails, and stays as the log afterwards. No foreign key to webhooks: the log outlives a
-- deleted webhook.
CREATE TABLE deliveries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT   NOT NULL UNIQUE,
    app_id          TEXT   NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    webhook_id      TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    purpose         TEXT   NOT NULL CHECK (purpose IN ('verify', 'test', 'event')),
    target_uri      TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    event_type      TEXT   NOT NULL,
    -- As given; `delivery_vehicles` indexes them.
    vehicle_ids     TEXT[] NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count   BIGINT NOT NULL DEFAULT 0,
    -- Platform time; NULL keeps a pending delivery out of claims (verification).
    next_attempt_at BIGINT,
    -- The node sending it and until when (real time).
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- The outbox proper: claims, next_due_at and outbox_depth read only this small index, however
-- long the log grows.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, seq) WHERE status = 'pending';
-- The delivery log of one webhook, newest first.
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at, seq);

-- Which vehicles each delivery speaks of, for the vehicle filter of the log.
CREATE TABLE delivery_vehicles (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    vehicle_id  TEXT NOT NULL,
    PRIMARY KEY (delivery_id, vehicle_id)
);
CREATE INDEX delivery_vehicles_by_vehicle ON delivery_vehicles (vehicle_id);

CREATE TABLE attempts (
    delivery_id      TEXT   NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number           BIGINT NOT NULL,
    wire_delivery_id TEXT   NOT NULL,
    started_at       BIGINT NOT NULL,
    status_code      BIGINT,
    duration_ms      BIGINT NOT NULL,
    error            TEXT,
    response_body    TEXT,
    PRIMARY KEY (delivery_id, number)
);

-- One row per scheduled webhook: the boundary to deliver next and, while a boundary is being
-- delivered page by page, the last vehicle id already enqueued for it, and the lease of the
-- node delivering it.
CREATE TABLE schedules (
    webhook_id  TEXT   PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    boundary_at BIGINT NOT NULL,
    cursor      TEXT,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX schedules_due ON schedules (boundary_at);

-- Work that one node at a time does for the whole cluster (the fleet simulator), held under a
-- lease that the holder renews.
CREATE TABLE singleton_leases (
    name        TEXT   PRIMARY KEY,
    lease_owner TEXT   NOT NULL,
    lease_until BIGINT NOT NULL
);
