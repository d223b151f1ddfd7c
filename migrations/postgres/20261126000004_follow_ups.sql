-- Follow-ups tell a chat room or mail thread that an alert was acknowledged
-- or resolved; `follows` is the provider id of the message they update.
ALTER TABLE notifications ADD COLUMN follow_up BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE notifications ADD COLUMN follows TEXT;
