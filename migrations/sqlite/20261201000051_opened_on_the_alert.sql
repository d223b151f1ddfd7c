-- "Opened" is implied by the alert row instead of a timeline row of its own:
-- who opened it, and its first summary when a later event changed it (NULL:
-- the summary is still the first). Alerts opened before this have their
-- "received" row and no opened_by.
ALTER TABLE alerts ADD COLUMN opened_by TEXT;
ALTER TABLE alerts ADD COLUMN opened_summary TEXT;
