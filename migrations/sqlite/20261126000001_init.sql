-- Instants are INTEGER milliseconds since the Unix epoch, UTC: SQLite has no
-- timestamp type, and integers compare and index exactly.
CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id      TEXT    NOT NULL,
    dedup_key       TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    summary         TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    source          TEXT    NOT NULL DEFAULT '',
    urgency         TEXT    NOT NULL DEFAULT 'high',
    policy_id       TEXT,
    labels          TEXT    NOT NULL DEFAULT '{}',
    details         TEXT    NOT NULL DEFAULT 'null',
    links           TEXT    NOT NULL DEFAULT '[]',
    event_count     INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    resolved_at     INTEGER,
    resolved_by     TEXT
);

-- At most one open alert per key and service; a resolved key may open again.
CREATE UNIQUE INDEX alerts_open_key ON alerts (service_id, dedup_key) WHERE status <> 'resolved';
CREATE INDEX alerts_status ON alerts (status, id);

CREATE TABLE alert_timeline (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    message  TEXT    NOT NULL,
    data     TEXT
);
CREATE INDEX alert_timeline_alert ON alert_timeline (alert_id, id);

CREATE TABLE heartbeats (
    service_id   TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    last_ping_at INTEGER NOT NULL,
    ping_count   INTEGER NOT NULL,
    PRIMARY KEY (service_id, name)
);
