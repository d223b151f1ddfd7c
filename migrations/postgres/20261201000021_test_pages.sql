-- Test pages: one alert per person and method (service `rouse-test-page`,
-- no escalation); whether it worked is that alert's acknowledgement.
CREATE TABLE test_pages (
    alert_id  BIGINT      PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    person_id TEXT        NOT NULL,
    method    TEXT        NOT NULL CHECK (method IN ('push', 'sms', 'voice')),
    sent_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX test_pages_person ON test_pages (person_id, method, sent_at);
