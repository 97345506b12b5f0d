"""One settings object for every stage, read from the environment (prefix ``LISTING_SEARCH_``).

Nested sections are set with a double underscore, e.g. ``LISTING_SEARCH_DATA__IMAGE_SIZE=256``
or ``LISTING_SEARCH_SERVE__API_KEYS=key1,key2``. The resolved settings are saved beside the artifacts
each stage writes, so every artifact can be reproduced from what sits next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from listing_search import schema as S


class DataSettings(BaseModel):
    image_size: int = Field(512, ge=32, le=4096, description="Side of the square standardised photos; a "
                            "smaller photo keeps its own longer side (never enlarged).")
    workers: int = Field(0, ge=0, description="Processes for photo cleaning; 0 means one per core.")
    letterbox_rgb: tuple[int, int, int] = (0, 0, 0)
    jpeg_quality: int = Field(90, ge=30, le=100)
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Photos whose header claims more pixels are refused (413) before decoding: "
        "real photos are at most 1.05 MP; 40 MP takes any 12-24 MP camera photo and bounds one decode at 160 MB."
    )
    s3_endpoint_url: str | None = Field(None, description="For S3-compatible servers (MinIO, moto).")
    runner: Literal["local", "dask"] = Field(
        "local", description="Where batch work runs: local processes, or a Dask cluster."
    )
    dask_address: str | None = Field(
        None, description="tcp://scheduler:8786 of a running Dask cluster; None starts a local one."
    )
    work_url: str | None = Field(
        None, description="s3://bucket/prefix (or a folder) where the batch stages run as shards: workers read "
        "inputs and write outputs there by URL and share nothing else with the driver. None: the local path.")
    shard_size: int = Field(500, ge=1, description="Photos or listings per shard of a stage run on shards.")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of listings held out.")
    seed: int = 42


class VisionSettings(BaseModel):
    backbone: str = "efficientnet_lite0"
    resnet50_weights: Path | None = Field(
        None, description="Local torchvision ResNet50 ImageNet weights, used when they cannot be downloaded."
    )
    epochs: int = Field(30, ge=1, description="Most epochs; the cosine schedule spans them all (an epoch of the "
                        "default frozen-backbone recipe takes about a second on 2 cores).")
    batch_size: int = Field(64, ge=1)
    lr_head: float = 1e-3
    lr_backbone: float = 1e-4
    weight_decay: float = 1e-4
    patience: int = Field(10, ge=1, description="Epochs without a better val measure (photo -> photo P@10 for the "
                          "retrieval head, accuracy for the imagenet head) before stopping.")
    train_last_blocks: int = Field(
        0, ge=0, description="How many final backbone stages are fine-tuned (the final 1x1 conv counts as one); "
        "0: the convolutional backbone is frozen and only the ImageNet 1000-way layer and the head train "
        "(chosen on validation, docs/vision.md).")
    int8_backbone: bool = Field(
        True, description="With a frozen backbone (train_last_blocks=0): run it as an int8 graph (static "
        "quantisation calibrated on catalogue photos) for the training cache, the catalogue embeddings and "
        "serving alike.")
    input_size: int | None = Field(None, ge=32, le=1024, description="Model input side; None = the backbone's.")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="On the pooled features, before the 1000-way layer.")
    augment_copies: int = Field(2, ge=0, description="Augmented views cached per training photo.")
    subset: int | None = Field(None, ge=1, description="Use only this many photos (quick runs, tests).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 42
    head: Literal["imagenet", "retrieval"] = Field(
        "imagenet", description="imagenet: the original project's head (the 1000-way layer, ReLU, a category layer; "
        "early-stopped on val accuracy); retrieval: an MLP embedding trained for neighbours (root + full-path "
        "cross-entropy + supervised contrastive, early-stopped on val photo -> photo P@10). On never-seen listings "
        "(docs/vision.md, 2026-12-06) retrieval lifts photo -> photos P@10 0.400 -> 0.454 but not photo search "
        "(0.516 -> 0.511) and costs photo + title 0.826 -> 0.817, so imagenet stays the default.")
    embedding_dim: int = Field(1000, ge=8, le=4096, description="The retrieval head's embedding size (1000: the "
                               "size the original API returned).")
    hidden_dim: int = Field(1024, ge=8, le=8192, description="The retrieval head's hidden layer.")
    path_loss_weight: float = Field(1.0, ge=0.0, description="Retrieval head: weight of the full-path cross-entropy.")
    supcon_weight: float = Field(1.0, ge=0.0, description="Retrieval head: weight of the supervised contrastive loss.")
    supcon_temperature: float = Field(0.1, gt=0.0, le=10.0)
    hold_out_ranker_queries: bool | None = Field(
        None, description="Leave the photos of tune-ranker's training-query listings (rank.seed, rank.train_queries) "
        "out of the head's training, as embed-text does: the ranker then learns from photos the head never saw, "
        "as users' are (measured 2026-12-06: trained on them, the retrieval head made photo + title P@10 on "
        "never-seen listings fall 0.826 -> 0.738). None: on for the retrieval head (it memorises its training "
        "photos), off for the imagenet head (the original recipe).")
    embed_layer: Literal["head", "logits1000", "pooled"] = Field(
        "head", description="What the photo index holds: the head's embedding (head; logits1000 is the imagenet "
        "head's original name for it) or the backbone's pooled features (pooled).")
    embed_batch_size: int = Field(64, ge=1)
    sweep: list[dict] = Field(default_factory=list, description="Extra configurations to train and compare.")

    def holds_out(self) -> bool:
        """Whether training leaves out tune-ranker's training-query listings (see ``hold_out_ranker_queries``)."""
        return self.head == "retrieval" if self.hold_out_ranker_queries is None else self.hold_out_ranker_queries

    @model_validator(mode="after")
    def _layer_fits_head(self) -> "VisionSettings":
        if self.embed_layer == "logits1000" and self.head != "imagenet":
            raise ValueError("embed_layer 'logits1000' is the imagenet head's 1000-way layer; with the "
                             f"{self.head} head use 'head' or 'pooled'")
        return self


