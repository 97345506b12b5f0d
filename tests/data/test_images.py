"""Each kind of bad or awkward photo that real uploads contain, made with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from listing_search.data import images as img
from tests.factories import jpeg_bytes, photo

SIZE = 64
MAX_PIXELS = 10_000_000


def _std(data: bytes) -> Image.Image:
    out = img.standardise(data, SIZE, MAX_PIXELS)
    assert out.mode == "RGB" and out.size == (SIZE, SIZE)
    return out


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_wide_photo_is_letterboxed_with_black_bars() -> None:
    out = np.asarray(_std(jpeg_bytes(photo((250, 250, 250), size=(200, 100)))))
    assert out[:10].max() < 10 and out[-10:].max() < 10  # bars top and bottom
    assert out[SIZE // 2].mean() > 200  # the photo in the middle


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "CMYK", "P", "I;16"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    base = photo((120, 60, 200), size=(50, 40))
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 200).convert("I;16")
    else:
        converted = base.convert(mode)
    data = _png(converted) if mode in ("RGBA", "LA", "P", "I;16") else jpeg_bytes(converted)
    _std(data)


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    out = np.asarray(_std(_png(rgba)))
    assert out[SIZE // 2, SIZE // 2].min() > 240


def test_png_data_behind_jpg_name(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_png(photo((10, 200, 10))))
    out = img.standardise(path, SIZE, MAX_PIXELS)
    assert out.size == (SIZE, SIZE)


def test_exif_rotation_is_applied() -> None:
    tall = photo((200, 200, 200), size=(40, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display: the photo is really wide
    out = np.asarray(_std(jpeg_bytes(tall, exif=exif.tobytes())))
    assert out[:5].max() < 10, "a wide photo gets bars top and bottom"
    assert out[SIZE // 2, :5].mean() > 150


def test_truncated_jpeg_is_rejected() -> None:
    data = jpeg_bytes(photo((1, 2, 3), size=(300, 300)))
    with pytest.raises(img.ImageRejected) as err:
        img.standardise(data[: len(data) // 2], SIZE, MAX_PIXELS)
    assert err.value.reason == img.CORRUPT


def test_not_an_image_is_rejected() -> None:
    with pytest.raises(img.ImageRejected) as err:
        img.standardise(b"definitely not a photo", SIZE, MAX_PIXELS)
    assert err.value.reason == img.UNREADABLE


def test_decompression_bomb_is_rejected_before_decoding() -> None:
    data = _png(Image.new("L", (4000, 3000)))  # compresses tiny, decodes to 12 MP
    with pytest.raises(img.ImageRejected) as err:
        img.standardise(data, SIZE, max_pixels=1_000_000)
    assert err.value.reason == img.TOO_LARGE


def test_jobs_report_each_reason_and_skip_done_work(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "good.jpg").write_bytes(jpeg_bytes(photo((9, 9, 9))))
    (src / "bad.jpg").write_bytes(b"nope")
    jobs = [img.PhotoJob(src / f"{n}.jpg", dest / f"{n}.jpg", SIZE, MAX_PIXELS, 90, (0, 0, 0))
            for n in ("good", "bad", "missing")]
    assert img.run_jobs(jobs) == [img.OK, img.UNREADABLE, img.MISSING]
    assert sorted(p.name for p in dest.iterdir()) == ["good.jpg"], "no temp or partial files remain"
    assert img.run_jobs(jobs)[0] == img.SKIPPED


def test_stored_photos_are_never_enlarged() -> None:
    small = img.standardise(jpeg_bytes(photo((200, 30, 30), size=(30, 20))), SIZE, MAX_PIXELS, enlarge=False)
    assert small.size == (30, 30)  # letterboxed to its own longer side
    big = img.standardise(jpeg_bytes(photo((200, 30, 30), size=(200, 100))), SIZE, MAX_PIXELS, enlarge=False)
    assert big.size == (SIZE, SIZE)
    assert img.standardise(jpeg_bytes(photo((200, 30, 30), size=(30, 20))), SIZE, MAX_PIXELS).size == (SIZE, SIZE)


def test_a_rerun_skips_photos_whose_stored_side_is_still_right(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jpg", tmp_path / "big.jpg"
    small.write_bytes(jpeg_bytes(photo((10, 10, 200), size=(30, 20))))
    big.write_bytes(jpeg_bytes(photo((10, 10, 200), size=(200, 100))))

    def job(src: Path, size: int) -> img.PhotoJob:
        return img.PhotoJob(src, tmp_path / "out" / src.name, size, MAX_PIXELS, 90, (0, 0, 0))

    assert [img.run_job(job(p, 64)) for p in (small, big)] == [img.OK, img.OK]
    assert [img.run_job(job(p, 64)) for p in (small, big)] == [img.SKIPPED, img.SKIPPED]
    # a smaller size: the 30 px photo still keeps 30, the big one must be redone at 48
    assert [img.run_job(job(p, 48)) for p in (small, big)] == [img.SKIPPED, img.OK]
    with Image.open(tmp_path / "out" / "big.jpg") as done:
        assert done.size == (48, 48)


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1), (21, 441)])
def test_a_photo_longer_than_20_to_1_is_refused_from_its_header(size: tuple[int, int],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 x 39,000,000 PNG cost 334 MB of row pointers for 39 MB of pixels: such shapes are refused unread."""
    data = _png(Image.new("L", size))

    def no_decode(self: Image.Image) -> None:
        raise AssertionError(f"decoded a {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(img.ImageRejected) as err:
        img.peek(data, MAX_PIXELS)
    assert err.value.reason == img.ELONGATED and "20:1" in str(err.value)


def test_a_photo_of_exactly_20_to_1_is_a_photo() -> None:
    assert img.standardise(_png(Image.new("RGB", (20 * 30, 30), (9, 9, 9))), SIZE, MAX_PIXELS).size == (SIZE, SIZE)


def test_cost_counts_rows_columns_and_the_copies_a_mode_needs() -> None:
    """Per row (Pillow's row table), per column (decoder rows), and the full-size copies of palettes with
    transparency (to RGBA, then premultiplied) and 16-bit photos (to 32-bit), not only the buffer."""
    def cost(image: Image.Image, **save) -> int:
        buf = io.BytesIO()
        image.save(buf, format="PNG", **save)
        return img.peek(buf.getvalue(), MAX_PIXELS).cost

    grey, tall = cost(Image.new("L", (400, 400))), cost(Image.new("L", (100, 1600)))
    assert tall - grey == 1200 * img.ROW_BYTES - 300 * img.DECODER_ROW_BYTES
    palette = Image.new("P", (400, 400))
    assert cost(palette, transparency=0) - grey == 400 * 400 * 7
    assert cost(Image.new("I;16", (400, 400))) - grey == 400 * 400 * 5


def test_big_palette_and_16_bit_photos_are_reduced_in_a_reducible_mode() -> None:
    """Converted (then reduced) before becoming RGB: transparency still lands on white, grey levels kept."""
    clear = Image.new("P", (SIZE * 8, SIZE * 8), 0)
    clear.putpalette([10, 20, 30] * 256)
    out = np.asarray(_std(_png_with(clear, transparency=0)))
    assert out.min() >= 250, "a fully transparent palette photo is white"
    shrunk = img.shrink(Image.open(io.BytesIO(_png_with(clear, transparency=0))), SIZE)
    assert shrunk.mode == "RGBA" and shrunk.size == (SIZE * 2, SIZE * 2)
    grey = Image.fromarray(np.full((SIZE * 8, SIZE * 8), 30000, np.uint16))
    assert img.shrink(Image.open(io.BytesIO(_png(grey))), SIZE).mode == "I"
    assert np.asarray(_std(_png(grey))).std() < 1.0, "one grey level stays one"


def _png_with(image: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **save)
    return buf.getvalue()
