"""Table formats and artifact names: the contract between stages.

Every stage reads and writes these names and nothing else, so a newcomer can find any file of an
artifacts folder here. Table problems raise :class:`DataFormatError` naming the row and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is for the build stages only: serving must not import it (a smaller image)
    import pandas as pd

# --- input dataset (local folder or s3://bucket/prefix) -------------------------------------
PRODUCTS_CSV = "Products.csv"
IMAGES_CSV = "Images.csv"
IMAGES_DIR = "images"

PRODUCTS_COLUMNS = ("id", "product_name", "category", "product_description", "price", "location")
IMAGES_COLUMNS = ("id", "product_id")

# --- cleaned tables -------------------------------------------------------------------------
IMAGE_ID = "image_id"
LISTING_ID = "listing_id"
LABEL = "label"
ROOT_CATEGORY = "root_category"
CATEGORY_PATH = "category_path"
TITLE = "title"
DESCRIPTION = "description"
PRICE = "price"
LOCATION = "location"
SPLIT = "split"  # "train" or "val": by listing id, stratified by root category
POSTED_AT = "posted_at"  # seconds since the epoch: the earliest create_time of the listing's photos (optional)
IMAGES_CREATE_TIME = "create_time"  # Images.csv's optional date of each photo
LAT = "lat"  # degrees north, from the location (core.places); empty when not placed
LON = "lon"  # degrees east
GEO_PRECISION = "geo_precision"  # how the coordinates were found: town, area, area_centroid or none
GEO_COLUMNS = (LAT, LON, GEO_PRECISION)

LISTING_COLUMNS = (
    LISTING_ID, TITLE, DESCRIPTION, PRICE, LOCATION, CATEGORY_PATH, ROOT_CATEGORY, LABEL, SPLIT,
)
TRAINING_COLUMNS = (
    IMAGE_ID, LISTING_ID, LABEL, ROOT_CATEGORY, CATEGORY_PATH, TITLE, DESCRIPTION, PRICE, LOCATION, SPLIT,
)

# --- artifacts (all relative to the artifacts folder) ---------------------------------------
CATEGORIES_JSON = "categories.json"
LISTINGS_CSV = "listings.csv"
TRAINING_CSV = "training_data.csv"
CLEAN_IMAGES_DIR = "images"
PREPARE_REPORT = "prepare_report.json"
STAMPS_DIR = ".stamps"
SOURCE_CACHE_DIR = "source_cache"

MODEL_DIR = "model"
MODEL_CHECKPOINT = "model/model.pt"
MODEL_CARD = "model/model_card.json"  # backbone, preprocessing, categories, metrics
BACKBONE_INT8_ONNX = "model/backbone.int8.onnx"  # the frozen int8 backbone the served graph starts with
# What `train` writes and `embed` reads: a trained model moved elsewhere is these files (the int8 graph
# exists only with the frozen int8 backbone recipe).
TRAINED_MODEL_FILES = (MODEL_CHECKPOINT, MODEL_CARD, BACKBONE_INT8_ONNX)
VISION_ONNX = "model/vision.onnx"  # input "image" [N,3,S,S] -> "embedding" [N,D], "logits" [N,C]
IMAGE_EMBEDDINGS_JSON = "image_embeddings.json"
IMAGE_EMBEDDINGS_NPY = "image_embeddings.npy"
IMAGE_EMBEDDING_IDS = "image_embedding_ids.json"

TEXT_DIR = "text"
TEXT_EMBEDDINGS_NPY = "text/listing_text_embeddings.npy"
TEXT_EMBEDDING_IDS = "text/listing_text_ids.json"
TEXT_ONNX = "text/minilm.onnx"  # "input_ids", "attention_mask", "token_type_ids" -> "embedding" [N,384], unit rows
TEXT_TOKENIZER = "text/tokenizer.json"
TEXT_MODEL_CARD = "text/model_card.json"  # model, max_length, ONNX parity, listings embedded

INDEX_DIR = "index"
INDEX_SETTINGS = "index/index_settings.json"
STORE_DB = "store.sqlite"  # the default store of record (settings.store.url overrides it)
BLOBS_DIR = "blobs"  # the default blob store: photos/<image id>.jpg, snapshots/ when published
SNAPSHOTS_DIR = "snapshots"  # this replica's snapshots of the derived indexes (index/snapshot.py)
RANKER_JSON = "ranker.json"
CATEGORY_PREDICTOR_JSON = "category_predictor.json"  # photos + text -> root category (numpy-only weights)
RELEVANCE_JSON = "relevance.json"  # ranker score -> calibrated P(same root category), and the no-match threshold


class DataFormatError(ValueError):
    """A table is not of the expected shape; the message names the row and the problem."""

    def __init__(self, table: str, problem: str, row: int | None = None) -> None:
        where = f"{table}" if row is None else f"{table}, row {row}"
        super().__init__(f"{where}: {problem}")
        self.table, self.problem, self.row = table, problem, row


def check_columns(df: pd.DataFrame, required: Iterable[str], table: str) -> None:
    """Raise if any required column is missing."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(table, f"missing columns {missing}; found {list(df.columns)}")


def check_unique(df: pd.DataFrame, column: str, table: str) -> None:
    """Raise naming the first row whose ``column`` is empty or repeats an earlier one."""
    values = df[column]
    empty = values.isna() | (values.astype(str).str.strip() == "")
    if empty.any():
        raise DataFormatError(table, f"empty {column!r}", row=int(empty.to_numpy().argmax()))
    dup = values.duplicated()
    if dup.any():
        row = int(dup.to_numpy().argmax())
        raise DataFormatError(table, f"duplicate {column} {values.iloc[row]!r}", row=row)
