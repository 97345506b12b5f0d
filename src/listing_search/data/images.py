"""Standardise photos: square, letterboxed, RGB JPEG of a fixed size, written atomically.

Handles what real uploads contain: PNG data behind a ``.jpg`` name, RGBA / LA / palette with
transparency (composited on white), greyscale, 16-bit and CMYK modes, EXIF rotation, truncated or
corrupt files, and decompression bombs. Each photo's outcome is a status string so the caller can
count failures by reason; nothing is dropped silently.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from listing_search.pipeline import atomic_write_bytes

if TYPE_CHECKING:
    from listing_search.distributed.runner import Runner
    from listing_search.distributed.shards import Shard, ShardOutputs
    from listing_search.store.blobs import BlobStore

log = logging.getLogger(__name__)

OK, SKIPPED = "ok", "skipped"
MISSING, UNREADABLE, CORRUPT, TOO_LARGE = "file_missing", "not_an_image", "corrupt_or_truncated", "too_large"
ELONGATED = "too_elongated"


class ImageRejected(ValueError):
    """A photo that cannot be used; ``reason`` is one of the status strings above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# Formats uploads may use (JPEG includes MPO); anything else (EPS runs Ghostscript) is refused unread.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
JPEG_FORMATS = ("JPEG", "MPO")
# Longest side over shortest side, at most. Real listing photos are at most 1:2.3 and phone panoramas
# about 1:10; a 1 x 39,000,000 PNG (76 KB) is an attack: Pillow keeps an 8-byte pointer per row, so
# its row table alone took 312 MB, eight times its pixels.
MAX_ASPECT = 20
# Bytes per pixel a decode holds at its peak, by mode: the decoded buffer (RGB is stored 4 bytes a
# pixel) plus the full-size copy made before shrinking, where the mode cannot be box-reduced (palette,
# bilevel and 16-bit become RGB(A), L and I first) or Pillow reduces through a premultiplied copy
# (RGBA, LA). Measured per mode (bench/bench_decode_shapes.py); other modes count as 8.
PEAK_PIXEL_BYTES = {"1": 2, "L": 1, "P": 5, "I;16": 6, "I;16B": 6, "I;16L": 6, "I": 4, "F": 4, "RGB": 4,
                    "RGBX": 4, "CMYK": 4, "YCbCr": 4, "LA": 8, "RGBA": 8}
PALETTE_WITH_ALPHA_BYTES = 8  # a palette with transparency becomes RGBA, then its premultiplied copy
ROW_BYTES = 8  # Pillow's pointer to each row
DECODER_ROW_BYTES = 32  # raw rows a decoder holds (PNG: this and the previous one, up to 8 bytes a pixel)
WEBP_CANVAS_BYTES = 12  # libwebp's animation decoder keeps RGBA canvases of its own (measured 16 in all)
SMALL_STEPS_BYTES = 12 * 2**20  # the shrunk copies, letterbox, JPEG and model input after the big decode
# Modes Image.reduce averages correctly (not palettes, bilevel or 16-bit).
REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F")


@dataclass(frozen=True)
class Photo:
    """A photo whose header is read and checked, pixels not yet decoded.

    ``cost`` is the bytes its decode and standardising will hold at most, so a caller can bound
    decodes in total.
    """

    image: Image.Image
    cost: int


