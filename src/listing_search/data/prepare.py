"""The data stage: raw marketplace dump -> checked tables, category codec, standard photos, report.

Reader (local folder or S3 mirror) -> table cleaning -> photo standardisation (parallel) -> writer.
Every dropped row or photo is counted by reason in ``prepare_report.json``.

With ``data.work_url`` set the photos are cleaned as shards (``distributed.shards``): no mirror, each
worker reads its photos from the source by URL and puts the clean ones under the stage's prefix in the
work area; the driver reads only the two tables and writes the small outputs into ``artifacts``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from listing_search import schema as S
from listing_search.core import places
from listing_search.data import images as img
from listing_search.data.source import image_listing, resolve_source
from listing_search.distributed import shards as sh
from listing_search.distributed.runner import get_runner
from listing_search.errors import BlobNotFound
from listing_search.data.tables import (
    CategoryCodec,
    Dropped,
    clean_images,
    clean_products,
    posted_at,
    read_csv_strict,
    split_by_listing,
)
from listing_search.pipeline import atomic_path, atomic_write_text, fingerprint, is_up_to_date, read_stamp, write_stamp
from listing_search.settings import Settings

log = logging.getLogger(__name__)
STAGE = "prepare"
RECIPE = "listings carry posted_at and coordinates"  # a change of what prepare writes re-runs it on an existing folder
NOT_FOUND_LISTED = 50  # locations not placed by their town, most listings first, in the report


@dataclass
class PrepareReport:
    source: str
    products_rows_read: int = 0
    image_rows_read: int = 0
    listings_kept: int = 0
    listings_without_photos: int = 0
    photo_rows_kept: int = 0
    categories: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)
    photos: dict[str, int] = field(default_factory=dict)
    image_files_without_row: int = 0
    geo: dict = field(default_factory=dict)  # listings by coordinate precision, places not found (geo_report)
    seconds: float = 0.0
    up_to_date: bool = False

    def summary(self) -> dict:
        """The report without its long lists (examples of dropped rows, places not found)."""
        out = {k: v for k, v in asdict(self).items() if k != "dropped_examples"}
        out["geo"] = {k: v for k, v in self.geo.items() if k != "not_found"}
        return out


def prepare(
    settings: Settings, src: str, artifacts: Path, force: bool = False, progress: bool = False
) -> PrepareReport:
    """Run the data stage from ``src`` (folder or ``s3://``) into ``artifacts``."""
    t0 = time.perf_counter()
    artifacts = Path(artifacts)
    if settings.data.work_url:
        return _prepare_on_shards(settings, str(src), artifacts, force, progress)
    local = resolve_source(src, artifacts / S.SOURCE_CACHE_DIR, settings.data.s3_endpoint_url)
    inputs = [local / S.PRODUCTS_CSV, local / S.IMAGES_CSV, local / S.IMAGES_DIR]
    fp = fingerprint(inputs, settings.section_json("data") + RECIPE + places.recipe())
    outputs = [artifacts / n for n in (S.LISTINGS_CSV, S.TRAINING_CSV, S.CATEGORIES_JSON, S.PREPARE_REPORT)]
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("prepare: up to date in %s", artifacts)
        report = PrepareReport(**json.loads((artifacts / S.PREPARE_REPORT).read_text()))
        report.up_to_date = True
        return report

    report = PrepareReport(source=str(src))
    dropped = Dropped()
    listings, photos, codec = _clean_tables(local, settings, report, dropped)
    photos = _standardise_photos(local, artifacts, photos, settings, report, dropped, progress)
    with_photos = set(photos[S.LISTING_ID])
    report.listings_without_photos = int((~listings[S.LISTING_ID].isin(with_photos)).sum())
    training = photos.merge(listings, on=S.LISTING_ID, how="inner", validate="many_to_one")
    report.photo_rows_kept = len(training)
    report.dropped = dict(dropped.counts)
    report.dropped_examples = dropped.examples
    report.seconds = round(time.perf_counter() - t0, 2)

    _write_outputs(artifacts, listings, training[list(S.TRAINING_COLUMNS)], codec, report, settings)
    write_stamp(artifacts, STAGE, fp)
    log.debug("prepare: %s", report.summary())  # the CLI prints the report
    return report


def _clean_tables(
    local: Path, settings: Settings, report: PrepareReport, dropped: Dropped
) -> tuple[pd.DataFrame, pd.DataFrame, CategoryCodec]:
    raw_products = read_csv_strict(local / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    raw_images = read_csv_strict(local / S.IMAGES_CSV, S.IMAGES_CSV, S.IMAGES_COLUMNS)
    report.products_rows_read, report.image_rows_read = len(raw_products), len(raw_images)

    listings = clean_products(raw_products, dropped)
    codec = CategoryCodec.fit(listings[S.ROOT_CATEGORY])
    listings[S.LABEL] = listings[S.ROOT_CATEGORY].map(codec.encode).astype(int)
    listings[S.SPLIT] = split_by_listing(listings, settings.data.val_fraction, settings.data.seed)
    photos = clean_images(raw_images, set(listings[S.LISTING_ID]), dropped)
    listings[S.POSTED_AT] = posted_at(listings, photos)
    report.geo = add_coordinates(listings)
    listings = listings[[*S.LISTING_COLUMNS, S.POSTED_AT, *S.GEO_COLUMNS]]
    report.listings_kept, report.categories = len(listings), len(codec)
    return listings, photos.drop(columns=[S.POSTED_AT], errors="ignore"), codec


def add_coordinates(listings: pd.DataFrame) -> dict:
    """Each listing's ``lat``, ``lon`` and ``geo_precision`` from its location (``core.places``: the town,
    else the area, else the centroid of the area's listings placed by town); returns the report's
    ``geo`` section: listings by precision and the locations whose town was not found."""
    locations = listings[S.LOCATION].fillna("").astype(str).tolist()
    placed = places.place_all(locations)
    listings[S.LAT] = [p.lat for p in placed]
    listings[S.LON] = [p.lon for p in placed]
    listings[S.GEO_PRECISION] = [p.precision for p in placed]
    return geo_report(locations, placed)


def geo_report(locations: list[str], placed: list[places.Place]) -> dict:
    """Listings by precision (counts and shares), and the locations not placed by their town with how
    many listings each and the precision they reached instead."""
    table = places.precision_table(placed)
    n = max(len(placed), 1)
    missed = Counter((loc, p.precision) for loc, p in zip(locations, placed) if p.precision != places.TOWN)
    return {"gazetteer": places.gazetteer().source,
            "precision": table,
            "share": {k: round(v / n, 4) for k, v in table.items()},
            "placed": len(placed) - table[places.NONE],
            "placed_share": round((len(placed) - table[places.NONE]) / n, 4),
            "not_found_locations": len(missed),
            "not_found_listings": sum(missed.values()),
            "not_found": [{"location": loc, "listings": c, "precision": pr}
                          for (loc, pr), c in missed.most_common(NOT_FOUND_LISTED)]}


def _standardise_photos(
    local: Path,
    artifacts: Path,
    photos: pd.DataFrame,
    settings: Settings,
    report: PrepareReport,
    dropped: Dropped,
    progress: bool,
) -> pd.DataFrame:
    d = settings.data
    src_dir, dest_dir = local / S.IMAGES_DIR, artifacts / S.CLEAN_IMAGES_DIR
    jobs = [
        img.PhotoJob(src_dir / f"{i}.jpg", dest_dir / f"{i}.jpg", d.image_size, d.max_image_pixels,
                     d.jpeg_quality, tuple(d.letterbox_rgb))
        for i in photos[S.IMAGE_ID]
    ]
    runner = get_runner(d.runner, d.workers, d.dask_address)
    on_disk = {p.stem for p in src_dir.glob("*.jpg")} if src_dir.is_dir() else set()
    return _count_statuses(photos, img.run_jobs(jobs, runner, progress), on_disk, report, dropped)


def _count_statuses(photos: pd.DataFrame, statuses: list[str], on_disk: set[str], report: PrepareReport,
                    dropped: Dropped) -> pd.DataFrame:
    """The photos that were cleaned; every other one counted by reason."""
    status = pd.Series(statuses, index=photos.index, dtype=object)
    report.photos = {k: int(v) for k, v in status.value_counts().items()}
    bad = ~status.isin([img.OK, img.SKIPPED])
    for reason, group in photos[bad].groupby(status[bad]):
        dropped.add(f"photo_{reason}", group[S.IMAGE_ID].tolist())
    report.image_files_without_row = len(on_disk - set(photos[S.IMAGE_ID]))
    return photos[~bad].reset_index(drop=True)


def _prepare_on_shards(settings: Settings, src: str, artifacts: Path, force: bool, progress: bool) -> PrepareReport:
    """Tables on the driver, photos as shards on the runner, reading the source and writing the work area."""
    t0, d = time.perf_counter(), settings.data
    work = sh.WorkArea(d.work_url or "", d.s3_endpoint_url)
    on_source = image_listing(src, d.s3_endpoint_url)
    with tempfile.TemporaryDirectory(prefix="prepare-") as tmp:
        tables = _fetch_tables(src, d.s3_endpoint_url, Path(tmp))
        fp = fingerprint([tables / S.PRODUCTS_CSV, tables / S.IMAGES_CSV],
                         json.dumps([_output_settings(settings), sorted(on_source.items()), places.recipe()]))
        outputs = [artifacts / n for n in (S.LISTINGS_CSV, S.TRAINING_CSV, S.CATEGORIES_JSON, S.PREPARE_REPORT)]
        if not force and is_up_to_date(artifacts, STAGE, outputs, fp) and sh.published(work, STAGE, fp):
            log.info("prepare: up to date in %s and %s", artifacts, work.url)
            return PrepareReport(**{**json.loads((artifacts / S.PREPARE_REPORT).read_text()), "up_to_date": True})
        report, dropped = PrepareReport(source=src), Dropped()
        listings, photos, codec = _clean_tables(tables, settings, report, dropped)

    images = f"{sh.stage_prefix(STAGE, fp)}/{S.CLEAN_IMAGES_DIR}"
    params = {"source": src, "endpoint_url": d.s3_endpoint_url, "images": S.IMAGES_DIR, "dest": images,
              "size": d.image_size, "max_pixels": d.max_image_pixels, "quality": d.jpeg_quality,
              "fill": list(d.letterbox_rgb)}
    shards = [sh.Shard(STAGE, fp, i, work, {**params, "ids": ids})
              for i, ids in enumerate(sh.chunks(photos[S.IMAGE_ID].tolist(), d.shard_size))]
    markers = sh.run_stage(get_runner(d.runner, d.workers, d.dask_address, batch=1), shards,
                           img.clean_photos_shard, progress)
    store = work.store()
    statuses = [s for m in markers for s in json.loads(sh.read_output(store, m, "statuses.json"))]
    photos = _count_statuses(photos, statuses, set(on_source), report, dropped)

    training = photos.merge(listings, on=S.LISTING_ID, how="inner", validate="many_to_one")
    report.listings_without_photos = int((~listings[S.LISTING_ID].isin(set(photos[S.LISTING_ID]))).sum())
    report.photo_rows_kept = len(training)
    report.dropped, report.dropped_examples = dict(dropped.counts), dropped.examples
    report.seconds = round(time.perf_counter() - t0, 2)
    _write_outputs(artifacts, listings, training[list(S.TRAINING_COLUMNS)], codec, report, settings)
    for name in (S.LISTINGS_CSV, S.TRAINING_CSV, S.CATEGORIES_JSON):
        store.put(f"{sh.stage_prefix(STAGE, fp)}/{name}", (artifacts / name).read_bytes())
    sh.publish(work, STAGE, fp, markers, {"images": images, "summary": report.summary()})
    write_stamp(artifacts, STAGE, fp, {"work": {"url": work.url, "images": images}})
    log.debug("prepare (shards on %s): %s", work.url, report.summary())
    return report


def _output_settings(settings: Settings) -> dict:
    """The data settings that change what is written; where and how it runs does not (so a resumed run on
    another cluster keeps its finished shards)."""
    return settings.data.model_dump(mode="json", exclude={"runner", "dask_address", "workers", "s3_endpoint_url"})


def _fetch_tables(src: str, endpoint_url: str | None, folder: Path) -> Path:
    """The two tables of ``src`` (folder or s3://) copied into ``folder``; the photos stay where they are."""
    source = sh.open_store(src, endpoint_url)
    for name in (S.PRODUCTS_CSV, S.IMAGES_CSV):
        try:
            (folder / name).write_bytes(source.get(name))
        except BlobNotFound as exc:
            raise FileNotFoundError(f"{name} not found in {src}") from exc
    return folder


def clean_photos_at(artifacts: Path, endpoint_url: str | None = None) -> tuple[sh.WorkArea, str] | None:
    """Where a sharded ``prepare`` put the clean photos (work area, key prefix), or None: in ``ART/images``."""
    work = (read_stamp(artifacts, STAGE) or {}).get("work")
    return None if not work else (sh.WorkArea(work["url"], endpoint_url), work["images"])


def fetch_clean_photos(artifacts: Path, image_ids: Iterable[str], endpoint_url: str | None = None,
                       threads: int = 16) -> int:
    """Photos a driver stage reads from ``ART/images`` (training), copied there from the work area where a
    sharded ``prepare`` left them; ones already there are kept. Returns how many were fetched (0 after a
    local ``prepare``). Only what is asked for travels: the catalogue is embedded on the workers."""
    at = clean_photos_at(artifacts, endpoint_url)
    if at is None:
        return 0
    work, prefix = at
    folder = Path(artifacts) / S.CLEAN_IMAGES_DIR
    todo = [i for i in dict.fromkeys(image_ids) if not (folder / f"{i}.jpg").is_file()]
    if not todo:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    store = work.store()

    def fetch(image_id: str) -> None:
        data = store.get(f"{prefix}/{image_id}.jpg")  # BlobNotFound: the work area lost a committed photo
        with atomic_path(folder / f"{image_id}.jpg") as tmp:
            tmp.write_bytes(data)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fetch, todo))
    log.info("prepare: %d clean photos fetched from %s into %s", len(todo), work.url, folder)
    return len(todo)


