-- An SMS reply ("ACK 3", "ACK ALL") looks for the newest alerts paged to its
-- number. Walking this index backwards stops after the alerts it needs;
-- before, every page ever sent to the number was gathered first.
CREATE INDEX notifications_address_alert ON notifications (address, alert_id);
