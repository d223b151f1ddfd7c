-- Nothing to do on SQLite: one process owns the file, so its engine is woken
-- in memory. PostgreSQL's twin of this migration installs the NOTIFY
-- triggers that wake other replicas; the numbers stay in step on both.
SELECT 1;
