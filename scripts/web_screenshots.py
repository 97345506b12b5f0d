"""Screenshots of the search page for the docs: a photo search on desktop and on a phone.

Usage (with the server running, e.g. ``listing-search serve --artifacts artifacts``):

    .venv/bin/python scripts/web_screenshots.py --url http://127.0.0.1:8000 \\
        --photo ../shared/data/fb_marketplace/images/<id>.jpg --text "" --out docs

Writes OUT/screenshot-search.png (1280 px wide) and OUT/screenshot-phone.png (390 px), each
reduced to a 256-colour palette when over ``--max-kb``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def search(page: Page, url: str, photo: Path, text: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    if text:
        page.fill("#q", text)
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#results[aria-busy=false] #results-list .card", timeout=60_000)
    page.wait_for_function("[...document.querySelectorAll('#results-list img')].slice(0, 8)"
                           ".every(i => i.complete)", timeout=30_000)
    page.wait_for_timeout(300)


def save_small(png: bytes, path: Path, max_kb: int) -> None:
    img = Image.open(io.BytesIO(png))
    if len(png) > max_kb * 1024:
        img = img.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    img.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--photo", type=Path, required=True)
    ap.add_argument("--text", default="")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--max-kb", type=int, default=450)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        for name, viewport in (("screenshot-search.png", {"width": 1280, "height": 1000}),
                               ("screenshot-phone.png", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            search(page, a.url, a.photo, a.text)
            save_small(page.screenshot(), a.out / name, a.max_kb)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