def _write_outputs(
    artifacts: Path,
    listings: pd.DataFrame,
    training: pd.DataFrame,
    codec: CategoryCodec,
    report: PrepareReport,
    settings: Settings,
) -> None:
    atomic_write_text(artifacts / S.LISTINGS_CSV, listings.to_csv(index=False))
    atomic_write_text(artifacts / S.TRAINING_CSV, training.to_csv(index=False))
    atomic_write_text(artifacts / S.CATEGORIES_JSON, json.dumps(codec.to_json(), indent=2))
    atomic_write_text(artifacts / S.PREPARE_REPORT, json.dumps(asdict(report), indent=2))
    atomic_write_text(artifacts / "prepare_settings.json", settings.section_json("data"))


def load_listings(artifacts: Path) -> pd.DataFrame:
    """The cleaned listings table, as written by :func:`prepare` (ids as text, price as float)."""
    return pd.read_csv(Path(artifacts) / S.LISTINGS_CSV, dtype={S.LISTING_ID: str}, keep_default_na=False,
                       na_values={S.PRICE: [""], S.POSTED_AT: [""], S.LAT: [""], S.LON: [""]})


def load_training(artifacts: Path) -> pd.DataFrame:
    """One row per usable photo, joined with its listing."""
    return pd.read_csv(Path(artifacts) / S.TRAINING_CSV, dtype={S.IMAGE_ID: str, S.LISTING_ID: str},
                       keep_default_na=False, na_values={S.PRICE: [""]})
