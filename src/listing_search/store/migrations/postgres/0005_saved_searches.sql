-- Saved searches and their alerts (issue 33). A buyer is known only by the SHA-256 of the random
-- token their page made (`owner`); the token itself is never stored. `created_seq` is the change-log
-- head when the search was saved: listings first logged at or before it never alert for it.
CREATE TABLE saved_searches (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION NOT NULL,
    created_seq BIGINT NOT NULL,
    query TEXT NOT NULL,
    text_vector BYTEA,
    image_vector BYTEA
);
CREATE INDEX saved_searches_owner ON saved_searches(owner, id);
CREATE INDEX saved_searches_used ON saved_searches(used_at);
-- One alert per (saved search, listing); ids grow in commit order (written under the store's write
-- lock), so `after` an id never skips a late commit.
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    search_id BIGINT NOT NULL REFERENCES saved_searches(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    listing_key BIGINT NOT NULL,
    listing_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    UNIQUE (search_id, listing_key)
);
CREATE INDEX alerts_owner ON alerts(owner, id);
CREATE INDEX alerts_at ON alerts(at);
-- The alert matcher: which replica holds the lease (and its term, raised by every takeover) and the
-- change-log sequence up to which alerts are written, advanced in the transaction that writes them.
CREATE TABLE matcher (
    name TEXT PRIMARY KEY,
    done_seq BIGINT NOT NULL,
    holder TEXT,
    term INTEGER NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
-- Whether an upsert is a listing's first entry (an add) or a later one, without a scan.
CREATE INDEX changes_listing ON changes(listing_key, seq);
