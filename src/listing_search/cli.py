"""Command line: one verb per pipeline stage, each only parsing arguments and calling that stage.

Stage modules are imported inside each verb, so ``serve`` never imports torch.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from listing_search.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
log = logging.getLogger("listing_search")

ArtifactsOpt = Annotated[Path, typer.Option("--artifacts", "--out", help="Artifacts folder.")]
DataOpt = Annotated[str, typer.Option("--data", help="Dataset folder or s3://bucket/prefix.")]
RunnerOpt = Annotated[Optional[str], typer.Option(help="local (default) or dask.")]
DaskOpt = Annotated[Optional[str], typer.Option(help="tcp://scheduler:8786; none starts one.")]
WorkOpt = Annotated[Optional[str], typer.Option(
    help="s3://bucket/prefix (or folder) the workers share: the stage runs as shards there.")]
ShardOpt = Annotated[Optional[int], typer.Option(help="Photos or listings per shard.")]


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )


def _settings(artifacts: Path | None = None, **sections: dict) -> Settings:
    """Environment settings with CLI flags on top, validated (bad values exit 2 with the reason)."""
    base = get_settings()
    merged = base.model_dump()
    if artifacts is not None:
        merged["artifacts_dir"] = artifacts
    for name, values in sections.items():
        merged[name].update({k: v for k, v in values.items() if v is not None})
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        _fail(f"invalid settings: {exc}")
    _setup_logging(settings)
    return settings


def _print_result(result: object) -> None:
    """A stage's report (a dataclass or a dict) as JSON on stderr's console."""
    console.print_json(json.dumps(getattr(result, "__dict__", result)))


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


# What a stage raises for bad input or missing artifacts (DataFormatError and BackboneError are a
# ValueError and a RuntimeError): a message and exit code 2, never a traceback.
STAGE_ERRORS = (FileNotFoundError, KeyError, OSError, RuntimeError, ValueError)


@contextmanager
def _stage_errors() -> Iterator[None]:
    try:
        yield
    except STAGE_ERRORS as exc:
        _fail(str(exc))


@app.command()
def prepare(
    data: DataOpt = "../shared/data/fb_marketplace",
    artifacts: ArtifactsOpt = Path("artifacts"),
    image_size: Annotated[Optional[int], typer.Option(help="Side of the square photos.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes; 0 = one per core.")] = None,
    runner: RunnerOpt = None,
    dask_address: DaskOpt = None,
    work_url: WorkOpt = None,
    shard_size: ShardOpt = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if up to date.")] = False,
) -> None:
    """Clean the tables, encode categories, standardise photos, and write the report."""
    from listing_search.data.prepare import prepare as run_prepare

    settings = _settings(artifacts, data={"image_size": image_size, "workers": workers,
                                          **_cluster(runner, dask_address, work_url, shard_size)})
    with _stage_errors():
        report = run_prepare(settings, data, artifacts, force=force, progress=True)
    console.print_json(json.dumps(report.summary()))


@app.command()
def holdout(
    data: Annotated[Path, typer.Option(help="Dataset folder to split.")] = Path("../shared/data/fb_marketplace"),
    out: Annotated[Path, typer.Option(help="Writes OUT/catalog and OUT/test.")] = Path("heldout"),
    fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.15,
    seed: int = 7,
) -> None:
    """Split a dataset by listing into a catalogue and a never-seen test set for `evaluate`."""
    from listing_search.data.holdout import make_holdout

    _settings()
    with _stage_errors():
        counts = make_holdout(data, out, fraction, seed)
    _print_result(counts)


@app.command()
def train(
    artifacts: ArtifactsOpt = Path("artifacts"),
    backbone: Annotated[Optional[str], typer.Option(help="Registered backbone, e.g. efficientnet_lite0.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Most epochs (early stopping may end sooner).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    subset: Annotated[Optional[int], typer.Option(help="Use only this many photos (quick runs).")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if up to date.")] = False,
) -> None:
    """Fine-tune the vision model's tail and category head; write ART/model/ (checkpoint, card, plots)."""
    from listing_search.vision.train import train as run_train

    settings = _settings(artifacts, vision={"backbone": backbone, "epochs": epochs, "device": device,
                                            "subset": subset})
    with _stage_errors():
        report = run_train(settings, artifacts, force=force, progress=True)
    _print_result(report)


