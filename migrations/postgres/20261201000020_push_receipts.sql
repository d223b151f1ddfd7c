-- Pushover emergency pages: the hash of the random secret in each page's
-- callback URL (never the secret itself), when its receipt was last polled,
-- and when its acknowledgement was acted on or its alarm expired.
CREATE TABLE push_receipts (
    notification_id BIGINT      PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    alert_id        BIGINT      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    secret_hash     TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    polled_at       TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    expired_at      TIMESTAMPTZ
);
-- The poller walks the open receipts, least recently polled first.
CREATE INDEX push_receipts_open ON push_receipts (polled_at NULLS FIRST)
    WHERE acknowledged_at IS NULL AND expired_at IS NULL;
