-- The escalation of each open alert: where it is in its policy and when its
-- next step is due. This row is the durable timer: a restart resumes from it.
CREATE TABLE escalations (
    alert_id    BIGINT      PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    policy_id   TEXT        NOT NULL,
    pass        INTEGER     NOT NULL DEFAULT 0,
    step        INTEGER     NOT NULL DEFAULT 0,
    phase       TEXT        NOT NULL DEFAULT 'steps' CHECK (phase IN ('steps', 'voice_repeat')),
    fired       BIGINT      NOT NULL DEFAULT 0,
    due_at      TIMESTAMPTZ NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'done')),
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    lease_token BIGINT      NOT NULL DEFAULT 0
);
CREATE INDEX escalations_due ON escalations (state, due_at);

CREATE TABLE notifications (
    id              BIGSERIAL   PRIMARY KEY,
    alert_id        BIGINT      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    fired           BIGINT      NOT NULL,
    idempotency_key TEXT        NOT NULL UNIQUE,
    channel         TEXT        NOT NULL,
    target          TEXT        NOT NULL,
    recipient       JSONB       NOT NULL,
    attempt         INTEGER     NOT NULL DEFAULT 1,
    status          TEXT        NOT NULL CHECK (status IN
                        ('pending', 'retry', 'delivered', 'failed', 'unknown', 'canceled')),
    due_at          TIMESTAMPTZ NOT NULL,
    provider_id     TEXT,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    lease_token     BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_due ON notifications (status, due_at);
CREATE INDEX notifications_alert ON notifications (alert_id);
