-- New alerts are counted by the intake writer, one upsert per service and
-- batch (src/store/sqlite/direct.rs), instead of by a trigger per row. A
-- trigger makes every single-row insert into `alerts` a statement that may
-- have to undo part of itself, so SQLite copied each page it touched into a
-- statement journal first: that copy was a third of a new alert's cost.
-- Resolving and deleting still count down through their triggers.
DROP TRIGGER alerts_count_insert;
