-- Provider webhooks already acted on, by the provider's own id (Twilio's
-- MessageSid, CallSid + event; Slack's action_ts + user): a provider re-sends
-- a webhook it timed out on, and the repeat must get the first answer and
-- change nothing. The row is inserted before acting (first_answer NULL), so
-- of two identical requests at once only one acts. Kept at least a day.
CREATE TABLE inbound_seen (
    provider     TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    -- {"status", "content_type", "body"} of the first answer; NULL while the
    -- first request is still being handled.
    first_answer TEXT,
    seen_at      INTEGER NOT NULL,
    PRIMARY KEY (provider, message_id)
);
CREATE INDEX inbound_seen_at ON inbound_seen (seen_at);
