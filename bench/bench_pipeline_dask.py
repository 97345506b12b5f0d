"""The batch stages as shards on a Dask cluster of 1 and 2 workers, reading and writing a moto S3 server.

Listings are the real dataset's, repeated with perturbed photos (new ids, jittered brightness, cropped)
up to ``--listings``. Stages: prepare (sharded), photo embedding (the shard job of ``embed``, through
the stand-in graph of the served architecture, since a bench cannot wait for training), embed-text
(sharded), and the IVF fill of the photo index (``index.sharded``). Per stage and worker count: wall
time, CPU seconds per 1,000 listings (summed over shards), bytes moved (read + written by shards), and
the peak RSS of each worker process. Prints one JSON line.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).resolve().parents[1])]

from bench import benchlib  # noqa: E402

AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def make_dataset(data: Path, dest: Path, n: int, seed: int = 0) -> None:
    """``n`` listings from the real tables, repeated with new ids and perturbed photos."""
    import pandas as pd
    from PIL import Image, ImageEnhance

    products = pd.read_csv(data / "Products.csv", dtype=str, lineterminator="\n", keep_default_na=False)
    images = pd.read_csv(data / "Images.csv", dtype=str, lineterminator="\n", keep_default_na=False)
    images = images[[(data / "images" / f"{i}.jpg").is_file() for i in images["id"]]]
    first = images.drop_duplicates("product_id").set_index("product_id")["id"]
    products = products[products["id"].isin(first.index)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows, photos = [], []
    (dest / "images").mkdir(parents=True)
    for k in range(n):
        src = products.iloc[k % len(products)]
        copy, lid = k // len(products), f"{src['id'][:-6]}{k:06d}"
        rows.append({**src.to_dict(), "id": lid})
        img = Image.open(data / "images" / f"{first[src['id']]}.jpg").convert("RGB")
        if copy:
            w, h = img.size
            c = int(rng.integers(0, max(1, min(w, h) // 10)))
            img = ImageEnhance.Brightness(img.crop((c, c, w - c, h - c))).enhance(float(rng.uniform(0.8, 1.2)))
        img.save(dest / "images" / f"img{k:07d}.jpg", quality=88)
        photos.append({"id": f"img{k:07d}", "product_id": lid, "bucket_link": "", "image_ref": "", "create_time": ""})
    pd.DataFrame(rows).drop(columns=[c for c in rows[0] if c.startswith("Unnamed")], errors="ignore") \
        .to_csv(dest / "Products.csv")
    pd.DataFrame(photos).to_csv(dest / "Images.csv")


def start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stage_stats(markers: list[dict], seconds: float, listings: int) -> dict:
    cpu = sum(m["cpu_seconds"] for m in markers)
    moved = sum(m["meta"].get("bytes_read", 0) + sum(f["bytes"] for f in m["files"].values()) for m in markers)
    return {"seconds": round(seconds, 2), "cpu_s_per_1k": round(1000 * cpu / listings, 2),
            "bytes_moved": moved, "shards": len(markers)}


def run_once(workers: int, raw: Path, n: int, tmp: Path) -> dict:
    import boto3
    from distributed import Client

    from bench.standin import export_standin
    from listing_search.data.prepare import load_training, prepare
    from listing_search.distributed import shards as sh
    from listing_search.distributed.runner import DaskRunner
    from listing_search.index.sharded import add_on_shards
    from listing_search.index.select import IVF_SQ8, choose_index
    from listing_search.settings import Settings
    from listing_search.text.embed import embed_text
    from listing_search.vision.embed_shard import embed_photos_shard
    from listing_search.vision.preprocess import PreprocessConfig
    from tests.realparts import _free_port, _wait_for_port

    env = {**os.environ, **AWS, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
    os.environ.update(AWS)
    procs = []
    try:
        moto_port, port = _free_port(), _free_port()
        procs.append(start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], env))
        procs.append(start([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                            "--no-dashboard"], env))
        _wait_for_port(moto_port, procs[0], "moto")
        _wait_for_port(port, procs[1], "scheduler")
        address, endpoint = f"tcp://127.0.0.1:{port}", f"http://127.0.0.1:{moto_port}"
        for i in range(workers):
            procs.append(start([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                "--no-dashboard", "--host", "127.0.0.1"], env))
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        for path in raw.rglob("*"):
            if path.is_file():
                client.upload_file(str(path), "bench", f"raw/{path.relative_to(raw).as_posix()}")
        with Client(address) as c:
            c.wait_for_workers(workers, timeout=60)
        base = Settings()
        settings = base.model_copy(update={"data": base.data.model_copy(update={
            "runner": "dask", "dask_address": address, "work_url": "s3://bench/work", "shard_size": 100,
            "s3_endpoint_url": endpoint, "image_size": 256})})
        work = sh.WorkArea("s3://bench/work", endpoint)
        runner, art, out = DaskRunner(address, batch=1), tmp / f"art{workers}", {}

        t = time.perf_counter()
        prepare(settings, "s3://bench/raw", art)
        out["prepare"] = stage_stats(_markers(work, "prepare"), time.perf_counter() - t, n)

        onnx, _, size = export_standin(tmp / "standin", ["a"])
        work.store().put("models/standin.onnx", onnx.read_bytes())
        images = json.loads((art / ".stamps/prepare.json").read_text())["work"]["images"]
        cfg = json.loads((tmp / "standin/model_card.json").read_text())["preprocess"]
        ids = load_training(art)["image_id"].tolist()
        shards = [sh.Shard("embed", f"bench{workers}", i, work,
                           {"model": "models/standin.onnx", "photos": work.url, "endpoint_url": endpoint,
                            "images": images, "cfg": PreprocessConfig.from_json(cfg).to_json(), "batch": 16,
                            "ids": chunk}) for i, chunk in enumerate(sh.chunks(ids, 100))]
        t = time.perf_counter()
        markers = sh.run_stage(runner, shards, embed_photos_shard)
        vectors, vids = sh.merge_vectors(work, markers, 1000)
        out["embed"] = stage_stats(markers, time.perf_counter() - t, n)

        t = time.perf_counter()
        embed_text(settings, art)
        out["embed_text"] = stage_stats(_markers(work, "embed_text"), time.perf_counter() - t, n)

        from listing_search.index.vector_index import VectorIndex
        import faiss

        vid = np.arange(len(vids), dtype=np.int64)
        choice = choose_index(len(vid), vectors.shape[1], kind=IVF_SQ8)
        t = time.perf_counter()
        trained = VectorIndex.build(vectors, vid, choice=choice, search_params={}).index
        trained.reset()
        train_s = time.perf_counter() - t
        add_on_shards(runner, work, trained, vectors, vid, 250)
        out["index"] = {**stage_stats(_markers(work, "index"), time.perf_counter() - t, n),
                        "train_on_driver_s": round(train_s, 2)}
        with Client(address) as c:
            peaks = c.run(_peak_rss_mb)
        out["peak_rss_mb_per_worker"] = sorted(peaks.values())
        return out
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _markers(work, stage: str) -> list[dict]:
    store = work.store()
    for key in store.keys(f"stages/{stage}/"):
        if key.endswith("/manifest.json"):
            return json.loads(store.get(key))["shards"]
    return []


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        raw = Path(tmp) / "raw"
        make_dataset(args.data, raw, args.listings)
        result = {"bench": "pipeline_dask", "listings": args.listings, "machine": benchlib.machine_state()}
        for workers in args.workers:
            result[f"workers_{workers}"] = run_once(workers, raw, args.listings, Path(tmp))
    return result


if __name__ == "__main__":
    p = benchlib.parser(__doc__)
    p.add_argument("--listings", type=int, default=20_000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    benchlib.main(run, p.parse_args())