class TextSettings(BaseModel):
    max_length: int = Field(128, ge=8, le=512)
    batch_size: int = Field(64, ge=1)
    fine_tune_epochs: float = Field(0.0, ge=0.0, le=50.0, description=(
        "Passes over the train-split listings fine-tuning MiniLM's top layers on the catalogue's categories "
        "(text/tune.py); 0, the default, keeps the bundled model as it is. Measured on never-seen listings with "
        "3 (docs/ranking.md, 2026-12-03): val-title category kNN purity +8.8 points, but served P@10 -0.1 to "
        "-0.6 and personalised nDCG@10 0.470 -> 0.409, so it is off."))
    fine_tune_layers: int = Field(3, ge=1, le=6, description="Top transformer layers trained; the rest stay frozen.")
    fine_tune_lr: float = Field(2e-4, gt=0.0, le=1e-2)
    fine_tune_text_tokens: int = Field(48, ge=8, le=512, description=(
        "Tokens of title + description seen while fine-tuning (embedding still reads max_length)."))
    seed: int = 0


class IndexSettings(BaseModel):
    memory_budget_mb: int = Field(1536, ge=16, description="Bytes of one index (photo or text) at most.")
    latency_budget_ms: float = Field(2.0, gt=0, description="p50 of one unfiltered query on one thread; "
                                     "the index type is chosen by a cost model to fit it (index/select.py).")
    recall_sample: int = Field(200, ge=1, description="Held-out queries measuring recall@10 and latency.")
    kind: Literal["flat", "hnsw", "ivfsq8", "ivfpq"] | None = Field(None, description="Force one index type.")


