-- Dataset listings deleted through the API: a later batch load must not bring them back.
CREATE TABLE deleted_listings (
    listing_id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL
);
