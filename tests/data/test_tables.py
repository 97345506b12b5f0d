from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from listing_search.data.tables import (
    CategoryCodec,
    Dropped,
    clean_products,
    clean_title,
    parse_price,
    read_csv_strict,
    split_by_listing,
)
from listing_search.schema import DataFormatError

COLS = ("id", "product_name", "category", "product_description", "price", "location")


def test_bare_carriage_returns_do_not_split_rows(tiny_dataset: Path) -> None:
    naive = pd.read_csv(tiny_dataset / "Products.csv")
    strict = read_csv_strict(tiny_dataset / "Products.csv", "Products.csv", COLS)
    assert len(naive) != 12, "the fixture must reproduce the trap"
    assert len(strict) == 12
    assert strict["id"].is_unique
    assert "\r" in strict["product_description"].iloc[0]


def test_crlf_images_table_is_stripped(tiny_dataset: Path) -> None:
    images = read_csv_strict(tiny_dataset / "Images.csv", "Images.csv", ("id", "product_id"))
    assert not images["create_time"].str.contains("\r").any()
    assert len(images) == 24


def test_duplicate_id_names_the_row(tmp_path: Path) -> None:
    csv = tmp_path / "P.csv"
    csv.write_text(",id,x\n0,a,1\n1,b,2\n2,a,3\n")
    with pytest.raises(DataFormatError, match=r"row 2: duplicate id 'a'"):
        read_csv_strict(csv, "P.csv", ("id",))


def test_missing_column_is_named(tmp_path: Path) -> None:
    csv = tmp_path / "P.csv"
    csv.write_text(",id,x\n0,a,1\n")
    with pytest.raises(DataFormatError, match="missing columns \\['price'\\]"):
        read_csv_strict(csv, "P.csv", ("id", "price"))


def test_split_record_is_detected(tmp_path: Path) -> None:
    csv = tmp_path / "P.csv"
    csv.write_text(",id,x\n0,a,1\nbroken tail,b,2\n2,c,3\n")
    with pytest.raises(DataFormatError, match="row 1: index column"):
        read_csv_strict(csv, "P.csv", ("id",))


@pytest.mark.parametrize(
    ("text", "value"), [("£1,250.00", 1250.0), ("£5.00", 5.0), ("£10,000,000.00", 1e7), ("free", math.nan)]
)
def test_parse_price(text: str, value: float) -> None:
    got = parse_price(text)
    assert (math.isnan(got) and math.isnan(value)) or got == value


def test_clean_title_strips_gumtree_suffix() -> None:
    assert clean_title("Mirror wall art | in Wokingham, Berkshire | Gumtree") == "Mirror wall art"
    assert clean_title("No suffix here") == "No suffix here"


def test_listing_without_category_is_dropped_and_counted() -> None:
    raw = pd.DataFrame(
        {"id": ["a", "b"], "product_name": ["x", "y"], "category": ["Home & Garden / Mirrors", ""],
         "product_description": ["", ""], "price": ["£1", "£2"], "location": ["L", "L"]}
    )
    dropped = Dropped()
    out = clean_products(raw, dropped)
    assert out["listing_id"].tolist() == ["a"]
    assert dropped.counts == {"listing_missing_category": 1}
    assert dropped.examples["listing_missing_category"] == ["b"]


def test_category_codec_round_trip(tmp_path: Path) -> None:
    codec = CategoryCodec.fit(pd.Series(["b", "a", "c", "a"]))
    path = tmp_path / "categories.json"
    import json

    path.write_text(json.dumps(codec.to_json()))
    again = CategoryCodec.load(path)
    assert again == codec
    assert [again.decode(again.encode(c)) for c in "abc"] == list("abc")
    with pytest.raises(KeyError, match="unknown category 'z'"):
        again.encode("z")


def test_split_is_by_listing_stratified_and_reproducible() -> None:
    listings = pd.DataFrame(
        {"listing_id": [f"l{i}" for i in range(100)], "root_category": ["a"] * 80 + ["b"] * 20}
    )
    first = split_by_listing(listings, 0.2, seed=3)
    assert first.equals(split_by_listing(listings, 0.2, seed=3))
    assert (first[listings.root_category == "a"] == "val").sum() == 16
    assert (first[listings.root_category == "b"] == "val").sum() == 4
    assert not first.equals(split_by_listing(listings, 0.2, seed=4))