class RankSettings(BaseModel):
    candidates: int = Field(200, ge=10, description="Candidates fetched from each index before re-ranking.")
    max_scored: int = Field(1000, ge=0, description=(
        "Listings holding the words ranked per search beyond the channels' candidates; more holders are "
        "still matched (counted, sorted, paged) and follow the ranked ones in relevance order."))
    word_tiers: bool = Field(True, description=(
        "Queries of one to three words: listings holding the words come first (together in the title first), "
        "the rest follow as related; the ranker orders within each tier (docs/ranking.md)."))
    holder_vote_weight: float = Field(1.0, ge=0.0, description=(
        "The words' category belief times the categories of the listings holding them, to this power "
        "(0: off; docs/ranking.md)."))
    train_queries: int = Field(1500, ge=10, description=(
        "Train-split listings used as ranker training queries by their title and photos."))
    buyer_train_queries: int = Field(900, ge=0, description=(
        "More train-split listings asked as a buyer's few words (fit.buyer_queries) to fit the ranker."))
    category_c: float = Field(4.0, gt=0, description="Inverse L2 strength of the category predictor.")
    category_image_weight: float = Field(
        0.3, ge=0.0, description="Photos + words: weight of the photo expert (chosen on the val split)."
    )
    photo_vote_weight: float = Field(0.3, ge=0.0, description=(
        "The category a photo search shows: the belief times the root categories of the catalogue listings whose "
        "photos are nearest, to this power (0: off; ranking is unaffected). Recorded in category_predictor.json by "
        "`tune-ranker` (changing it re-fits there; serving reads the recorded value). Chosen on the val split; on "
        "never-seen listings a photo's shown category is right 0.512 -> 0.534 of the time (docs/ranking.md)."))
    category_char_grams: bool = Field(False, description=(
        "Character n-grams of the words as category predictor features (word forms, typos). Off: on never-seen "
        "listings +0.4-0.7 P@10 for words, but 4-13x more real searches flagged 'no good match' (docs/ranking.md)."))
    val_queries: int = Field(600, ge=10, description="Val-split listings used to choose the ranker and calibrate it.")
    ranker: Literal["auto", "lambdamart", "logistic"] = Field(
        "auto", description="Re-ranker kind; auto keeps whichever scores the better val nDCG@10.")
    spelling: bool = Field(True, description="Correct misspelt query words against the catalogue's vocabulary.")
    lexical: bool = Field(True, description="BM25 over titles and descriptions as a candidate channel.")
    lexical_candidates: int = Field(40, ge=0, description=(
        "Candidates the BM25 channel adds (at least 4 x k); every candidate it adds is scored in every channel, "
        "so this is its latency knob."))
    history_weight: float = Field(0.3, ge=0.0, le=1.0, description="Share of the profile in a personalised search.")
    half_life_days: float = Field(14.0, gt=0, description="History events lose half their weight per half-life.")
    seed: int = 42


