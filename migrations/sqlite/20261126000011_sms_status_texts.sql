-- Status texts ("ACKNOWLEDGED by alice") sent per number, so an alert storm
-- resolving at once cannot become a storm of texts. Pruned as it is used.
CREATE TABLE sms_status_texts (
    address TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX sms_status_texts_address ON sms_status_texts (address, at);
