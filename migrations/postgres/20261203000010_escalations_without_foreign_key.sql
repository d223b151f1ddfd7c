-- Intake inserts an escalation with every new alert, in the same statement
-- as the alert itself, and the foreign key checked each one with a row
-- trigger that looked up and key-share locked its alert: 0.145 ms of a
-- 25-alert insert's 0.83 ms server time (EXPLAIN ANALYZE), and without it
-- two clients inserting such batches did 19-28% more of them (pgbench -c2;
-- README, "The intake write path"). Every escalation is written by Rouse
-- for an alert of the same transaction or one it has just read, and Rouse
-- never deletes an alert, so the check never found anything. What the key
-- also did is kept: an alert deleted by hand takes its escalation with it,
-- by one statement trigger over the deleted rows instead of one per row.
ALTER TABLE escalations DROP CONSTRAINT escalations_alert_id_fkey;

CREATE FUNCTION rouse_delete_escalations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM escalations e USING deleted d WHERE e.alert_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_delete_escalations AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION rouse_delete_escalations();
