"""Standardise photos: square, letterboxed, RGB JPEG of a fixed size, written atomically.

Handles what real uploads contain: PNG data behind a ``.jpg`` name, RGBA / LA / palette with
transparency (composited on white), greyscale, 16-bit and CMYK modes, EXIF rotation, truncated or
corrupt files, and decompression bombs. Each photo's outcome is a status string so the caller can
count failures by reason; nothing is dropped silently.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from listing_search.pipeline import atomic_write_bytes

if TYPE_CHECKING:
    from listing_search.distributed.runner import Runner

log = logging.getLogger(__name__)

OK, SKIPPED = "ok", "skipped"
MISSING, UNREADABLE, CORRUPT, TOO_LARGE = "file_missing", "not_an_image", "corrupt_or_truncated", "too_large"


class ImageRejected(ValueError):
    """A photo that cannot be used; ``reason`` is one of the status strings above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def open_image(data: bytes | Path, max_pixels: int, draft_to: int | None = None) -> Image.Image:
    """Decode fully (so truncation is found now), refusing decompression bombs.

    ``draft_to`` lets the JPEG decoder skip detail below that size, which makes big photos cheap.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(src)
            if img.width * img.height > max_pixels:
                raise ImageRejected(TOO_LARGE, f"{img.width}x{img.height} exceeds {max_pixels} pixels")
            if draft_to and img.format == "JPEG":
                img.draft("RGB", (draft_to, draft_to))
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(TOO_LARGE, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(UNREADABLE, "not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(CORRUPT, str(exc) or type(exc).__name__) from exc
    return img


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
    data: bytes | Path, size: int, max_pixels: int, fill: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """Any photo -> ``size``x``size`` RGB, letterboxed. Raises :class:`ImageRejected`."""
    img = open_image(data, max_pixels, draft_to=size)
    return letterbox(to_rgb(img), size, fill)


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
    if _is_done(job.dest, job.size):
        return SKIPPED
    if not job.src.is_file():
        return MISSING
    try:
        img = standardise(job.src, job.size, job.max_pixels, job.fill)
    except ImageRejected as exc:
        return exc.reason
    atomic_write_bytes(job.dest, encode_jpeg(img, job.quality))
    return OK


def _is_done(dest: Path, size: int) -> bool:
    """Written atomically, so an existing file is whole; only its size may be stale."""
    if not dest.is_file():
        return False
    try:
        with Image.open(dest) as im:
            return im.size == (size, size)
    except (OSError, UnidentifiedImageError):
        return False


def run_jobs(jobs: list[PhotoJob], runner: "Runner | None" = None, progress: bool = False) -> list[str]:
    """Statuses in job order, computed by ``runner`` (local processes by default)."""
    from listing_search.distributed.runner import LocalRunner

    statuses = (runner or LocalRunner()).map(run_job, jobs, progress)
    log.info("photos: %s", dict(Counter(statuses)))
    return statuses