def _cluster(runner: str | None, dask_address: str | None, work_url: str | None, shard_size: int | None) -> dict:
    return {"runner": runner, "dask_address": dask_address, "work_url": work_url, "shard_size": shard_size}


@app.command()
def embed(
    artifacts: ArtifactsOpt = Path("artifacts"),
    runner: RunnerOpt = None,
    dask_address: DaskOpt = None,
    work_url: WorkOpt = None,
    shard_size: ShardOpt = None,
    force: Annotated[bool, typer.Option(help="Re-embed even if up to date.")] = False,
) -> None:
    """Export ART/model/vision.onnx (checked against PyTorch) and embed every catalogue photo."""
    from listing_search.vision.embed import embed as run_embed

    settings = _settings(artifacts, data=_cluster(runner, dask_address, work_url, shard_size))
    with _stage_errors():
        report = run_embed(settings, artifacts, force=force, progress=True)
    _print_result(report)


@app.command("embed-text")
def embed_text(
    artifacts: ArtifactsOpt = Path("artifacts"),
    runner: RunnerOpt = None,
    dask_address: DaskOpt = None,
    work_url: WorkOpt = None,
    shard_size: ShardOpt = None,
    force: Annotated[bool, typer.Option(help="Re-embed even if up to date.")] = False,
) -> None:
    """Embed every listing's title + description (MiniLM) and export the torch-free query encoder."""
    from listing_search.text.embed import embed_text as run_embed_text

    settings = _settings(artifacts, data=_cluster(runner, dask_address, work_url, shard_size))
    with _stage_errors():
        card = run_embed_text(settings, artifacts, force=force, progress=True)
    _print_result(card)


@app.command("tune-ranker")
def tune_ranker(
    artifacts: ArtifactsOpt = Path("artifacts"),
    force: Annotated[bool, typer.Option(help="Refit even if up to date.")] = False,
) -> None:
    """Fit the re-ranker and the photo+text category predictor on the train split only."""
    from listing_search.fit.tune_ranker import tune_ranker as run_tune_ranker

    settings = _settings(artifacts)
    with _stage_errors():
        report = run_tune_ranker(settings, artifacts, force=force, progress=True)
    _print_result(report)


@app.command()
def evaluate(
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: Annotated[Path, typer.Option("--data", help="Raw dataset folder of never-seen listings.")] = Path(
        "heldout/test"),
    metrics: Annotated[Optional[str], typer.Option(help="Comma-separated metric keys (default: all).")] = None,
) -> None:
    """Accuracy and retrieval metrics on never-seen listings; prints one JSON object on stdout."""
    from listing_search.evaluate import evaluate as run_evaluate

    settings = _settings(artifacts)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    with _stage_errors():
        result = run_evaluate(settings, artifacts, data, names)
    typer.echo(json.dumps(result))


