-- Time-based triggers.

-- One row per scheduled webhook: the boundary to deliver next and, while a boundary is being
-- delivered page by page, the last vehicle id already enqueued for it.
CREATE TABLE schedules (
    webhook_id  TEXT    PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    boundary_at INTEGER NOT NULL,
    cursor      TEXT
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (boundary_at);

-- Dynamic subscriptions carry their own next due time (NULL for other kinds).
ALTER TABLE subscriptions ADD COLUMN next_due_at INTEGER;
CREATE INDEX subscriptions_due ON subscriptions (next_due_at) WHERE next_due_at IS NOT NULL;
