-- The run of duplicates an alert is counting (see src/alert/dedup.rs): one
-- timeline entry per alert per minute instead of a row per duplicate. The
-- columns are on the alert row so that a duplicate writes only that row.
ALTER TABLE alerts
    ADD COLUMN dup_count    BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN dup_first_at TIMESTAMPTZ,
    ADD COLUMN dup_last_at  TIMESTAMPTZ,
    ADD COLUMN dup_actor    TEXT;
