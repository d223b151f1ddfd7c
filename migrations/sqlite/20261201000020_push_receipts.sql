-- Pushover emergency pages: the hash of the random secret in each page's
-- callback URL (never the secret itself), when its receipt was last polled,
-- and when its acknowledgement was acted on or its alarm expired.
CREATE TABLE push_receipts (
    notification_id INTEGER PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    secret_hash     TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    polled_at       INTEGER,
    acknowledged_at INTEGER,
    expired_at      INTEGER
);
-- The poller walks the open receipts, least recently polled first.
CREATE INDEX push_receipts_open ON push_receipts (polled_at)
    WHERE acknowledged_at IS NULL AND expired_at IS NULL;
