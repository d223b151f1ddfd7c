-- Provider callbacks (Twilio's status and answer webhooks) find their page by
-- the provider's id: without an index each one scanned every page ever sent,
-- on SQLite while holding the one writer.
CREATE INDEX notifications_provider ON notifications (provider_id) WHERE provider_id IS NOT NULL;
