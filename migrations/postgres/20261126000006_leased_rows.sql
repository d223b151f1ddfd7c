-- Rows under a lease, indexed apart: the engine asks after every round when
-- the next work is due, and a claimed row counts from its lease's end. With
-- this index that question walks only the few leased rows instead of every
-- open alert's escalation.
CREATE INDEX escalations_leased ON escalations (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX notifications_leased ON notifications (lease_until) WHERE lease_until IS NOT NULL;
