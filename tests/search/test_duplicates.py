"""Copies of one ad are one result, and buying ads come last, through /v1/search: totals, pages, facets
and the change log all count results.

Added to the ranking tests' catalogue through the API: a teak bench listed four times (one photo in
Leeds and York, another photo under the same title from Leeds at the same price), a parasol under
the same photo (another product), and a buying ad."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from listing_search.core.near import Near
from listing_search.core.query import Filters, Page, Query
from listing_search.index.catalog import CatalogView
from listing_search.search.collapse import collapse
from listing_search.search.paging import cut_page
from listing_search.serve.app import create_app
from tests.factories import copy_artifacts
from tests.index.test_duplicates import rec
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings

BENCH = "Teak garden bench, seats three"
ADDED = {  # name: (title, location, price, photo)
    "leeds": (BENCH, "Leeds", 120.0, "img-010-0"),
    "york": (BENCH, "York", 120.0, "img-010-0"),  # same photo, same price: a copy in another town
    "cheaper": ("Teak garden bench seats three", "Leeds", 95.0, "img-010-0"),  # same photo, same place
    "titled": ("TEAK GARDEN BENCH - SEATS THREE", "Leeds", 120.0, "img-020-0"),  # same title, place and price
    "parasol": ("Garden parasol, green", "Leeds", 120.0, "img-010-0"),  # the photo under another product
    "wanted": ("WANTED garden bench, cash paid", "Bristol", 1.0, "img-012-0"),
}
COPIES = ("leeds", "york", "cheaper", "titled")
SORTS = ("relevance", "newest", "price_asc", "price_desc")


@pytest.fixture(scope="module")
def client(ranked_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    art = copy_artifacts(ranked_artifacts, tmp_path_factory.mktemp("dups") / "art")
    with TestClient(create_app(serve_settings(art))) as c:
        c.art, c.ids = art, {}
        for name, ad in ADDED.items():
            c.ids[name] = add(c, *ad)
        yield c


def add(client: TestClient, title: str, location: str, price: float, photo: str) -> str:
    r = client.post("/v1/listings", headers={"X-API-Key": API_KEY},
                    data={"title": title, "description": "solid, collection only", "category": "Home & Garden",
                          "price": str(price), "location": location},
                    files=[("photos", ("a.jpg", photo_bytes(client.art, photo), "image/jpeg"))])
    assert r.status_code == 201, r.text
    return r.json()["id"]


def search(client: TestClient, text: str = "garden bench", **form) -> dict:
    r = client.post("/v1/search", data={"text": text, "k": "50", **{k: str(v) for k, v in form.items()}})
    assert r.status_code == 200, r.text
    return r.json()


def copies_shown(body: dict, ids: set[str]) -> list[dict]:
    return [r for r in body["results"] if r["id"] in ids]


def test_copies_of_one_ad_are_one_result_naming_the_others(client: TestClient) -> None:
    body = search(client)
    copies = {client.ids[n] for n in COPIES}
    [shown] = copies_shown(body, copies)
    assert shown["duplicates"] == {"count": 3, "listing_ids": shown["duplicates"]["listing_ids"]}
    assert set(shown["duplicates"]["listing_ids"]) == copies - {shown["id"]}
    named = [r["id"] for r in body["results"]] + [i for r in body["results"] if r["duplicates"]
                                                 for i in r["duplicates"]["listing_ids"]]
    assert len(named) == len(set(named))  # every listing of M once: as a result or as a copy
    assert body["total"] == len(body["results"])
    everything = search(client, "garden")  # the parasol shares the photo and the place, not the product
    assert client.ids["parasol"] in [r["id"] for r in everything["results"]]
    assert all(client.ids["parasol"] not in (r["duplicates"] or {}).get("listing_ids", [])
               for r in everything["results"])


@pytest.mark.parametrize("sort, first", [("price_asc", "cheaper"), ("price_desc", "leeds")])
def test_the_representative_is_the_first_copy_in_the_asked_order(client: TestClient, sort: str, first: str) -> None:
    copies = {client.ids[n] for n in COPIES}
    [shown] = copies_shown(search(client, sort=sort), copies)
    assert shown["id"] == client.ids[first]  # cheapest first; dearest first, ties by the earliest added


def test_pages_totals_and_facets_count_results(client: TestClient) -> None:
    totals = set()
    for sort in SORTS:
        whole = search(client, sort=sort)
        totals.add(whole["total"])
        paged, cursor = [], None
        while True:
            form = {"text": "garden bench", "k": "3", "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = client.post("/v1/search", data=form).json()
            paged += [r["id"] for r in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == [r["id"] for r in whole["results"]], sort
        assert sum(f["count"] for f in whole["facets"]["category"]) == whole["total"]
        assert sum(f["count"] for f in whole["facets"]["buying"]) == whole["total"]
    assert len(totals) == 1


def test_buying_ads_come_after_sale_ads_and_can_be_left_out(client: TestClient) -> None:
    body = search(client)
    flags = [r["buying"] for r in body["results"]]
    wanted = client.ids["wanted"]
    assert [r["id"] for r in body["results"] if r["buying"]] == [wanted]
    assert flags == sorted(flags)  # every sale ad, then the buying ad
    assert body["facets"]["buying"] == [{"value": False, "count": body["total"] - 1}, {"value": True, "count": 1}]
    selling = search(client, buying="false")
    assert wanted not in [r["id"] for r in selling["results"]] and selling["total"] == body["total"] - 1
    assert selling["facets"]["buying"] == body["facets"]["buying"]  # counted under the other filters
    assert selling["filters"] == {"buying": False}
    only = search(client, buying="true")
    assert [r["id"] for r in only["results"]] == [wanted] and only["total"] == 1


def test_a_deleted_copy_regroups_the_rest_from_the_change_log(client: TestClient) -> None:
    wardrobe = "Mirrored oak wardrobe"
    hub = add(client, wardrobe, "York", 200.0, "img-015-0")
    ids = {add(client, wardrobe, "Hull", 200.0, "img-015-0"),  # linked to the hub by photo and price
           add(client, wardrobe, "York", 180.0, "img-015-0")}  # by photo and place; not to the Hull one
    before = copies_shown(search(client, "oak wardrobe"), ids | {hub})
    assert len(before) == 1 and before[0]["duplicates"]["count"] == 2
    assert client.delete(f"/v1/listings/{hub}", headers={"X-API-Key": API_KEY}).status_code == 200
    after = copies_shown(search(client, "oak wardrobe"), ids)
    assert {r["id"] for r in after} == ids and all(r["duplicates"] is None for r in after)


def test_a_relevance_cursor_does_not_show_a_group_again_under_a_new_first_copy() -> None:
    """Between two pages the ranking moved: a copy of the ad shown on page 1 now leads its group. Page 2
    goes on with the next ad, not with the same ad again (the cursor remembers groups, not listings)."""
    view = CatalogView()
    view.upsert([rec(1, "Teak garden bench", "Leeds", 120.0), rec(2, "TEAK GARDEN BENCH!", "Leeds", 120.0),
                 rec(3, "Oak wardrobe", "York", 200.0), rec(4, "Pine bed", "Hull", 50.0)])
    first = collapse(view, view.rows_of_keys(np.array([1, 2, 3, 4]))).rows
    page1 = cut_page(view, first, first, Query(text="bench", page=Page(1)), "relevance")
    assert view.key[page1.rows].tolist() == [1] and page1.next_cursor
    moved = collapse(view, view.rows_of_keys(np.array([2, 1, 3, 4]))).rows  # copy 2 now ranks first
    page2 = cut_page(view, moved, moved, Query(text="bench", page=Page(1, cursor=page1.next_cursor)), "relevance")
    assert view.key[page2.rows].tolist() == [3]


@pytest.mark.parametrize("sort", ("distance", "price_asc"))
def test_a_keyset_cursor_does_not_show_a_group_again_when_its_shown_copy_goes(sort: str) -> None:
    """Page 1 showed an ad's nearest (cheapest) copy; it is deleted before page 2. The other copy, farther
    (dearer), now leads the group past the keyset: page 2 goes on with the next ads, not that one again."""
    near = Near(53.80, -1.55, 100.0)
    view = CatalogView()
    placed = [(1, "Teak garden bench", 100.0, 53.81), (2, "TEAK GARDEN BENCH!", 100.0, 54.05),
              (3, "Oak wardrobe", 200.0, 53.90), (4, "Pine bed", 300.0, 54.00)]
    view.upsert([replace(rec(k, title, "Leeds", price), lat=lat, lon=-1.55) for k, title, price, lat in placed])
    view.duplicates.link_photos(2, [1])
    view.duplicates.link_photos(1, [2])
    query = Query(filters=Filters(near=near), sort=sort, page=Page(1))
    every = view.rows_of_keys(np.array([1, 2, 3, 4]))
    results = collapse(view, every, sort, near).rows
    page1 = cut_page(view, None, results, query, sort)
    assert view.key[page1.rows].tolist() == [1] and page1.next_cursor
    view.remove([1])
    rest = collapse(view, view.rows_of_keys(np.array([2, 3, 4])), sort, near).rows
    page2 = cut_page(view, None, rest, replace(query, page=Page(10, cursor=page1.next_cursor)), sort)
    assert view.key[page2.rows].tolist() == [3, 4]


def test_near_a_place_copies_are_one_result_led_by_the_nearest_and_counted_once(client: TestClient) -> None:
    """Distance sort, its cursor, and the distance facet count results as total does."""
    copies = {client.ids[n] for n in COPIES}
    near = {"near": "Leeds", "within_km": "60"}
    by_distance = search(client, sort="distance", **near)
    [shown] = copies_shown(by_distance, copies)
    assert shown["id"] != client.ids["york"] and shown["duplicates"]["count"] == 3  # a Leeds copy leads
    km = [r["distance_km"] for r in by_distance["results"]]
    assert km == sorted(km)
    assert by_distance["total"] == len(by_distance["results"]) == search(client, **near)["total"]
    widest = by_distance["facets"]["distance"][-1]
    assert widest["max_miles"] == 100 and widest["count"] >= by_distance["total"]
    assert sum(f["count"] for f in by_distance["facets"]["buying"]) == by_distance["total"]
    paged, cursor = [], None
    while True:
        form = {"text": "garden bench", "k": "2", "sort": "distance", **near, **({"cursor": cursor} if cursor else {})}
        page = client.post("/v1/search", data=form).json()
        paged += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [r["id"] for r in by_distance["results"]]
    browse = client.post("/v1/search", data={"near": "Leeds", "within_km": "60", "k": "50"}).json()
    assert browse["total"] == len(browse["results"]) or browse["next_cursor"], browse
    assert sum(1 for r in browse["results"] if r["id"] in copies) == 1  # browsing near Leeds: one result


def test_the_buying_filter_browses_alone_and_refuses_a_value_it_does_not_know(client: TestClient) -> None:
    only = client.post("/v1/search", data={"buying": "true", "k": "50"}).json()  # filters alone browse
    assert client.ids["wanted"] in [r["id"] for r in only["results"]]
    assert all(r["buying"] for r in only["results"]) and only["total"] == len(only["results"])
    selling = client.post("/v1/search", data={"buying": "false", "k": "5"}).json()
    assert selling["total"] == sum(f["count"] for f in selling["facets"]["category"]) > only["total"]
    assert {f["value"]: f["count"] for f in selling["facets"]["buying"]} == {False: selling["total"],
                                                                             True: only["total"]}
    for bad in ("maybe", "2", "wanted"):
        r = client.post("/v1/search", data={"text": "garden bench", "buying": bad})
        assert r.status_code == 422 and "buying" in r.text, (bad, r.text)


def test_title_links_found_through_the_rarest_terms_equal_comparing_every_pair() -> None:
    """A new listing is compared only with the listings of its place and price holding one of its rarest
    terms; on crowded buckets of random titles the groups equal those of comparing every pair."""
    import random

    from listing_search.index.duplicates import Ad, DuplicateGroups, title_linked

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(12)]
    ads = {}
    for key in range(600):
        base = rng.sample(vocab, rng.randint(1, 6))
        if ads and rng.random() < 0.4:  # a copy, maybe with a word dropped or added
            base = sorted(ads[rng.randrange(len(ads))].terms)
            if len(base) > 4 and rng.random() < 0.5:
                base = base[1:]
        ads[key] = Ad(tuple(sorted(set(base))), rng.choice(["Leeds", "York"]), rng.choice([5.0, 10.0]))
    groups = DuplicateGroups()
    for key, ad in ads.items():
        groups.add(key, ad)
    for key in range(0, 600, 7):  # removals regroup too
        groups.remove(key)
        del ads[key]
    parent = {k: k for k in ads}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    keys = sorted(ads)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if title_linked(ads[a], ads[b]):
                parent[find(a)] = find(b)
    expected = {}
    for k in keys:
        expected.setdefault(find(k), set()).add(k)
    want = {frozenset(g) for g in expected.values() if len(g) > 1}
    got = {}
    for k in keys:
        gid = groups.group_id(k)
        if gid != -1:
            got.setdefault(gid, set()).add(k)
    assert {frozenset(g) for g in got.values()} == want and len(want) > 20
