"""Read, check and clean the listings tables.

``Products.csv`` holds bare ``\\r`` characters inside unquoted descriptions: a reader that takes
``\\r`` as a line end silently splits thousands of rows. We read with ``\\n`` as the only record
separator, then check what was read (expected columns, unique ids, the pandas index column running
0..n-1 when present, the record count matching the file's record starts) and fail loudly otherwise.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.schema import DataFormatError

_TITLE_SUFFIX = re.compile(r"\s*\|\s*in\s+[^|]*\|\s*Gumtree\s*$", re.IGNORECASE)
_PRICE_JUNK = re.compile(r"[£$€,\s]")
_RECORD_START = re.compile(rb"^\d+,", re.MULTILINE)


@dataclass
class Dropped:
    """Rows dropped by reason, with a few example ids each for the report."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, ids: list[str]) -> None:
        if not ids:
            return
        self.counts[reason] += len(ids)
        self.examples.setdefault(reason, []).extend(ids[: 5 - len(self.examples.get(reason, []))])


def read_csv_strict(path: Path, table: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a dataset CSV with ``\\n`` as the only line end, every cell as text, ``\\r`` stripped."""
    try:
        df = pd.read_csv(path, lineterminator="\n", dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFormatError(table, f"cannot be parsed: {exc}") from exc
    df.columns = [c.strip() for c in df.columns]
    df = df.apply(lambda col: col.str.rstrip("\r"))
    S.check_columns(df, required, table)
    _check_index_column(df, table)
    _check_record_count(path, df, table)
    S.check_unique(df, "id", table)
    return df


def _check_index_column(df: pd.DataFrame, table: str) -> None:
    """The leading unnamed pandas index, when present, must be unique integers.

    A record split at a stray line end leaves description text where the index should be.
    """
    first = df.columns[0]
    if first not in ("", "Unnamed: 0"):
        return
    values = df[first].str.strip()
    bad = np.flatnonzero(~values.str.fullmatch(r"\d+").to_numpy())
    if bad.size:
        row = int(bad[0])
        raise DataFormatError(
            table, f"index column reads {values.iloc[row][:40]!r}, not an integer: a record was split",
            row=row,
        )
    dup = values.duplicated().to_numpy()
    if dup.any():
        row = int(dup.argmax())
        raise DataFormatError(table, f"index {values.iloc[row]!r} repeats: records were merged", row=row)


def _check_record_count(path: Path, df: pd.DataFrame, table: str) -> None:
    """With an index column, every record starts a line with ``<int>,``: count them in the raw bytes."""
    if df.columns[0] not in ("", "Unnamed: 0"):
        return
    starts = len(_RECORD_START.findall(path.read_bytes()))
    # Descriptions may themselves hold a line starting with digits and a comma, so the count is an
    # upper bound; fewer starts than rows means rows were invented.
    if starts < len(df):
        raise DataFormatError(table, f"read {len(df)} rows but the file has only {starts} record starts")


def parse_price(text: str) -> float:
    """'£1,250.00' -> 1250.0; NaN when there is no number."""
    cleaned = _PRICE_JUNK.sub("", text or "")
    try:
        return float(cleaned)
    except ValueError:
        return float("nan")


def clean_title(name: str) -> str:
    """Strip the ' | in <place> | Gumtree' suffix."""
    return _TITLE_SUFFIX.sub("", name or "").strip()


def clean_text(text: str) -> str:
    """Bare carriage returns become newlines; runs of spaces collapse."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"[ \t]+", " ", text).strip()


def root_category(path: str) -> str:
    return (path or "").split("/")[0].strip()


def clean_products(raw: pd.DataFrame, dropped: Dropped) -> pd.DataFrame:
    """Cleaned listings (without label/split), dropping rows that have no category."""
    out = pd.DataFrame(
        {
            S.LISTING_ID: raw["id"].str.strip(),
            S.TITLE: raw["product_name"].map(clean_title),
            S.DESCRIPTION: raw["product_description"].map(clean_text),
            S.PRICE: raw["price"].map(parse_price),
            S.LOCATION: raw["location"].str.strip(),
            S.CATEGORY_PATH: raw["category"].map(lambda c: " / ".join(p.strip() for p in c.split("/"))),
        }
    )
    out[S.ROOT_CATEGORY] = out[S.CATEGORY_PATH].map(root_category)
    no_cat = out[S.ROOT_CATEGORY] == ""
    dropped.add("listing_missing_category", out.loc[no_cat, S.LISTING_ID].tolist())
    return out.loc[~no_cat].reset_index(drop=True)


def clean_images(raw: pd.DataFrame, listing_ids: set[str], dropped: Dropped) -> pd.DataFrame:
    """Photo rows ``image_id, listing_id`` (and ``posted_at`` from ``create_time`` when the table has
    it; unreadable dates are NaN), dropping those whose listing is unknown."""
    out = pd.DataFrame({S.IMAGE_ID: raw["id"].str.strip(), S.LISTING_ID: raw["product_id"].str.strip()})
    if S.IMAGES_CREATE_TIME in raw.columns:
        when = pd.to_datetime(raw[S.IMAGES_CREATE_TIME].str.strip(), errors="coerce", utc=True)
        out[S.POSTED_AT] = (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    unknown = ~out[S.LISTING_ID].isin(listing_ids)
    dropped.add("image_row_unknown_listing", out.loc[unknown, S.IMAGE_ID].tolist())
    return out.loc[~unknown].reset_index(drop=True)


@dataclass(frozen=True)
class CategoryCodec:
    """Root category <-> label index; saved to and loaded from ``categories.json``."""

    categories: tuple[str, ...]

    @classmethod
    def fit(cls, roots: pd.Series) -> "CategoryCodec":
        return cls(tuple(sorted(set(roots))))

    def encode(self, name: str) -> int:
        try:
            return self.categories.index(name)
        except ValueError:
            raise KeyError(f"unknown category {name!r}; known: {list(self.categories)}") from None

    def decode(self, label: int) -> str:
        return self.categories[label]

    def __len__(self) -> int:
        return len(self.categories)

    def to_json(self) -> dict:
        return {"categories": list(self.categories), "encoder": {c: i for i, c in enumerate(self.categories)}}

    @classmethod
    def from_json(cls, data: dict) -> "CategoryCodec":
        return cls(tuple(data["categories"]))

    @classmethod
    def load(cls, path: Path) -> "CategoryCodec":
        import json

        return cls.from_json(json.loads(Path(path).read_text()))


def posted_at(listings: pd.DataFrame, photos: pd.DataFrame) -> pd.Series:
    """Each listing's ``posted_at``: the earliest date of its photos (NaN without a dated photo)."""
    if S.POSTED_AT not in photos.columns:
        return pd.Series(float("nan"), index=listings.index)
    earliest = photos.groupby(S.LISTING_ID)[S.POSTED_AT].min()
    return listings[S.LISTING_ID].map(earliest).astype(float)


def split_by_listing(listings: pd.DataFrame, val_fraction: float, seed: int) -> pd.Series:
    """'train'/'val' per listing, stratified by root category, reproducible from the seed.

    Photos inherit their listing's side, so one listing's near-duplicate photos never sit on both.
    """
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=listings.index, dtype=object)
    for _, group in listings.sort_values(S.LISTING_ID).groupby(S.ROOT_CATEGORY, sort=True):
        n_val = int(round(len(group) * val_fraction))
        if len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        else:
            n_val = 0
        chosen = rng.permutation(group.index.to_numpy())[:n_val]
        split.loc[chosen] = "val"
    return split
