-- Calendar feed tokens (GET /feeds/{token}.ics). Only a SHA-256 of each
-- token is kept: a copy of the database does not give away the feeds.
CREATE TABLE feeds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    label       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
