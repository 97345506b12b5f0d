-- The catalogue of record. Keys and vector ids are AUTOINCREMENT: never reused, even after deletes.
CREATE TABLE listings (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    price REAL,
    location TEXT NOT NULL DEFAULT '',
    category_path TEXT NOT NULL DEFAULT '',
    root_category TEXT NOT NULL DEFAULT '',
    label INTEGER,
    origin TEXT NOT NULL DEFAULT 'dataset',
    content_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX listings_root ON listings(root_category);
CREATE TABLE photos (
    vector_id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL UNIQUE,
    listing_key INTEGER NOT NULL REFERENCES listings(key) ON DELETE CASCADE,
    blob_key TEXT NOT NULL
);
CREATE INDEX photos_listing ON photos(listing_key);
-- Vectors are kept per encoder version: a re-embed adds the new version beside the old, and each
-- replica reads only the version its encoder makes, so no index ever mixes versions.
CREATE TABLE photo_vectors (
    vector_id INTEGER NOT NULL REFERENCES photos(vector_id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (vector_id, model)
);
CREATE INDEX photo_vectors_model ON photo_vectors(model, vector_id);
CREATE TABLE text_vectors (
    listing_key INTEGER NOT NULL REFERENCES listings(key) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (listing_key, model)
);
CREATE INDEX text_vectors_model ON text_vectors(model, listing_key);
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL,
    listing_key INTEGER NOT NULL,
    listing_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
