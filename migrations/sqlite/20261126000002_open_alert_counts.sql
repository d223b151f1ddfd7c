-- Open alerts per service, kept by triggers so storm control reads one row
-- instead of counting every open alert on each commit.
CREATE TABLE service_open_alerts (
    service_id TEXT    PRIMARY KEY,
    open_count INTEGER NOT NULL
);

INSERT INTO service_open_alerts (service_id, open_count)
SELECT service_id, COUNT(*) FROM alerts WHERE status <> 'resolved' GROUP BY service_id;

CREATE TRIGGER alerts_count_insert AFTER INSERT ON alerts WHEN NEW.status <> 'resolved'
BEGIN
    INSERT INTO service_open_alerts (service_id, open_count) VALUES (NEW.service_id, 1)
    ON CONFLICT (service_id) DO UPDATE SET open_count = open_count + 1;
END;

CREATE TRIGGER alerts_count_resolve AFTER UPDATE OF status ON alerts
WHEN OLD.status <> 'resolved' AND NEW.status = 'resolved'
BEGIN
    UPDATE service_open_alerts SET open_count = open_count - 1 WHERE service_id = NEW.service_id;
END;

CREATE TRIGGER alerts_count_delete AFTER DELETE ON alerts WHEN OLD.status <> 'resolved'
BEGIN
    UPDATE service_open_alerts SET open_count = open_count - 1 WHERE service_id = OLD.service_id;
END;
