-- When a listing was posted: `newest` sorts by it. Dataset loads write the earliest create_time of
-- the listing's photos; API writes the time of the add. Rows of older stores take the time of their
-- first change-log entry (the add or the load that brought them); the next dataset load replaces a
-- dataset listing's with its photos' create_time.
ALTER TABLE listings ADD COLUMN posted_at REAL;
UPDATE listings SET posted_at = (SELECT MIN(c.at) FROM changes c WHERE c.listing_key = listings.key) WHERE posted_at IS NULL;
