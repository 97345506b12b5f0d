-- Where a listing is: latitude and longitude from its location, and how precisely they were found
-- (town, area, area_centroid, none: listing_search.core.places). NULL geo_precision: not placed yet.
-- SQL cannot read the gazetteer, so the rows of an older store are placed by the Python step that
-- runs after this file in the same transaction (SqlStore.fill_coordinates), with a change-log entry
-- each so replicas follow; the index below finds rows still to place without a table scan.
ALTER TABLE listings ADD COLUMN lat DOUBLE PRECISION;
ALTER TABLE listings ADD COLUMN lon DOUBLE PRECISION;
ALTER TABLE listings ADD COLUMN geo_precision TEXT;
CREATE INDEX listings_unplaced ON listings (key) WHERE geo_precision IS NULL;
