"""Screenshots of the web page for the docs: a photo search (desktop and phone), a listing's own page,
its photo full screen (phone), the recommendations with the history panel, the Saved page, and the
suggestions while typing, the facets with their counts, and the words searched marked in the cards.

Usage (with the server running, e.g. ``listing-search serve --artifacts artifacts``):

    .venv/bin/python scripts/web_screenshots.py --url http://127.0.0.1:8000 \\
        --photo ../shared/data/fb_marketplace/images/<id>.jpg --text "" --out docs

Writes into OUT: screenshot-search.png (1280 px wide), screenshot-phone.png (390 px),
screenshot-gallery.png (on the phone, the first result's first photo full screen),
screenshot-listing.png (the first result's page), screenshot-for-you.png (after viewing and saving two
results: "Recommended for you" with its reasons, and the history panel open) and screenshot-saved.png
(the Saved page with those two); screenshot-suggestions.png (desktop: ``--typed`` typed, the second
suggestion active), screenshot-facets.png (desktop: ``--words`` searched, the category with most
listings chosen, its subcategories and the price bands counted beside the cards, the words marked) and
screenshot-highlights.png (phone: ``--marked`` searched, words marked in titles and snippets, dates).
Each is reduced to a 256-colour palette when over ``--max-kb``. ``--only`` takes some of them (no
``--photo`` is needed for the last three).
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


def suggestions(page: Page, url: str, typed: str) -> None:
    """``typed`` typed into the search box as a buyer types it; the list open, its second option active."""
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#q").press_sequentially(typed, delay=80)
    page.wait_for_selector("#suggestions:not([hidden]) [role=option] >> nth=2", timeout=WAIT_MS)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)


def words_search(page: Page, url: str, words: str) -> None:
    """``words`` searched with Enter, the first cards' photos loaded."""
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#q", words)
    page.press("#q", "Enter")
    page.wait_for_selector("#results[aria-busy=false] #results-list .card", timeout=WAIT_MS)
    images_loaded(page, "#results-list img")


def facets(page: Page, url: str, words: str) -> None:
    """A search for ``words`` narrowed to the category holding most of them: the facets beside the cards."""
    words_search(page, url, words)
    top = page.locator("#facet-category > li > button >> nth=1")  # after "All categories"
    top.click()
    page.wait_for_function("() => document.getElementById('facet-category').querySelector('.facet-children')",
                           timeout=WAIT_MS)
    page.wait_for_selector("#results[aria-busy=false] #results-list .card", timeout=WAIT_MS)
    page.eval_on_selector("#filters-box", "d => { d.open = false; }")  # room for the cards
    page.mouse.move(0, 0)  # no hover left on the value the reflow moved under the pointer
    images_loaded(page, "#results-list img")
    page.evaluate("() => window.scrollTo(0, document.getElementById('results').offsetTop - 8)")
    page.wait_for_timeout(300)


def highlights(page: Page, url: str, words: str) -> None:
    """A search for ``words`` on a phone, scrolled to its results: the count, the facets' strip, the
    words marked in titles and snippets, the dates."""
    words_search(page, url, words)
    page.evaluate("() => window.scrollTo(0, document.getElementById('results').offsetTop - 8)")
    images_loaded(page, "#results-list img", 4)
    page.wait_for_timeout(300)


def save_small(png: bytes, path: Path, max_kb: int) -> None:
    img = Image.open(io.BytesIO(png))
    if len(png) > max_kb * 1024:
        img = img.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    img.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


SHOTS = ("phone", "gallery", "search", "listing", "for-you", "saved", "suggestions", "facets", "highlights")
PHOTO_SHOTS = SHOTS[:6]  # a photo search and what follows it


def photo_search_shots(browser, a: argparse.Namespace) -> None:
    """The six screenshots of a photo search and what follows it, taken together (each step leads to
    the next); those ``--only`` leaves out are not saved."""
    def keep(name: str, page: Page) -> None:
        if name in a.only:
            save_small(page.screenshot(), a.out / f"screenshot-{name}.png", a.max_kb)

    phone = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    search(phone, a.url, a.photo, a.text)
    keep("phone", phone)
    open_result(phone, 0, on_screen=False)
    full_screen(phone)
    keep("gallery", phone)
    phone.close()

    page = browser.new_page(viewport=DESKTOP)  # one page: the listings viewed make its history
    search(page, a.url, a.photo, a.text)
    keep("search", page)
    open_result(page, 0)
    keep("listing", page)
    save(page)
    page.go_back()
    page.wait_for_selector("#search-view:not([hidden]) #results-list .card")
    open_result(page, another_title(page))
    save(page)
    for_you(page, a.url)
    keep("for-you", page)
    saved_page(page)
    keep("saved", page)
    page.close()


def search_page_shots(browser, a: argparse.Namespace) -> None:
    """Suggestions, facets (desktop) and the marked words (phone), each from a fresh page."""
    takes = {"suggestions": (DESKTOP, lambda pg: suggestions(pg, a.url, a.typed)),
             "facets": (DESKTOP, lambda pg: facets(pg, a.url, a.words)),
             "highlights": (PHONE, lambda pg: highlights(pg, a.url, a.marked))}
    for name, (viewport, take) in takes.items():
        if name not in a.only:
            continue
        phone = viewport is PHONE
        page = browser.new_page(viewport=viewport, device_scale_factor=2 if phone else 1, is_mobile=phone,
                                has_touch=phone)
        take(page)
        save_small(page.screenshot(), a.out / f"screenshot-{name}.png", a.max_kb)
        page.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--photo", type=Path, help="the photo searched with (for the first six screenshots)")
    ap.add_argument("--text", default="")
    ap.add_argument("--typed", default="garden", help="typed for the suggestions")
    ap.add_argument("--words", default="sofa", help="searched for the facets")
    ap.add_argument("--marked", default="garden table", help="searched for the marked words")
    ap.add_argument("--only", nargs="+", choices=SHOTS, default=list(SHOTS), help="take only these")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--max-kb", type=int, default=250)
    a = ap.parse_args()
    wants_photo = [s for s in a.only if s in PHOTO_SHOTS]
    if wants_photo and a.photo is None:
        ap.error(f"--photo is needed for {', '.join(wants_photo)}")
    a.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        if wants_photo:
            photo_search_shots(browser, a)
        search_page_shots(browser, a)
        browser.close()


if __name__ == "__main__":
    main()
