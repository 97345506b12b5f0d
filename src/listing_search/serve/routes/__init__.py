"""One router per resource: predict (original API + category), search, listings, images, health."""
