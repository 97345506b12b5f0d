"""End-to-end tests of the web page: the real server on 127.0.0.1, driven by headless Chromium.

Skipped with the reason when Playwright or a Chromium binary is missing (``make test`` installs
Debian's Chromium first). Screenshots land in ``test-artifacts/web/``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import jpeg_bytes, photo

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 10_000


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium binary (run scripts/install_browser.sh, or set CHROMIUM=/path)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means "no usable browser here"
            pytest.skip(f"Chromium at {executable} would not start: {exc}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    if "WEB_TEST_BASE_URL" in os.environ:  # a server already running (development)
        yield os.environ["WEB_TEST_BASE_URL"]
        return
    pytest.importorskip("listing_search.serve.app", reason="the serving app is not built yet")
    pytest.skip("the serving app's test fixtures are not wired in yet")


@pytest.fixture
def page(browser, base_url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto("/")
    pg.wait_for_selector("body[data-ready=true]")
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"))


def search_text(pg, text: str) -> None:
    pg.fill("#q", text)
    pg.press("#q", "Enter")
    wait_results(pg)


def wait_results(pg) -> None:
    pg.wait_for_selector("#results[aria-busy=false] #results-list .card")


def cards(pg, list_id: str = "results-list") -> list[dict]:
    return pg.eval_on_selector_all(
        f"#{list_id} article",
        """els => els.map(a => ({
            id: a.dataset.listingId,
            title: a.querySelector('.title').textContent,
            price: a.querySelector('.price').textContent,
            value: a.dataset.price === undefined ? null : Number(a.dataset.price),
            location: a.querySelector('.location').textContent,
            category: a.querySelector('.category').textContent,
            score: a.querySelector('.score')?.textContent ?? null,
            img: a.querySelector('img')?.naturalWidth ?? 0,
        }))""",
    )


def test_text_search_shows_ranked_cards(page) -> None:
    options = page.eval_on_selector_all("#category option", "os => os.map(o => o.value)")
    assert len(options) > 1, "the category select was not filled from the API"

    search_text(page, "item")
    found = cards(page)
    assert found, "no result cards"
    for c in found:
        assert c["title"] and c["location"] and c["category"]
        assert c["price"].startswith("£") or c["price"] in ("Free", "Price not given")
        assert re.fullmatch(r"match -?\d+\.\d\d", c["score"] or ""), c
    scores = [float(c["score"].split()[1]) for c in found]
    assert scores == sorted(scores, reverse=True), "results are not best first"
    # Photos load lazily: those of the first row, on screen, must have loaded.
    page.wait_for_function("[...document.querySelectorAll('#results-list img')].slice(0, 3)"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert "q=item" in page.url, "the query is not kept in the address"
    shot(page, "01-text-search")


def test_photo_upload_searches_by_photo(page) -> None:
    page.set_input_files("#photo", files=[{"name": "red.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg_bytes(photo((200, 30, 30), seed=99))}])
    wait_results(page)
    assert page.is_visible("#photo-preview")
    assert page.text_content("#photo-name") == "red.jpg"
    assert cards(page)
    shot(page, "02-photo-search")

    page.click("#photo-clear")
    assert page.is_hidden("#photo-preview")


def test_drop_and_paste_a_photo(page) -> None:
    data = list(jpeg_bytes(photo((30, 200, 30), seed=5)))
    for event in ("drop", "paste"):
        page.evaluate(
            """([bytes, event]) => {
                const file = new File([new Uint8Array(bytes)], event + '.jpg', {type: 'image/jpeg'});
                const dt = new DataTransfer();
                dt.items.add(file);
                if (event === 'drop') {
                    document.getElementById('dropzone').dispatchEvent(
                        new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
                } else {
                    document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
                }
            }""",
            [data, event],
        )
        wait_results(page)
        assert page.text_content("#photo-name") == f"{event}.jpg"
        assert cards(page)


def test_filters_limit_results(page) -> None:
    search_text(page, "item")
    category = cards(page)[0]["category"]
    page.select_option("#category", category)  # a change of category searches again
    wait_results(page)
    assert {c["category"] for c in cards(page)} == {category}

    all_prices = sorted(c["value"] for c in cards(page))
    cap = all_prices[len(all_prices) // 2]
    page.fill("#price-max", str(cap))
    page.click("#search-button")
    wait_results(page)
    prices = [c["value"] for c in cards(page)]
    assert prices and max(prices) <= cap
    shot(page, "03-filters")


def test_open_listing_shows_photos_and_more_like_this(page) -> None:
    search_text(page, "item")
    first = cards(page)[0]
    page.click("#results-list article >> nth=0")
    page.wait_for_selector("#listing-dialog[open]")
    page.wait_for_selector("#similar-list .card")
    assert page.text_content("#listing-title") == first["title"]
    assert page.locator("#listing-photos img").count() >= 1
    similar = cards(page, "similar-list")
    assert similar and first["id"] not in {c["id"] for c in similar}
    page.wait_for_function("[...document.querySelectorAll('#listing-photos img')].every(i => i.complete && i.naturalWidth)")
    shot(page, "04-listing")

    page.keyboard.press("Escape")
    page.wait_for_selector("#listing-dialog", state="hidden")

    # Keyboard only: Tab to a card, Enter opens it; a similar listing opens in place.
    page.focus("#results-list article >> nth=1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#listing-dialog[open] #similar-list .card")
    assert page.text_content("#listing-title") == cards(page)[1]["title"]
    other = cards(page, "similar-list")[0]
    page.focus("#similar-list article >> nth=0")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.getElementById('listing-dialog').dataset.listingId === {other['id']!r}")
    history = page.evaluate("JSON.parse(localStorage.getItem('listing-search.history'))")
    assert [h["listing_id"] for h in history][-3:] == [first["id"], cards(page)[1]["id"], other["id"]]
    assert all(h["event"] == "view" and h["timestamp"] for h in history)


def test_bad_upload_shows_the_api_reason(page, base_url: str) -> None:
    junk = b"this is not a photo at all"
    expected = httpx.post(f"{base_url}/v1/search", files={"image": ("notes.jpg", junk, "image/jpeg")},
                          data={"k": "5"})
    assert 400 <= expected.status_code < 500
    reason = expected.json()["detail"]
    page.set_input_files("#photo", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": junk}])
    page.wait_for_selector("#error:not([hidden])")
    assert reason in page.text_content("#error")
    shot(page, "05-bad-upload")


def test_for_you_row_hides_when_recommend_fails(page) -> None:
    page.evaluate("""localStorage.setItem('listing-search.history',
        JSON.stringify([{listing_id: 'x', event: 'view', timestamp: new Date().toISOString()}]))""")
    page.route("**/v1/recommend", lambda route: route.fulfill(status=500, body="{}"))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_hidden("#for-you")
    assert page.is_hidden("#error")


def test_phone_width_is_two_columns_without_sideways_scroll(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    search_text(page, "item")
    columns = page.eval_on_selector("#results-list", "el => getComputedStyle(el).gridTemplateColumns.split(' ').length")
    assert columns == 2
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "06-phone")
