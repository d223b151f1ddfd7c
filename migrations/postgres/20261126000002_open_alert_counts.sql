-- Open alerts per service, kept by a trigger so storm control reads one row
-- instead of counting every open alert on each commit.
CREATE TABLE service_open_alerts (
    service_id TEXT   PRIMARY KEY,
    open_count BIGINT NOT NULL
);

INSERT INTO service_open_alerts (service_id, open_count)
SELECT service_id, COUNT(*) FROM alerts WHERE status <> 'resolved' GROUP BY service_id;

CREATE FUNCTION rouse_count_open_alerts() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.status <> 'resolved' THEN
        INSERT INTO service_open_alerts (service_id, open_count) VALUES (NEW.service_id, 1)
        ON CONFLICT (service_id) DO UPDATE SET open_count = service_open_alerts.open_count + 1;
    ELSIF TG_OP = 'UPDATE' AND OLD.status <> 'resolved' AND NEW.status = 'resolved' THEN
        UPDATE service_open_alerts SET open_count = open_count - 1 WHERE service_id = NEW.service_id;
    ELSIF TG_OP = 'DELETE' AND OLD.status <> 'resolved' THEN
        UPDATE service_open_alerts SET open_count = open_count - 1 WHERE service_id = OLD.service_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER alerts_count_open
AFTER INSERT OR UPDATE OF status OR DELETE ON alerts
FOR EACH ROW EXECUTE FUNCTION rouse_count_open_alerts();
