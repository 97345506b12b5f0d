-- Saved searches and their alerts (issue 33). A buyer is known only by the SHA-256 of the random
-- token their page made (`owner`); the token itself is never stored. `created_seq` is the change-log
-- head when the search was saved: listings first logged at or before it never alert for it.
CREATE TABLE saved_searches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    used_at REAL NOT NULL,
    created_seq INTEGER NOT NULL,
    query TEXT NOT NULL,
    text_vector BLOB,
    image_vector BLOB
);
CREATE INDEX saved_searches_owner ON saved_searches(owner, id);
CREATE INDEX saved_searches_used ON saved_searches(used_at);
-- One alert per (saved search, listing); ids grow in commit order (written under the store's write
-- lock), so `after` an id never skips a late commit.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    search_id INTEGER NOT NULL REFERENCES saved_searches(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    listing_key INTEGER NOT NULL,
    listing_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    UNIQUE (search_id, listing_key)
);
CREATE INDEX alerts_owner ON alerts(owner, id);
CREATE INDEX alerts_at ON alerts(at);
-- The alert matcher: which replica holds the lease (and its term, raised by every takeover) and the
-- change-log sequence up to which alerts are written, advanced in the transaction that writes them.
CREATE TABLE matcher (
    name TEXT PRIMARY KEY,
    done_seq INTEGER NOT NULL,
    holder TEXT,
    term INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
-- Whether an upsert is a listing's first entry (an add) or a later one, without a scan.
CREATE INDEX changes_listing ON changes(listing_key, seq);
