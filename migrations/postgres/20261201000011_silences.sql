-- Silences made at run time (POST /v1/silences): every replica reads them
-- from here, so a silence applies across replicas at once.
CREATE TABLE silences (
    id         BIGSERIAL   PRIMARY KEY,
    matchers   TEXT        NOT NULL,
    starts_at  TIMESTAMPTZ NOT NULL,
    ends_at    TIMESTAMPTZ NOT NULL,
    comment    TEXT        NOT NULL,
    created_by TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);
