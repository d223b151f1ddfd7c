-- The engine asks for the earliest unleased active escalation after every
-- wake-up, and on PostgreSQL every commit that opens an alert wakes it
-- (NOTIFY). With (state, due_at) the planner, until ANALYZE had seen the
-- table grow, read every active escalation and sorted them: 3.5 ms a call
-- with 28,000 open alerts (pg_stat_statements, benches/intake.rs --store
-- postgres). This index answers it with its first entry whatever the
-- statistics say.
CREATE INDEX escalations_next_due ON escalations (due_at)
    WHERE state = 'active' AND lease_until IS NULL;
