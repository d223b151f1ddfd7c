-- Follow-ups tell a chat room or mail thread that an alert was acknowledged
-- or resolved; `follows` is the provider id of the message they update.
ALTER TABLE notifications ADD COLUMN follow_up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN follows TEXT;
