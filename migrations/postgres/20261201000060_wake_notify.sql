-- Wake the other replicas' engines when work becomes due: any commit that
-- schedules an escalation step or a notification (an opened alert, a step
-- fired, an acknowledgement's follow-ups, a provider callback pulling the
-- next step forward) sends NOTIFY rouse_wake. The notification leaves with
-- the commit (never before it, never for a rollback), and PostgreSQL folds
-- identical payloads of one transaction into one, so a batch of a thousand
-- alerts wakes each listener once. Claims (which set lease_owner) do not
-- notify: another replica cannot take leased work anyway.
CREATE FUNCTION rouse_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rouse_wake', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER escalations_wake AFTER INSERT OR UPDATE ON escalations
    FOR EACH ROW WHEN (NEW.state = 'active' AND NEW.lease_owner IS NULL)
    EXECUTE FUNCTION rouse_wake();

CREATE TRIGGER notifications_wake AFTER INSERT OR UPDATE ON notifications
    FOR EACH ROW WHEN (NEW.status IN ('pending', 'retry') AND NEW.lease_owner IS NULL)
    EXECUTE FUNCTION rouse_wake();
