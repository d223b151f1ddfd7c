-- The engine's next_due is four "earliest of" reads, and each must be the
-- first entry of an index whatever the planner's statistics say: sqlx keeps
-- one plan per connection, made when the statement was first run, and on a
-- table that grew from empty since then a plan built on "no rows" stays.
-- auto_explain under benches/intake.rs --store postgres showed the leased
-- escalations read as a sequential scan of every escalation (3.5 ms a call
-- at 27,000 open alerts, ~40% of the server's statement time), because its
-- only index was on lease_until alone. Each part now has a partial index on
-- exactly the value it orders by, so `ORDER BY … LIMIT 1` reads one entry.
CREATE INDEX escalations_leased_due ON escalations (GREATEST(due_at, lease_until))
    WHERE state = 'active' AND lease_until IS NOT NULL;
CREATE INDEX notifications_next_due ON notifications (due_at)
    WHERE status IN ('pending', 'retry') AND lease_until IS NULL;
CREATE INDEX notifications_leased_due ON notifications (GREATEST(due_at, lease_until))
    WHERE status IN ('pending', 'retry') AND lease_until IS NOT NULL;
