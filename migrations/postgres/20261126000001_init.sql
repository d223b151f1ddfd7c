CREATE TABLE alerts (
    id              BIGSERIAL   PRIMARY KEY,
    service_id      TEXT        NOT NULL,
    dedup_key       TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    summary         TEXT        NOT NULL,
    severity        TEXT        NOT NULL,
    source          TEXT        NOT NULL DEFAULT '',
    urgency         TEXT        NOT NULL DEFAULT 'high',
    policy_id       TEXT,
    labels          JSONB       NOT NULL DEFAULT '{}',
    details         JSONB       NOT NULL DEFAULT 'null',
    links           JSONB       NOT NULL DEFAULT '[]',
    event_count     BIGINT      NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    resolved_at     TIMESTAMPTZ,
    resolved_by     TEXT
);

-- At most one open alert per key and service; a resolved key may open again.
CREATE UNIQUE INDEX alerts_open_key ON alerts (service_id, dedup_key) WHERE status <> 'resolved';
CREATE INDEX alerts_status ON alerts (status, id);

CREATE TABLE alert_timeline (
    id       BIGSERIAL   PRIMARY KEY,
    alert_id BIGINT      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       TIMESTAMPTZ NOT NULL,
    kind     TEXT        NOT NULL,
    actor    TEXT        NOT NULL,
    message  TEXT        NOT NULL,
    data     JSONB
);
CREATE INDEX alert_timeline_alert ON alert_timeline (alert_id, id);

CREATE TABLE heartbeats (
    service_id   TEXT        NOT NULL,
    name         TEXT        NOT NULL,
    last_ping_at TIMESTAMPTZ NOT NULL,
    ping_count   BIGINT      NOT NULL,
    PRIMARY KEY (service_id, name)
);
