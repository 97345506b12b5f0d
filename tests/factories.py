"""Builders of tiny datasets and photos for tests: seeded, offline, the real data's shape and traps."""

from __future__ import annotations

import io
import re
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOTS = ("Home & Garden", "Computers & Software", "Sports, Leisure & Travel")
HEADER = ",id,product_name,category,product_description,price,location\n"


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """A photo of one dominant colour with a little seeded noise."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _row(i: int, listing_id: str, root: str, description: str, price: str) -> str:
    name = f'"Item {i} | in Leeds, West Yorkshire | Gumtree"'
    return f'{i},{listing_id},{name},"{root} / Sub {i % 2} / Leaf",{description},{price},"Leeds, West Yorkshire"\n'


def make_dataset(root: Path, n_listings: int = 12, photos_per_listing: int = 2, seed: int = 0) -> Path:
    """Write Products.csv (with bare \\r in unquoted descriptions), Images.csv (CRLF), images/."""
    root.mkdir(parents=True)
    (root / "images").mkdir()
    products, images = [HEADER], [",id,product_id,bucket_link,image_ref,create_time\r\n"]
    k = 0
    for i in range(n_listings):
        listing_id = f"listing-{i:03d}"
        cat = ROOTS[i % len(ROOTS)]
        # The real file's trap: a bare carriage return inside an unquoted description.
        products.append(_row(i, listing_id, cat, f"Line one\rline two of {i}", f"\"£{i},250.00\""))
        for j in range(photos_per_listing):
            image_id = f"img-{i:03d}-{j}"
            images.append(f"{k},{image_id},{listing_id},link,ref,2022-02-26\r\n")
            colour = [(200, 30, 30), (30, 200, 30), (30, 30, 200)][i % 3]
            photo(colour, seed=seed + k).save(root / "images" / f"{image_id}.jpg", quality=90)
            k += 1
    (root / "Products.csv").write_text("".join(products), newline="")
    (root / "Images.csv").write_text("".join(images), newline="")
    return root


def copy_artifacts(src: Path, dst: Path) -> Path:
    """``shutil.copytree(src, dst)``, but the SQLite store is copied through SQLite's backup API.

    Copying a live WAL database file by file opens and closes it in this process, and closing any
    descriptor of a file drops every POSIX lock the process holds on it. A served engine of this
    process (a session fixture over ``src``) then looks absent to the next process that opens the
    store; that process resets the shared-memory index this one has mapped, and the test run dies
    of SIGBUS. SQLite's own connections keep the descriptors open while another holds a lock."""
    import shutil
    import sqlite3
    from contextlib import closing

    from listing_search import schema as S

    src, dst = Path(src), Path(dst)
    def store_files(folder: str, names: list[str]) -> list[str]:  # the top-level store only
        return [n for n in names if n.startswith(S.STORE_DB)] if Path(folder) == src else []

    shutil.copytree(src, dst, ignore=store_files)
    if (src / S.STORE_DB).is_file():
        with closing(sqlite3.connect(src / S.STORE_DB)) as a, closing(sqlite3.connect(dst / S.STORE_DB)) as b:
            a.backup(b)
    return dst


# Readable titles for the tiny catalogues of the page's and the alerts' tests.
READABLE_TITLES = ("Oak dining table", "Red mountain bike", "Gaming laptop", "Leather sofa", "Kids bike helmet",
                   "Office desk lamp", "Garden bench", "Electric kettle", "Tennis racket", "Bookshelf in pine")


class WordHashEncoder:
    """Words hashed into buckets, unit rows: a torch-free stand-in for MiniLM so typed queries work (deterministic)."""

    dim = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
