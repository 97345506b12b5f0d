"""Near-duplicate groups: the links by hand, and groups kept one listing at a time against the
connected components of every pair computed from scratch."""

from __future__ import annotations

import random

import numpy as np

from listing_search.index.catalog import CatalogView
from listing_search.index.duplicates import Ad, DuplicateGroups, photo_linked, title_linked
from listing_search.store.models import Listing

SOFA = Ad.of("DINO JUMBO CORD SOFA 3+2", "Beckton, London", 449.0)


def test_a_shared_photo_links_a_copy_but_not_another_product_of_the_trader():
    copy_elsewhere = Ad.of("Dino jumbo cord sofa, fast delivery", "Stenhousemuir, Falkirk", 449.0)
    repost_dearer = Ad.of("Dino Jumbo Cord Sofa", "Beckton, London", 499.0)
    moved_and_dearer = Ad.of("Dino jumbo cord sofa", "Leeds", 499.0)
    table_same_photo = Ad.of("Stainless steel table 2m", "Beckton, London", 449.0)
    assert photo_linked(SOFA, copy_elsewhere) and photo_linked(SOFA, repost_dearer)
    assert not photo_linked(SOFA, moved_and_dearer)  # another town and another price
    assert not photo_linked(SOFA, table_same_photo)  # the showroom photo under another product


def test_a_title_links_only_from_one_place_at_one_price():
    assert title_linked(SOFA, Ad.of("🌈🌈 Dino Jumbo Cord Sofa 3+2 🌈🌈", "Beckton, London", 449.0))
    assert not title_linked(SOFA, Ad.of("Dino jumbo cord sofa 3+2", "Bow, London", 449.0))
    assert not title_linked(Ad.of("Washer dryer", "Liverpool", 150.0), Ad.of("Washer dryer", "Liverpool", 125.0))
    assert not title_linked(Ad.of("Apple iPhone 11 Red 64GB", "Bristol", 280.0),
                            Ad.of("Apple iPhone 11 Black 64GB Unlocked", "Bristol", 280.0))


def test_a_removal_splits_the_group_it_held_together():
    groups = DuplicateGroups()
    for key in (1, 2, 3):
        groups.add(key, Ad.of("Dino jumbo cord sofa", f"Town {key}", 449.0))
    groups.link_photos(2, [1, 3])  # 1 - 2 - 3, by 2's photo
    assert groups.members(groups.group_id(1)) == (1, 2, 3)
    groups.remove(2)
    assert groups.group_id(1) == groups.group_id(3) == -1 and len(groups) == 0
    labels = groups.group_of(np.array([1, 3]))
    assert labels[0] != labels[1]


def test_groups_kept_one_listing_at_a_time_are_the_components_of_every_link():
    """Random adds, updates and removals against a from-scratch union of every pair's links."""
    rng = random.Random(0)
    places, prices = ["Leeds", "York"], [10.0, 20.0]
    words = ["sofa", "dino", "cord", "jumbo", "table"]
    groups, ads, photo = DuplicateGroups(), {}, {}
    for _ in range(400):
        key = rng.randrange(40)
        if key in ads and rng.random() < 0.3:
            groups.remove(key)
            del ads[key], photo[key]
            continue
        ads[key] = Ad.of(" ".join(rng.sample(words, 3)), rng.choice(places), rng.choice(prices))
        photo[key] = rng.randrange(6)  # listings with one photo id share a near-identical photo
        groups.add(key, ads[key])
        groups.link_photos(key, [k for k in ads if k != key and photo[k] == photo[key]])
    expected = _components(ads, photo)
    got = {frozenset(g) for g in groups.groups()}
    assert got == expected and expected  # some groups formed, and the same ones


def _components(ads: dict[int, Ad], photo: dict[int, int]) -> set[frozenset[int]]:
    parent = {k: k for k in ads}

    def find(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    keys = sorted(ads)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if title_linked(ads[a], ads[b]) or (photo[a] == photo[b] and photo_linked(ads[a], ads[b])):
                parent[find(a)] = find(b)
    out: dict[int, set[int]] = {}
    for k in keys:
        out.setdefault(find(k), set()).add(k)
    return {frozenset(g) for g in out.values() if len(g) > 1}


def rec(key: int, title: str, location: str, price: float) -> Listing:
    return Listing(key, f"id-{key}", title, "", price, location, "Home & Garden / Sofas", "Home & Garden", 0,
                   [f"p{key}"], None, [key])


def test_the_catalogue_view_groups_copies_and_keeps_them_through_compaction():
    view = CatalogView()
    view.upsert([rec(1, title="Dino jumbo cord sofa", location="Leeds", price=449.0),
                 rec(2, title="DINO JUMBO CORD SOFA!", location="Leeds", price=449.0),
                 rec(3, title="Dino jumbo cord sofa", location="York", price=449.0)])
    view.duplicates.link_photos(3, [1])  # as index.live does from the photo index
    labels = view.group_of(view.rows_of_keys(np.array([1, 2, 3])))
    assert len(set(labels.tolist())) == 1
    view.upsert([rec(2, title="Oak wardrobe", location="Leeds", price=449.0)])  # an update: no longer a copy
    compact = view.compacted()
    labels = compact.group_of(compact.rows_of_keys(np.array([1, 2, 3])))
    assert labels[0] == labels[2] != labels[1]
