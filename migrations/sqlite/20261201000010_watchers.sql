-- Watchers' durable state: when each runs next, who holds its current run,
-- and what it concluded last (consecutive failures, which findings have an
-- alert open), so a restart neither re-pages nor forgets a failing streak.
CREATE TABLE watchers (
    id          TEXT    PRIMARY KEY,
    -- What the watcher was configured as; a change makes it due at once.
    fingerprint TEXT    NOT NULL,
    next_due_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    -- Fencing token: bumped by every claim, checked by the run's write.
    token       INTEGER NOT NULL DEFAULT 0,
    state       TEXT,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX watchers_due ON watchers (next_due_at);