def peek(data: bytes | Path, max_pixels: int, draft_to: int | None = None) -> Photo:
    """Read only the header: refuse over-limit dimensions and shapes before any pixel buffer exists.

    ``draft_to`` makes the JPEG decoder produce a 1/2..1/8 scale image of at least that side, so a big
    JPEG never exists at full size; other formats are decoded whole, which the pixel limit bounds.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with _rejected_as_reasons():
        img = Image.open(src, formats=FORMATS)
        check_dimensions(img.size, max_pixels)
        full = img.size
        if draft_to and img.format in JPEG_FORMATS:
            img.draft("RGB", (draft_to, draft_to))
    return Photo(img, decode_cost(img, full))


def check_dimensions(size: tuple[int, int], max_pixels: int) -> None:
    """``ImageRejected`` for more than ``max_pixels`` pixels (413) or a side over ``MAX_ASPECT`` times
    the other (422): both known from the header alone."""
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(TOO_LARGE, f"{width}x{height} exceeds {max_pixels} pixels")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise ImageRejected(ELONGATED, f"{width}x{height} is longer than {MAX_ASPECT}:1; no photo has that shape")


def decode_cost(img: Image.Image, full: tuple[int, int]) -> int:
    """Bytes the decode and standardising of ``img`` hold at their peak: per pixel by mode (and format),
    per row (Pillow's row table), per column (the decoder's raw rows), plus libjpeg's whole-image
    coefficients for a progressive JPEG."""
    pixels = img.width * img.height
    per_pixel = PEAK_PIXEL_BYTES.get(img.mode, 8)
    if img.mode == "P" and "transparency" in img.info:
        per_pixel = PALETTE_WITH_ALPHA_BYTES
    if img.format == "WEBP":
        per_pixel += WEBP_CANVAS_BYTES
    cost = pixels * per_pixel + img.height * ROW_BYTES + full[0] * DECODER_ROW_BYTES + SMALL_STEPS_BYTES
    if img.format in JPEG_FORMATS and img.info.get("progressive"):
        cost += full[0] * full[1] * 6  # 64 16-bit coefficients per 8x8 block, 3 full-size components
    return cost


def decode(img: Image.Image) -> Image.Image:
    """Decode the pixels now, so truncation and corruption are found here, as ``ImageRejected``."""
    with _rejected_as_reasons():
        img.load()
    return img


def open_image(data: bytes | Path, max_pixels: int, draft_to: int | None = None) -> Image.Image:
    """Decode fully (so truncation is found now), refusing decompression bombs by their header."""
    return decode(peek(data, max_pixels, draft_to).image)


@contextmanager
def _rejected_as_reasons() -> Iterator[None]:
    """Pillow's many exceptions -> one ``ImageRejected`` with the status a caller can count."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(TOO_LARGE, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(UNREADABLE, "not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(CORRUPT, str(exc) or type(exc).__name__) from exc


def shrink(img: Image.Image, size: int) -> Image.Image:
    """Box-reduce by an integer factor to at least twice ``size`` before any rotation or conversion to
    RGB, so the copies those make are small; LANCZOS from 2x the target looks the same as from full size.

    A mode that cannot be box-reduced is first converted to one that can (palette to RGB or RGBA,
    bilevel to L, 16-bit to I), and ``img`` is closed then, freeing its pixels before the reduction:
    the caller must not use ``img`` after a call that returned another image."""
    factor = max(img.size) // (2 * size)
    if factor < 2:
        return img
    if img.mode not in REDUCIBLE:
        converted = img.convert(reducible_mode(img))
        img.close()
        img = converted
    return img.reduce(factor)


