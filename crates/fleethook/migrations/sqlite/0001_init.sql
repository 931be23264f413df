-- fleethook's embedded schema.
--
-- Conventions:
-- * Times are epoch milliseconds (INTEGER). JSON (signal bodies, webhook config, id lists) is
--   stored as TEXT and compared by value in Rust, never as text.
-- * Tables that are listed in insertion order carry an explicit `seq INTEGER PRIMARY KEY`:
--   an explicit rowid alias survives VACUUM, an implicit rowid does not. The public id is a
--   separate UNIQUE column.
-- * Tables keyed by a natural composite key are WITHOUT ROWID, so the row lives in the
--   primary-key b-tree and a lookup is one descent.

CREATE TABLE apps (
    id               TEXT    NOT NULL PRIMARY KEY,
    name             TEXT    NOT NULL,
    management_token TEXT    NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE vehicles (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    app_id       TEXT    NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL,
    -- Not unique: a user's vehicles may one day share the user's token.
    access_token TEXT    NOT NULL,
    make         TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    year         INTEGER NOT NULL,
    vin          TEXT    NOT NULL,
    mode         TEXT    NOT NULL CHECK (mode IN ('live', 'simulated')),
    simulated    INTEGER NOT NULL CHECK (simulated IN (0, 1)),
    created_at   INTEGER NOT NULL,
    UNIQUE (app_id, vin)
);
CREATE INDEX vehicles_by_app ON vehicles (app_id, created_at, seq);
CREATE INDEX vehicles_by_user ON vehicles (app_id, user_id, created_at, seq);
CREATE INDEX vehicles_by_token ON vehicles (access_token);

-- The latest value of each signal of each vehicle.
CREATE TABLE signals (
    vehicle_id     TEXT    NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    code           TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    oem_updated_at INTEGER,
    retrieved_at   INTEGER NOT NULL,
    -- Platform time of the ingest that last wrote the row.
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (vehicle_id, code)
) WITHOUT ROWID;

-- A vehicle's active errors: the set the last ingest with `errors` named.
CREATE TABLE vehicle_errors (
    vehicle_id  TEXT    NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    error_type  TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    description TEXT,
    -- JSON array of signal codes.
    signals     TEXT    NOT NULL,
    -- Position in the last ingest's list, so errors read back in the order they were given.
    position    INTEGER NOT NULL,
    raised_at   INTEGER NOT NULL,
    PRIMARY KEY (vehicle_id, error_type, code)
) WITHOUT ROWID;

CREATE TABLE webhooks (
    seq                        INTEGER PRIMARY KEY,
    id                         TEXT    NOT NULL UNIQUE,
    app_id                     TEXT    NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name                       TEXT    NOT NULL,
    kind                       TEXT    NOT NULL,
    callback_uri               TEXT    NOT NULL,
    error_callback_uri         TEXT,
    config                     TEXT    NOT NULL,
    status                     TEXT    NOT NULL CHECK (status IN ('unverified', 'enabled', 'disabled')),
    disabled_reason            TEXT,
    signing_secret             TEXT    NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at INTEGER,
    max_payload_bytes          INTEGER NOT NULL,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);
CREATE INDEX webhooks_by_app ON webhooks (app_id, created_at, seq);

CREATE TABLE subscriptions (
    webhook_id TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    vehicle_id TEXT    NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, vehicle_id)
) WITHOUT ROWID;
-- Serves the cascade when a vehicle is deleted, and "which webhooks does this vehicle feed".
CREATE INDEX subscriptions_by_vehicle ON subscriptions (vehicle_id);

-- The outbox and the delivery log in one table: a delivery is pending until it succeeds or
-- fails, and stays as the log afterwards. No foreign key to webhooks: the log outlives a
-- deleted webhook.
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    app_id          TEXT    NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    webhook_id      TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    purpose         TEXT    NOT NULL CHECK (purpose IN ('verify', 'test', 'event')),
    target_uri      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    -- JSON array of vehicle ids (as given); `delivery_vehicles` indexes it.
    vehicle_ids     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    -- Platform time; NULL keeps a pending delivery out of claims (verification).
    next_attempt_at INTEGER,
    -- Real time until which a dispatcher owns the delivery.
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
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
) WITHOUT ROWID;
CREATE INDEX delivery_vehicles_by_vehicle ON delivery_vehicles (vehicle_id);

CREATE TABLE attempts (
    delivery_id      TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    wire_delivery_id TEXT    NOT NULL,
    started_at       INTEGER NOT NULL,
    status_code      INTEGER,
    duration_ms      INTEGER NOT NULL,
    error            TEXT,
    response_body    TEXT,
    PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;
