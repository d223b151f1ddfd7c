-- The recipient's address as its own indexed column: rate caps and SMS
-- replies look notifications up by phone number, which must not scan.
ALTER TABLE notifications ADD COLUMN address TEXT NOT NULL DEFAULT '';
UPDATE notifications SET address = COALESCE(recipient ->> 'address', '');
CREATE INDEX notifications_address ON notifications (address, updated_at);