def reducible_mode(img: Image.Image) -> str:
    """The mode ``img`` is box-reduced in: its own, or the nearest one ``Image.reduce`` averages correctly."""
    if img.mode in REDUCIBLE:
        return img.mode
    if img.mode == "1":
        return "L"
    if img.mode.startswith("I;16"):
        return "I"
    if img.mode in ("PA", "La") or (img.mode == "P" and "transparency" in img.info):
        return "RGBA"
    return "RGB"


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Apply EXIF rotation and bring any mode to RGB (transparency over ``background``)."""
    img = ImageOps.exif_transpose(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        base = Image.new("RGB", rgba.size, background)
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / peak)).clip(0, 255).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def letterbox(img: Image.Image, size: int, fill: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Fit the longer side to ``size`` keeping the aspect ratio, centred on a square canvas."""
    scale = size / max(img.width, img.height)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    method = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    resized = img.resize(new, method) if new != img.size else img
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(resized, ((size - new[0]) // 2, (size - new[1]) // 2))
    return canvas


def standardise(
    data: bytes | Path, size: int, max_pixels: int, fill: tuple[int, int, int] = (0, 0, 0), enlarge: bool = True
) -> Image.Image:
    """Any photo -> ``size``x``size`` RGB, letterboxed. Raises :class:`ImageRejected`.

    ``enlarge=False`` (the stored catalogue photos): a photo smaller than ``size`` keeps its own longer
    side, so no pixels are invented and later decodes stay cheap."""
    return standardise_photo(peek(data, max_pixels, draft_to=size), size, fill, enlarge)


def standardise_photo(photo: Photo, size: int, fill: tuple[int, int, int] = (0, 0, 0),
                      enlarge: bool = True) -> Image.Image:
    """A peeked photo -> a square RGB of side ``size`` (at most ``size`` without ``enlarge``). The
    full-size decode is freed on return (the photo is closed), not when the caller lets go of
    ``photo``: a waiting batch must not keep big buffers alive."""
    try:
        img = to_rgb(shrink(decode(photo.image), size))
        return letterbox(img, size if enlarge else stored_side(img.size, size), fill)
    finally:
        photo.image.close()


def stored_side(dims: tuple[int, int], size: int) -> int:
    """The side a stored photo of these dimensions gets: ``size``, or its own longer side when smaller."""
    return max(1, min(size, max(dims)))


def encode_jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@dataclass(frozen=True)
class PhotoJob:
    src: Path
    dest: Path
    size: int
    max_pixels: int
    quality: int
    fill: tuple[int, int, int]


def run_job(job: PhotoJob) -> str:
    """Standardise one photo file; returns a status. Never raises for a bad photo."""
    if _is_done(job.src, job.dest, job.size):
        return SKIPPED
    if not job.src.is_file():
        return MISSING
    try:
        img = standardise(job.src, job.size, job.max_pixels, job.fill, enlarge=False)
    except ImageRejected as exc:
        return exc.reason
    atomic_write_bytes(job.dest, encode_jpeg(img, job.quality))
    return OK


def _is_done(src: Path, dest: Path, size: int) -> bool:
    """Written atomically, so an existing file is whole; only its size may be stale: the source's header
    says which side it must have (without the source, any side up to ``size`` is taken as done)."""
    if not dest.is_file():
        return False
    try:
        with Image.open(dest) as im:
            done = im.size
        if not src.is_file():
            return done[0] == done[1] <= size
        with Image.open(src) as original:
            side = stored_side(original.size, size)
        return done == (side, side)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return False


def clean_photos_shard(shard: "Shard", work: "BlobStore") -> "ShardOutputs":
    """A shard of photos: each read from the source by URL, standardised, put into the work area.

    Runs on a cluster worker that shares nothing with the driver but the source and the work area.
    Returns the statuses (one per id, in order) as the shard's output.
    """
    from listing_search.distributed.shards import open_store
    from listing_search.errors import BlobNotFound

    p = shard.params
    source = open_store(p["source"], p["endpoint_url"])
    statuses, read = [], 0
    for image_id in p["ids"]:
        dest = f"{p['dest']}/{image_id}.jpg"
        try:
            data = source.get(f"{p['images']}/{image_id}.jpg")
        except BlobNotFound:
            statuses.append(MISSING)
            continue
        read += len(data)
        try:
            img = standardise(data, p["size"], p["max_pixels"], tuple(p["fill"]), enlarge=False)
        except ImageRejected as exc:
            statuses.append(exc.reason)
            continue
        work.put(dest, encode_jpeg(img, p["quality"]))
        statuses.append(OK)
    return {"statuses.json": json.dumps(statuses).encode()}, {"photos": len(statuses), "bytes_read": read}


def run_jobs(jobs: list[PhotoJob], runner: "Runner | None" = None, progress: bool = False) -> list[str]:
    """Statuses in job order, computed by ``runner`` (local processes by default)."""
    from listing_search.distributed.runner import LocalRunner

    statuses = (runner or LocalRunner()).map(run_job, jobs, progress, desc="prepare photos", unit="photo")
    log.info("photos: %s", ", ".join(f"{n:,} {status}" for status, n in Counter(statuses).most_common()))
    return statuses
