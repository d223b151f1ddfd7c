-- The escalation of each open alert: where it is in its policy and when its
-- next step is due. This row is the durable timer: a restart resumes from it.
CREATE TABLE escalations (
    alert_id    INTEGER PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    policy_id   TEXT    NOT NULL,
    pass        INTEGER NOT NULL DEFAULT 0,
    step        INTEGER NOT NULL DEFAULT 0,
    -- 'steps' walks the policy; 'voice_repeat' re-calls the last step's voice targets.
    phase       TEXT    NOT NULL DEFAULT 'steps' CHECK (phase IN ('steps', 'voice_repeat')),
    -- Steps fired so far; notifications remember the firing that created them.
    fired       INTEGER NOT NULL DEFAULT 0,
    due_at      INTEGER NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'done')),
    lease_owner TEXT,
    lease_until INTEGER,
    -- Bumped by every claim; a completion must present the token it claimed with.
    lease_token INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX escalations_due ON escalations (state, due_at);

-- The outbox: one row per notification to send, retried until an outcome.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    fired           INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL UNIQUE,
    channel         TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 1,
    status          TEXT    NOT NULL CHECK (status IN
                        ('pending', 'retry', 'delivered', 'failed', 'unknown', 'canceled')),
    due_at          INTEGER NOT NULL,
    provider_id     TEXT,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    lease_token     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX notifications_due ON notifications (status, due_at);
CREATE INDEX notifications_alert ON notifications (alert_id);