class StoreSettings(BaseModel):
    url: str | None = Field(
        None, description="The catalogue of record: sqlite:///path (default ARTIFACTS/store.sqlite) or "
        "postgresql://user@host/db (several replicas).")
    blob_url: str | None = Field(
        None, description="Photo bytes and published snapshots: a folder (default ARTIFACTS/blobs) or s3://bucket/prefix.")
    snapshot_dir: Path | None = Field(None, description="This replica's local snapshots (default ARTIFACTS/snapshots).")
    publish_snapshots: bool = Field(
        False, description="The designated writer: also publish snapshots to the blob store for new replicas.")
    follow_interval_s: float = Field(0.2, gt=0, le=60, description=(
        "How often a replica polls the change log at the latest; it polls at once when the store announces a "
        "change (PostgreSQL NOTIFY, SQLite's change counter)."))
    snapshot_interval_s: float = Field(300.0, gt=0, description="Seconds between background snapshots.")
    snapshot_keep: int = Field(2, ge=1, description="Local snapshots kept.")

    def resolved_url(self, artifacts: Path) -> str:
        return self.url or f"sqlite:///{Path(artifacts).resolve() / S.STORE_DB}"

    def resolved_blob_url(self, artifacts: Path) -> str:
        return self.blob_url or str(Path(artifacts).resolve() / S.BLOBS_DIR)

    def resolved_snapshot_dir(self, artifacts: Path) -> Path:
        return Path(self.snapshot_dir or Path(artifacts) / S.SNAPSHOTS_DIR)


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "Keys accepted in the X-API-Key header of the write endpoints (several, for rotation): a JSON list "
        "or comma-separated. None configured: writes are refused with 403."))
    api_key: str | None = Field(None, description="One more accepted key (the older single-key setting).")
    operator_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "Keys (X-API-Key header) that show /health's detail: store and blob store locations, the reasons "
        "behind a failure. Write keys do not. None configured: /health shows status and kinds only."))
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "Origins (https://shop.example) whose pages may call the API from a browser; none by default."))
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_k: int = Field(100, ge=1)
    workers: int = Field(1, ge=1, le=64, description="Server processes; each follows the store's change log.")
    header_timeout_s: float = Field(10.0, gt=0, description="A request's head must arrive within this; else 408 and closed.")
    body_timeout_s: float = Field(30.0, gt=0, description="A request's whole body must arrive within this; else 408.")
    photo_in_flight: int = Field(8, ge=1, description=(
        "Photo jobs (decode + model) admitted at once; the rest wait in the photo queue."))
    photo_decode_budget_mb: int = Field(480, ge=16, description=(
        "Memory that admitted decodes may hold together (estimated from each photo's header)."))
    photo_queue_wait_s: float = Field(2.0, gt=0, description="How long a photo job waits for admission; then 503.")
    photo_batch_max: int = Field(8, ge=1, description="Most photos run through the vision model in one call.")
    photo_batch_wait_ms: float = Field(2.0, ge=0, description=(
        "How long the model waits for more admitted photos to join a batch."))
    query_log: Path | None = Field(None, description=(
        "Append one JSON line per search (query, corrections, result ids, relevance, model versions) to "
        "this file; off when unset."))
    text_spinning: bool = Field(True, description=(
        "Let the query text encoder's ONNX Runtime threads spin between operators: the lowest one-client "
        "latency; false saves ~8 ms of CPU per text query and gains throughput under steady concurrency "
        "(docs/performance.md)."))
    quantized: bool = Field(
        False, description="Serve the int8 vision graph (vision/quantize.py): ~2x faster network, embeddings "
        "at cosine ~0.99 to fp32; check the accuracy cost first (docs/performance.md).")

    @field_validator("api_keys", "operator_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """``a,b`` from the environment as well as a JSON list, so rotating a key needs no JSON quoting."""
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
        return value

    def write_keys(self) -> tuple[str, ...]:
        """Every configured key, blanks dropped; empty means writes are disabled."""
        keys = [*self.api_keys, self.api_key or ""]
        return tuple(dict.fromkeys(k.strip() for k in keys if k.strip()))

    def health_keys(self) -> tuple[str, ...]:
        """Keys that show /health's detail; empty means nobody sees it."""
        return tuple(dict.fromkeys(k.strip() for k in self.operator_keys if k.strip()))


class AlertSettings(BaseModel):
    """Saved searches and their alerts (docs/alerts.md)."""

    matcher: bool = Field(True, description=(
        "Run the alert matcher in this server: every replica tries, the one holding the lease in the store "
        "matches; the others take over when its lease runs out."))
    max_per_buyer: int = Field(50, ge=1, description="Saved searches one buyer (one token) may keep.")
    create_per_buyer: int = Field(10, ge=1, description="Saved searches one token may create per create_window_s.")
    create_per_address: int = Field(30, ge=1, description=(
        "Saved searches one client address may create per create_window_s (tokens are free to make)."))
    create_window_s: float = Field(600.0, gt=0, description="The window of the two creation rates.")
    idle_days: float = Field(90.0, gt=0, description=(
        "A saved search its buyer has not listed, read alerts of or streamed for this long is deleted."))
    keep_days: float = Field(30.0, gt=0, description="Alerts older than this are deleted.")
    lease_ttl_s: float = Field(10.0, ge=0.5, description=(
        "How long the matcher's lease lasts unrenewed (renewed every third of it): a killed matcher's "
        "replica is replaced within about this long."))
    poll_s: float = Field(0.05, gt=0, description="How often the matcher looks for log entries this replica applied.")
    batch: int = Field(1000, ge=1, description="Most change-log entries matched and committed in one transaction.")
    expire_every_s: float = Field(3600.0, gt=0, description="How often the matcher deletes expired searches and alerts.")
    session_s: float = Field(3600.0, ge=10, description="Lifetime of the alert stream's cookie.")
    stream_poll_s: float = Field(0.25, gt=0, description="How often a replica looks for new alerts for its streams.")
    stream_max_s: float = Field(300.0, gt=0, description=(
        "A stream ends after this (the page's EventSource reconnects and the cookie is checked again)."))
    commit_hold_s: float = Field(0.0, ge=0, le=10, description=(
        "Tests only: keep each alert transaction open this long before it commits (kill -9 lands inside it)."))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LISTING_SEARCH_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: str = "../shared/data/fb_marketplace"
    artifacts_dir: Path = Path("artifacts")
    log_level: str = "INFO"

    data: DataSettings = DataSettings()
    vision: VisionSettings = VisionSettings()
    text: TextSettings = TextSettings()
    index: IndexSettings = IndexSettings()
    rank: RankSettings = RankSettings()
    store: StoreSettings = StoreSettings()
    serve: ServeSettings = ServeSettings()
    alerts: AlertSettings = AlertSettings()

    def section_json(self, section: str) -> str:
        """The resolved settings of one stage, as saved beside that stage's artifacts."""
        return json.dumps(getattr(self, section).model_dump(mode="json"), indent=2, sort_keys=True)


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    return Settings(**overrides)
