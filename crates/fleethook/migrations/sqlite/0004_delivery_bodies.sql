-- Payload bodies live apart from the outbox rows. A claim leases a delivery and a completion
-- records its outcome by updating its row, and SQLite rewrites a whole row on every update:
-- with the body in it (about 840 bytes for a vehicleState payload), every lease and every
-- completion rewrote the body too. A body is written once and only read after.
CREATE TABLE delivery_bodies (
    seq  INTEGER PRIMARY KEY REFERENCES deliveries (seq) ON DELETE CASCADE,
    body TEXT    NOT NULL
);

INSERT INTO delivery_bodies (seq, body) SELECT seq, body FROM deliveries;

ALTER TABLE deliveries DROP COLUMN body;
