"""Hand-made catalogues: listings of three categories whose text and photo vectors cluster by category."""

from __future__ import annotations

import numpy as np

from listing_search.fit.vectors import ListingVectors

from listing_search.core.maths import unit_rows

CATEGORIES = ["Home & Garden", "Computers & Software", "Sports, Leisure & Travel"]


def make_vectors(n: int = 30, photos_per_listing: int = 2, dim_text: int = 8, dim_image: int = 6,
                 seed: int = 0, val_every: int = 5) -> ListingVectors:
    """Listing i has category i % 3, path 'root / Sub (i // 3) % 2', a title naming its category."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    t_centres, i_centres = rng.normal(size=(3, dim_text)), rng.normal(size=(3, dim_image))
    text = unit_rows(t_centres[labels] + 0.4 * rng.normal(size=(n, dim_text)))
    photo_row = np.repeat(np.arange(n), photos_per_listing)
    photos = unit_rows(i_centres[labels[photo_row]] + 0.4 * rng.normal(size=(len(photo_row), dim_image)))
    words = ["sofa lamp", "laptop keyboard", "bike tent"]
    return ListingVectors(
        ids=np.array([f"l{i:03d}" for i in range(n)], dtype=object), labels=labels,
        paths=np.array([f"{CATEGORIES[c]} / Sub {(i // 3) % 2}" for i, c in enumerate(labels)], dtype=object),
        titles=[f"{words[c]} {i}" for i, c in enumerate(labels)], prices=rng.uniform(5, 500, n),
        text=text, photos=photos, photo_row=photo_row, categories=CATEGORIES,
        splits=np.array(["val" if i % val_every == 0 else "train" for i in range(n)], dtype=object),
        texts=[f"{words[c]} {i}. A {words[c].split()[0]} for sale" for i, c in enumerate(labels)],
    )