@app.command()
def index(
    artifacts: ArtifactsOpt = Path("artifacts"),
    kind: Annotated[Optional[str], typer.Option(help="Force flat, hnsw or ivfpq (default: by size/budget).")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if up to date (API-added listings are kept).")] = False,
    prune: Annotated[bool, typer.Option(help="Delete dataset listings that are no longer in the dataset.")] = False,
    runner: RunnerOpt = None,
    dask_address: DaskOpt = None,
    work_url: WorkOpt = None,
    shard_size: Annotated[Optional[int], typer.Option(help="Vectors per shard of an IVF fill.")] = None,
) -> None:
    """Merge the dataset into the store of record, then build the indexes (type by size and budget) and snapshot them.

    With --work-url, IVF indexes are filled as shards by the runner's workers and merged here.
    """
    from listing_search.index.build import build_index

    settings = _settings(artifacts, data=_cluster(runner, dask_address, work_url, shard_size))
    with _stage_errors():
        infos = build_index(settings, artifacts, force=force, kind=kind, prune=prune)
    _print_result(infos)


@app.command()
def reembed(
    artifacts: ArtifactsOpt = Path("artifacts"),
    drop_old: Annotated[bool, typer.Option(help="Then delete vectors made by other encoder versions.")] = False,
) -> None:
    """Give every listing in the store (API-added ones too) vectors made by the current encoders."""
    from listing_search.index.reembed import reembed_artifacts

    settings = _settings(artifacts)
    with _stage_errors():
        report = reembed_artifacts(settings, artifacts, drop_old)
    _print_result(report.to_json())


@app.command()
def backup(
    out: Annotated[Path, typer.Option("--to", help="New folder for the backup.")],
    artifacts: ArtifactsOpt = Path("artifacts"),
) -> None:
    """Copy the store and the photos' bytes, consistent at one log sequence, into a new folder."""
    from listing_search.store import open_storage
    from listing_search.store.backup import backup as run_backup

    settings = _settings(artifacts)
    with _stage_errors():
        store, blobs = open_storage(settings, artifacts)
        manifest = run_backup(store, blobs, out)
    _print_result(manifest)


@app.command()
def restore(
    src: Annotated[Path, typer.Option("--from", help="A folder written by `backup`.")],
    artifacts: ArtifactsOpt = Path("artifacts"),
) -> None:
    """Load a backup into the (empty) store and blob store of the settings."""
    from listing_search.store import open_storage
    from listing_search.store.backup import restore as run_restore

    settings = _settings(artifacts)
    with _stage_errors():
        store, blobs = open_storage(settings, artifacts)
        manifest = run_restore(src, store, blobs)
    _print_result(manifest)


@app.command()
def serve(
    artifacts: Annotated[Optional[Path], typer.Option(
        "--artifacts", "--out", help="Artifacts folder (default settings.artifacts_dir).")] = None,
    host: Annotated[Optional[str], typer.Option(help="Bind address (default settings.serve.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default settings.serve.port).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Server processes (default settings.serve.workers).")] = None,
) -> None:
    """Serve the API (ONNX Runtime model, store and derived indexes loaded once per process); never imports torch.

    With artifacts missing or broken the server still starts and ``/health`` answers 503 with the
    reason, so a container reports unhealthy instead of restarting in a loop.
    """
    from listing_search.serve.server import serve as run_serve

    run_serve(_settings(artifacts, serve={"host": host, "port": port, "workers": workers}))


@app.command()
def run(
    data: DataOpt = "../shared/data/fb_marketplace",
    artifacts: ArtifactsOpt = Path("artifacts"),
    serve: Annotated[bool, typer.Option(help="Serve the API once everything is built.")] = True,
    host: Annotated[Optional[str], typer.Option(help="Bind address for serving.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port for serving.")] = None,
) -> None:
    """Every stage on the dataset (skipping those up to date), then serve."""
    from listing_search.data.prepare import prepare as run_prepare
    from listing_search.index.build import build_index
    from listing_search.index.reembed import reembed_artifacts
    from listing_search.fit.tune_ranker import tune_ranker as run_tune_ranker
    from listing_search.text.embed import embed_text as run_embed_text
    from listing_search.vision.embed import embed as run_embed
    from listing_search.vision.train import train as run_train

    settings = _settings(artifacts)
    stages = [
        ("prepare", "clean the tables, standardise the photos",
         lambda: run_prepare(settings, data, artifacts, progress=True), _prepare_summary),
        ("train", "fine-tune the photo model's tail", lambda: run_train(settings, artifacts, progress=True),
         _train_summary),
        ("embed", "embed every photo", lambda: run_embed(settings, artifacts, progress=True), _embed_summary),
        ("embed-text", "embed every listing's words", lambda: run_embed_text(settings, artifacts, progress=True),
         _embed_text_summary),
        ("index", "load the store and build the search indexes", lambda: build_index(settings, artifacts),
         _index_summary),
        ("reembed", "re-embed listings added through the API", lambda: reembed_artifacts(settings, artifacts),
         _reembed_summary),
        ("tune-ranker", "fit the re-ranker and calibrate relevance",  # ranks through the engine over the index
         lambda: run_tune_ranker(settings, artifacts, progress=True), _ranker_summary),
    ]
    started = time.perf_counter()
    with _stage_errors():
        for number, (name, does, stage, summary) in enumerate(stages, 1):
            console.rule(f"[bold]stage {number}/{len(stages)} {name}[/]: {does}", align="left")
            t0 = time.perf_counter()
            result = stage()
            fresh = " (up to date)" if _up_to_date(result) else ""
            console.print(f"[green]done[/] {name} in {_duration(time.perf_counter() - t0)}: {summary(result)}{fresh}")
    console.print(f"[bold green]built[/] {artifacts} in {_duration(time.perf_counter() - started)}")
    if serve:
        from listing_search.serve.server import serve as run_serve

        run_serve(settings, host, port)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _up_to_date(result: object) -> bool:
    return bool(getattr(result, "up_to_date", None) or (isinstance(result, dict) and result.get("up_to_date")))


def _prepare_summary(r) -> str:
    dropped = ", ".join(f"{v:,} {k}" for k, v in r.dropped.items() if v) or "none"
    bad = sum(v for k, v in r.photos.items() if k != "ok")
    placed = f"; coordinates for {r.geo['placed_share']:.1%} ({r.geo['share'].get('town', 0):.1%} by town)" \
        if r.geo else ""
    return (f"{r.listings_kept:,} listings in {r.categories} categories, {r.photos.get('ok', r.photo_rows_kept):,} "
            f"photos ({bad:,} unusable); rows dropped: {dropped}{placed}")


def _train_summary(r) -> str:
    best = r.best
    p10 = best.get("val_photo_precision_at_10")
    neighbours = "" if p10 is None else f", photo -> photo P@10 {p10:.3f}"
    return (f"{r.backbone} on {r.device}: validation photo accuracy {best['val_image_accuracy']:.3f}{neighbours} "
            f"at epoch {best['best_epoch']}/{best['epochs_run']}")


def _embed_summary(r) -> str:
    return f"{r.images:,} photos as {r.embedding_dim}-d vectors, {r.failed} failed"


def _embed_text_summary(r: dict) -> str:
    return f"{r.get('listings', 0):,} listings as {r.get('dim')}-d vectors"


def _index_summary(r: dict) -> str:
    counts = r.get("catalog", {})
    measured = r.get("measured", {})
    where = ", ".join(f"{v:,} {k}" for k, v in counts.items()) if isinstance(counts, dict) else str(counts)
    return (f"photo index {r.get('factory')} (recall@10 {measured.get('recall_at_10', '-')}, p50 "
            f"{measured.get('p50_ms', '-')} ms); store: {where}")


def _reembed_summary(r) -> str:
    if not (r.photos_embedded or r.texts_embedded or r.old_vectors_dropped):
        return "nothing to re-embed"
    return f"{r.photos_embedded:,} photos and {r.texts_embedded:,} texts re-embedded"


def _ranker_summary(r: dict) -> str:
    comparison = r.get("comparison_on_val", {})
    chosen = comparison.get("chosen", "ranker")
    val = comparison.get(chosen, {})
    scores = f" (validation nDCG@10 {val['ndcg_at_10']:.3f}, P@10 {val['precision_at_10']:.3f})" if val else ""
    return f"{chosen} kept{scores}"


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
