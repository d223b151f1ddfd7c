-- Intake inserts its new alerts and their escalations as one statement per
-- batch, and the per-row triggers on those inserts (the open-alert counter
-- and the engine's wake-up) ran a PL/pgSQL call per alert: most of the
-- server's time per new alert. The inserts' triggers now run once per
-- statement over its transition table. Status changes and deletes, which
-- come one alert at a time, keep the row trigger.

DROP TRIGGER alerts_count_open ON alerts;

-- The row trigger no longer fires on INSERT (alerts_count_opened below does).
CREATE OR REPLACE FUNCTION rouse_count_open_alerts() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status <> 'resolved' AND NEW.status = 'resolved' THEN
        UPDATE service_open_alerts SET open_count = open_count - 1 WHERE service_id = NEW.service_id;
    ELSIF TG_OP = 'DELETE' AND OLD.status <> 'resolved' THEN
        UPDATE service_open_alerts SET open_count = open_count - 1 WHERE service_id = OLD.service_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER alerts_count_open
AFTER UPDATE OF status OR DELETE ON alerts
FOR EACH ROW EXECUTE FUNCTION rouse_count_open_alerts();

CREATE FUNCTION rouse_count_opened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Services in key order, as every writer locks their counter rows.
    INSERT INTO service_open_alerts (service_id, open_count)
    SELECT service_id, COUNT(*) FROM opened WHERE status <> 'resolved'
     GROUP BY service_id ORDER BY service_id
    ON CONFLICT (service_id)
    DO UPDATE SET open_count = service_open_alerts.open_count + EXCLUDED.open_count;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_count_opened
AFTER INSERT ON alerts REFERENCING NEW TABLE AS opened
FOR EACH STATEMENT EXECUTE FUNCTION rouse_count_opened();

CREATE FUNCTION rouse_wake_escalations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted WHERE state = 'active' AND lease_owner IS NULL) THEN
        PERFORM pg_notify('rouse_wake', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION rouse_wake_notifications() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted
                WHERE status IN ('pending', 'retry') AND lease_owner IS NULL) THEN
        PERFORM pg_notify('rouse_wake', '');
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER escalations_wake ON escalations;
CREATE TRIGGER escalations_wake AFTER UPDATE ON escalations
    FOR EACH ROW WHEN (NEW.state = 'active' AND NEW.lease_owner IS NULL)
    EXECUTE FUNCTION rouse_wake();
CREATE TRIGGER escalations_wake_inserted AFTER INSERT ON escalations
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION rouse_wake_escalations();

DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake AFTER UPDATE ON notifications
    FOR EACH ROW WHEN (NEW.status IN ('pending', 'retry') AND NEW.lease_owner IS NULL)
    EXECUTE FUNCTION rouse_wake();
CREATE TRIGGER notifications_wake_inserted AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION rouse_wake_notifications();
