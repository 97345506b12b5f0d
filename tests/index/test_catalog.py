"""The in-memory catalogue view against brute force over the same listings: filters, orders, lookups,
and rows that never change under a reader."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from listing_search.core.query import NEWEST, PRICE_ASC, PRICE_DESC, Filters
from listing_search.index.catalog import NONE, CatalogView
from listing_search.store.models import Listing

ROOTS = ["Home & Garden", "Computers", "Sports"]
PLACES = ["Leeds, West Yorkshire", "Bristol", "100% Bristol", "Delph, Manchester", "Newport_Gwent"]


def listings(n: int, seed: int = 0) -> list[Listing]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(1, n + 1):
        root = ROOTS[int(rng.integers(len(ROOTS)))]
        price = None if rng.random() < 0.1 else float(rng.integers(0, 50))
        posted = None if rng.random() < 0.1 else float(rng.integers(0, 3)) * 86400
        out.append(Listing(k, f"id-{k}", f"title {k}", f"description {k}", price, PLACES[k % len(PLACES)],
                           f"{root} / sub {k % 3}", root, ROOTS.index(root), [f"p{k}a", f"p{k}b"], posted,
                           [2 * k, 2 * k + 1]))
    return out


def brute(items: list[Listing], f: Filters) -> set[int]:
    return {x.key for x in items
            if (f.category is None or x.root_category == f.category)
            and (f.min_price is None or (x.price is not None and x.price >= f.min_price))
            and (f.max_price is None or (x.price is not None and x.price <= f.max_price))
            and (f.location is None or f.location.casefold() in x.location.casefold())}


@pytest.mark.parametrize("filters", [Filters(), Filters(category="Computers"), Filters(min_price=10, max_price=20),
                                     Filters(location="bristol"), Filters(location="100%"), Filters(location="_"),
                                     Filters(category="Sports", max_price=5), Filters(category="Nowhere")])
def test_filters_equal_brute_force(filters: Filters) -> None:
    items = listings(300)
    view = CatalogView.build([items[:120], items[120:]])
    got = set(view.key[np.flatnonzero(view.allowed(filters))].tolist())
    assert got == brute(items, filters)


@pytest.mark.parametrize("sort", [NEWEST, PRICE_ASC, PRICE_DESC])
def test_orders_are_total_and_put_missing_values_last(sort: str) -> None:
    items = listings(200, seed=1)
    view = CatalogView.build([items])
    rows = view.live_rows()
    sk = view.sort_key(rows, sort)
    order = rows[np.lexsort((sk.secondary, np.where(np.isnan(sk.primary), np.inf, sk.primary)))]
    by_key = {x.key: x for x in items}
    got = [by_key[int(k)] for k in view.key[order]]
    value = {NEWEST: lambda x: x.posted_at, PRICE_ASC: lambda x: x.price, PRICE_DESC: lambda x: x.price}[sort]
    present = [x for x in got if value(x) is not None]
    assert got[len(present):] == [x for x in got if value(x) is None]  # no price or date: last
    if sort == NEWEST:  # latest first, then the latest added
        assert present == sorted(present, key=lambda x: (-x.posted_at, -x.key))
    elif sort == PRICE_ASC:
        assert present == sorted(present, key=lambda x: (x.price, x.key))
    else:
        assert present == sorted(present, key=lambda x: (-x.price, x.key))


def test_an_update_appends_a_row_and_a_reader_keeps_the_old_one() -> None:
    items = listings(5)
    view = CatalogView.build([items])
    old_row = view.row_of_key(3)
    assert view.title[old_row] == "title 3" and view.row_of_id("id-3") == old_row
    changed = Listing(3, "id-3", "new title", "", 9.0, "Leeds", "Home & Garden", "Home & Garden", 0, ["q"], 5.0, [99])
    view.upsert([changed])
    new_row = view.row_of_key(3)
    assert new_row != old_row and view.title[old_row] == "title 3"  # a reader holding the old row sees it whole
    assert view.listing(new_row).title == "new title" and not view.alive[old_row]
    assert view.keys_of_vectors(np.array([6, 7, 99])).tolist() == [NONE, NONE, 3]  # old photos left with the row
    view.remove([3])
    assert view.row_of_key(3) == NONE and view.row_of_id("id-3") == NONE and len(view) == 4
    assert view.keys_of_vectors(np.array([99])).tolist() == [NONE]


def test_compaction_keeps_every_live_listing_and_nothing_else() -> None:
    items = listings(50)
    view = CatalogView.build([items])
    for rec in items[::2]:
        view.upsert([rec])  # rewritten: one retired row each
    view.remove([x.key for x in items[:10]])
    fresh = view.compacted()
    assert fresh.retired == 0 and len(fresh) == len(view) == 40
    for rec in items[10:]:
        a, b = view.listing(view.row_of_key(rec.key)), fresh.listing(fresh.row_of_key(rec.key))
        assert a == b
    assert fresh.keys_of_vectors(np.array([2 * items[20].key])).tolist() == [items[20].key]


def test_counts_by_coded_column() -> None:
    items = listings(100)
    view = CatalogView.build([items])
    counts = view.counts(view.live_rows(), "root")
    assert counts == {r: sum(x.root_category == r for x in items) for r in ROOTS if any(x.root_category == r for x in items)}


def placed(n: int, seed: int = 2) -> list[Listing]:
    """Listings with random coordinates and precisions, some not placed (``none``) or not yet (None)."""
    rng = np.random.default_rng(seed)
    out = []
    for x in listings(n, seed):
        precision = [None, "town", "area", "area_centroid", "none"][int(rng.integers(5))]
        if precision in (None, "none"):
            out.append(x)
            x.geo_precision = precision
            continue
        x.lat, x.lon, x.geo_precision = float(rng.uniform(50, 58)), float(rng.uniform(-6, 1.5)), precision
        out.append(x)
    return out


def test_coordinates_and_precision_read_back_as_written_across_growth_and_compaction() -> None:
    items = placed(3000)  # past the first capacity: the columns are copied when the arrays grow
    view = CatalogView.build([items[:1500], items[1500:]])
    for x in items:
        assert view.listing(view.row_of_key(x.key)) == x
    view.remove([x.key for x in items[:100]])
    fresh = view.compacted()
    for x in items[100:]:
        got = fresh.listing(fresh.row_of_key(x.key))
        assert (got.lat, got.lon, got.geo_precision) == (x.lat, x.lon, x.geo_precision)


def test_centroid_is_the_mean_of_the_live_listings_placed_by_town_at_those_locations() -> None:
    items = placed(400)
    view = CatalogView.build([items])
    view.remove([x.key for x in items[:40]])
    live = items[40:]
    wanted = {"Leeds, West Yorkshire", "Delph, Manchester"}
    codes = [view.locations.find(p) for p in wanted]
    towns = [x for x in live if x.location in wanted and x.geo_precision == "town"]
    assert towns, "the draw places some"
    lat, lon = view.centroid(codes, "town")
    assert lat == pytest.approx(np.mean([x.lat for x in towns])) and lon == pytest.approx(np.mean([x.lon for x in towns]))
    assert view.centroid([view.locations.find("Bristol")], "town") is not None
    assert view.centroid([], "town") is None


def test_flat_rows_keep_every_rows_photos_as_they_grow_and_old_readers_keep_theirs():
    from listing_search.index.catalog import FlatRows

    ints, names = FlatRows(ints=True), FlatRows(ints=False)
    early = None
    for r in range(3000):  # past the first arrays' room (1,024 rows, 2,048 values)
        count = r % 4  # listings without photos too
        ints.append(range(r * 10, r * 10 + count))
        names.append(f"img-{r}-{j}" for j in range(count))
        if r == 100:
            early = (ints._offsets, ints._values)
    assert len(ints) == len(names) == 3000
    for r in (0, 1, 3, 1023, 1024, 2047, 2999):
        assert ints[r] == tuple(range(r * 10, r * 10 + r % 4))
        assert names[r] == tuple(f"img-{r}-{j}" for j in range(r % 4))
    offsets, values = early  # a reader holding the arrays of row 100's time still reads rows 0..100
    assert tuple(values[offsets[99]:offsets[100]].tolist()) == ints[99]


def test_texts_give_back_each_description_compressed_or_not():
    from listing_search.index.catalog import Texts

    texts = Texts()
    items = ["", "short", "Sofa — 3 seater, très bon état 🛋️ " * 20, "x" * Texts.COMPRESS_FROM]
    for t in items:
        texts.append(t)
    assert [texts[i] for i in range(len(items))] == items
    assert isinstance(texts._items[2], bytes) and len(texts._items[2]) < len(items[2].encode())


def test_flat_rows_owners_gathers_the_rows_values_with_their_positions():
    from listing_search.index.catalog import FlatRows

    ints = FlatRows(ints=True)
    for r in range(50):
        ints.append(range(r * 10, r * 10 + r % 3))
    rows = np.array([7, 0, 3, 5, 5, 49])
    pos, values = ints.owners(rows)
    want = [(i, v) for i, r in enumerate(rows) for v in ints[int(r)]]
    assert list(zip(pos.tolist(), values.tolist())) == want
    assert [len(a) for a in ints.owners(np.array([0, 3]))] == [0, 0]


def test_a_category_filter_asked_before_a_new_path_appears_sees_that_path_after() -> None:
    """``paths_under`` keeps its answer per prefix: a path first seen later (an added listing) must join it."""
    items = listings(60)
    view = CatalogView.build([items])
    root = items[0].root_category
    before = set(view.key[np.flatnonzero(view.allowed(Filters(category=root)))].tolist())
    assert before == brute(items, Filters(category=root)) and view.knows_category(f"{root} / sub 0")
    assert not view.knows_category(f"{root} / brand new")
    new = replace(items[0], key=10_000, listing_id="id-new", category_path=f"{root} / Brand New")
    view.upsert([new])
    after = set(view.key[np.flatnonzero(view.allowed(Filters(category=root)))].tolist())
    assert after == before | {10_000}
    assert view.knows_category(f"{root} / brand new")
    assert set(view.key[np.flatnonzero(view.allowed(Filters(category=f"{root} / brand new")))].tolist()) == {10_000}
