-- Short per-number reply codes ("Reply 4a to ack") and SMS opt-outs (STOP).
CREATE TABLE sms_codes (
    address     TEXT        NOT NULL,
    code        INTEGER     NOT NULL,
    alert_id    BIGINT      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    assigned_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (address, code)
);
CREATE UNIQUE INDEX sms_codes_alert ON sms_codes (address, alert_id);

CREATE TABLE sms_opt_outs (
    address      TEXT        PRIMARY KEY,
    opted_out_at TIMESTAMPTZ NOT NULL
);
