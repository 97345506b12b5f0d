"""Screenshots of the web page for the docs: a photo search (desktop and phone), a listing's own page,
its photo full screen (phone), the recommendations with the history panel, and the Saved page.

Usage (with the server running, e.g. ``listing-search serve --artifacts artifacts``):

    .venv/bin/python scripts/web_screenshots.py --url http://127.0.0.1:8000 \\
        --photo ../shared/data/fb_marketplace/images/<id>.jpg --text "" --out docs

Writes into OUT: screenshot-search.png (1280 px wide), screenshot-phone.png (390 px),
screenshot-gallery.png (on the phone, the first result's first photo full screen),
screenshot-listing.png (the first result's page), screenshot-for-you.png (after viewing and saving two
results: "Recommended for you" with its reasons, and the history panel open) and screenshot-saved.png
(the Saved page with those two), each reduced to a 256-colour palette when over ``--max-kb``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP, PHONE = {"width": 1280, "height": 1000}, {"width": 390, "height": 844}
WAIT_MS = 60_000


def images_loaded(page: Page, selector: str, n: int = 8) -> None:
    # A function, not an expression: Playwright evals an expression, which the page's CSP refuses.
    page.wait_for_function(f"() => [...document.querySelectorAll({selector!r})].slice(0, {n}).every(i => i.complete)",
                           timeout=WAIT_MS)


def search(page: Page, url: str, photo: Path, text: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    if text:
        page.fill("#q", text)
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#results[aria-busy=false] #results-list .card", timeout=WAIT_MS)
    images_loaded(page, "#results-list img")
    page.wait_for_timeout(300)


def open_result(page: Page, nth: int, on_screen: bool = True) -> None:
    """The nth result's own page, with its photos and "More like this" loaded; on a phone
    (``on_screen`` false) only the first photo, the others being lazy and off screen."""
    page.click(f"#results-list article >> nth={nth}")
    page.wait_for_selector("#listing-view[data-listing-id] #similar-list .card", timeout=WAIT_MS)
    images_loaded(page, "#listing-photos img", 3 if on_screen else 1)
    if on_screen:
        images_loaded(page, "#similar-list img")
    page.wait_for_timeout(300)


def full_screen(page: Page) -> None:
    """The open listing's first photo in the full-screen viewer."""
    page.click("#listing-photos button >> nth=0")
    page.wait_for_function("() => { const i = document.getElementById('viewer-img');"
                           " return document.getElementById('viewer').open && i.complete && i.naturalWidth > 0; }",
                           timeout=WAIT_MS)
    page.wait_for_timeout(300)


def save(page: Page) -> None:
    """Press Save on the open listing's page."""
    page.click("#like[aria-pressed=false]")
    page.wait_for_selector("#like[aria-pressed=true]")


def saved_page(page: Page) -> None:
    """The Saved page, its cards' photos loaded."""
    page.click("#saved-link")
    page.wait_for_selector("#saved-view:not([hidden]) #saved-list .card", timeout=WAIT_MS)
    images_loaded(page, "#saved-list img")
    page.wait_for_timeout(300)


def another_title(page: Page) -> int:
    """The first result whose title differs from the first's (catalogues hold near-duplicate listings)."""
    titles = page.eval_on_selector_all("#results-list .card-link", "ls => ls.map(l => l.textContent)")
    return next((i for i, t in enumerate(titles) if t != titles[0]), 1)


def for_you(page: Page, url: str) -> None:
    """The search page after some viewing: the recommendations and the history panel, open."""
    page.goto(url + "/")
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card", timeout=WAIT_MS)
    page.eval_on_selector("#filters-box", "d => { d.open = false; }")  # room for the row's reasons
    page.click("#history-box summary")
    images_loaded(page, "#for-you-list img")
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
    ap.add_argument("--max-kb", type=int, default=250)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        phone = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        search(phone, a.url, a.photo, a.text)
        save_small(phone.screenshot(), a.out / "screenshot-phone.png", a.max_kb)
        open_result(phone, 0, on_screen=False)
        full_screen(phone)
        save_small(phone.screenshot(), a.out / "screenshot-gallery.png", a.max_kb)
        phone.close()

        page = browser.new_page(viewport=DESKTOP)  # one page: the listings viewed make its history
        search(page, a.url, a.photo, a.text)
        save_small(page.screenshot(), a.out / "screenshot-search.png", a.max_kb)
        open_result(page, 0)
        save_small(page.screenshot(), a.out / "screenshot-listing.png", a.max_kb)
        save(page)
        page.go_back()
        page.wait_for_selector("#search-view:not([hidden]) #results-list .card")
        open_result(page, another_title(page))
        save(page)
        for_you(page, a.url)
        save_small(page.screenshot(), a.out / "screenshot-for-you.png", a.max_kb)
        saved_page(page)
        save_small(page.screenshot(), a.out / "screenshot-saved.png", a.max_kb)
        browser.close()


if __name__ == "__main__":
    main()
