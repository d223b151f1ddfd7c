-- Which keys have an open alert is known to Rouse's one writer, in memory
-- (src/store/sqlite/open_keys.rs): one process serves a SQLite database and
-- only that writer writes alerts. The partial unique index that answered it
-- cost each new alert a lookup and an insert at a random leaf of a text
-- index, about a fifth of its instructions and a dirty page in the log
-- (README, "The intake write path"). PostgreSQL, which several replicas
-- write, keeps its index.
DROP INDEX alerts_open_key;
