"""End-to-end tests of the web page: the real server on 127.0.0.1, driven by headless Chromium.

Skipped with the reason when Playwright or a Chromium binary is missing (``make test`` installs
Debian's Chromium first). Screenshots land in ``test-artifacts/web/``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from PIL import Image

from listing_search.index.build import build_index
from listing_search import schema as S
from listing_search.text.encoder import listing_text
from listing_search.search.engine import SearchEngine
from listing_search.serve.app import create_app
from listing_search.settings import Settings
from tests.factories import jpeg_bytes, photo
from tests.index.tiny_artifacts import make_artifacts
from tests.realparts import need_module, need_part
from tests.serve.conftest import serve_settings
from tests.factories import READABLE_TITLES as TITLES
from tests.factories import WordHashEncoder

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
TIMEOUT_MS = 10_000
RAW_SCORE = re.compile(r"(match|score)\s*-?\d+\.\d+", re.I)  # "match 1.82": what cards used to show







def web_artifacts(root: Path) -> Path:
    """The serving tests' tiny artifacts, with readable titles, and the image index built."""
    make_artifacts(root)
    listings = pd.read_csv(root / "listings.csv", dtype={"listing_id": str})
    listings["title"] = [f"{TITLES[i % len(TITLES)]} {i}" for i in range(len(listings))]
    listings["description"] = [f"{t}, used but in good condition.\nCollect only." for t in listings["title"]]
    listings.to_csv(root / "listings.csv", index=False)
    texts = [listing_text(t, d) for t, d in zip(listings["title"], listings["description"])]
    (root / "text").mkdir(exist_ok=True)
    np.save(root / S.TEXT_EMBEDDINGS_NPY, WordHashEncoder().encode(texts))
    (root / S.TEXT_EMBEDDING_IDS).write_text(json.dumps(listings["listing_id"].tolist()))
    (root / S.TEXT_MODEL_CARD).write_text(json.dumps({"version": "word-hash-v1"}))  # the stand-in's version
    build_index(serve_settings(root), root)
    return root


def engine_with_text(settings: Settings) -> SearchEngine:
    """The engine as served, with the stand-in text encoder that embedded every listing's title and description."""
    return SearchEngine.load(settings, text_encoder=WordHashEncoder())


@pytest.fixture(scope="module")
def served_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return web_artifacts(tmp_path_factory.mktemp("web") / "artifacts")


@pytest.fixture(scope="module")
def base_url(served_artifacts: Path) -> Iterator[str]:
    """The real app under uvicorn on a free port of 127.0.0.1, in a thread of this process."""
    settings = serve_settings(served_artifacts)
    app = create_app(settings, engine=engine_with_text(settings))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


# Every page records what its Content-Security-Policy blocked (an init script runs outside the policy).
WATCH_CSP = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'}`));"""


def csp_violations(pg) -> list[str]:
    return pg.evaluate("() => window.__csp || []")


@contextmanager
def watched_page(browser, base_url: str, **options) -> Iterator:
    """The search page in a new browser context, loaded, with its CSP enforced: a JavaScript error or
    a violation fails the test at the end."""
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(WATCH_CSP)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto("/")
        pg.wait_for_selector("body[data-ready=true]")
        yield pg
        blocked = csp_violations(pg) if not pg.is_closed() else []
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not blocked, f"the Content-Security-Policy blocked: {blocked}"


@pytest.fixture
def page(browser, base_url: str):
    with watched_page(browser, base_url, viewport={"width": 1280, "height": 900}) as pg:
        yield pg


# The two screens every flow of the search page's friction and listing work is tried on.
SCREENS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
              "has_touch": True},
}


@pytest.fixture(params=list(SCREENS))
def screen(request, browser, base_url: str):
    """The search page at desktop 1280×800, then at phone 390×844 (touch), CSP enforced."""
    with watched_page(browser, base_url, **SCREENS[request.param]) as pg:
        yield pg


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
            match: a.querySelector('.match')?.textContent ?? null,
            img: a.querySelector('img')?.naturalWidth ?? 0,
        }))""",
    )


def test_text_search_shows_ranked_cards(page) -> None:
    options = page.eval_on_selector_all("#category option", "os => os.map(o => o.value)")
    assert len(options) > 1, "the category select was not filled from the API"

    search_text(page, "mountain bike")
    found = cards(page)
    assert found, "no result cards"
    assert all("bike" in c["title"] for c in found[:3]), [c["title"] for c in found[:3]]
    for c in found:
        assert c["title"] and c["location"] and c["category"]
        assert c["price"].startswith("£") or c["price"] in ("Free", "Price not given")
        # The test artifacts have no calibration: no graded label and never a raw score; a listing that
        # does not hold all the words is "related" (the API's tier, calibrated or not).
        assert c["match"] in (None, "related"), c
    assert not RAW_SCORE.search(page.inner_text("#results")), "a raw ranker score is on the page"
    assert "“mountain bike”" in page.text_content("#results-summary")
    # Photos load lazily: those of the first row, on screen, must have loaded.
    page.wait_for_function("() => [...document.querySelectorAll('#results-list img')].slice(0, 3)"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert "q=mountain+bike" in page.url, "the query is not kept in the address"
    shot(page, "01-text-search")


def test_photo_upload_searches_by_photo(page, served_artifacts: Path) -> None:
    page.set_input_files("#photo", str(served_artifacts / "images" / "img-007-1.jpg"))
    wait_results(page)
    assert page.is_visible("#photo-preview")
    assert page.text_content("#photo-name") == "Your photo"
    assert cards(page)[0]["id"] == "listing-007", "a catalogue photo should find its own listing first"
    shot(page, "02-photo-search")

    page.get_by_role("button", name="Remove photo").click()
    assert page.is_hidden("#photo-preview")
    # No words left: the photo's results go too, rather than staying under an empty search box.
    page.wait_for_function("() => document.querySelectorAll('#results-list .card').length === 0")
    assert "Type what you are looking for" in page.text_content("#results-summary")


def test_drop_and_paste_a_photo(page) -> None:
    data = list(jpeg_bytes(photo((30, 200, 30), seed=5)))
    for event in ("drop", "paste"):
        sent = sent_search(page, lambda: page.evaluate(
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
        ))
        assert sent["image"] == f"file:{event}.jpg", "the dropped or pasted photo is the one searched with"
        wait_results(page)
        assert page.text_content("#photo-name") == "Your photo"
        assert cards(page)


def test_filters_limit_results(page) -> None:
    search_text(page, "bike table sofa laptop")
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


def test_copies_of_an_ad_and_wanted_ads_on_cards_and_the_ads_filter(page) -> None:
    """A result standing for copies of one ad says "2 similar listings" and opens to a link to each; a
    wanted (buying) ad says so; the ads filter shows the answer's counts, is sent as ``buying`` and is
    kept in the address. The API's answer is the real one with those fields set."""
    copies: list[str] = []

    def answer(route) -> None:
        body = route.fetch().json()
        first, *rest = body["results"]
        copies[:] = [r["id"] for r in rest[:2]]
        first["duplicates"] = {"count": 2, "listing_ids": copies}
        rest[-1]["buying"] = True
        body["facets"]["buying"] = [{"value": False, "count": 7}, {"value": True, "count": 1}]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/search", answer)
    search_text(page, "bike table sofa laptop")
    similar = page.locator("#results-list .card").first.locator("details.similar")
    assert similar.locator("summary").text_content() == "2 similar listings"
    assert page.locator("#results-list .wanted").count() == 1
    assert "buying" in page.locator("#results-list .wanted").text_content()
    assert page.eval_on_selector_all("#buying option", "os => os.map(o => o.textContent)") == \
        ["All ads", "For sale only (7)", "Wanted only (1)"]
    similar.locator("summary").click()
    shot(page, "03b-similar-listings")
    page.get_by_role("link", name="Similar listing 2 of 2").click()
    wait_listing(page, copies[1])
    page.go_back()
    wait_results(page)

    page.unroute("**/v1/search")
    sent = sent_search(page, lambda: page.get_by_label("Ads").select_option("false"))
    assert sent["buying"] == "false"
    wait_results(page)
    assert "buying=false" in page.url and "for sale only" in summary(page)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#buying") == "false", "the ads filter is not restored from the address"
    wait_results(page)


def open_card(pg, list_id: str, nth: int) -> dict:
    """Click a card: its listing's page opens at its own address, loaded."""
    card = cards(pg, list_id)[nth]
    pg.click(f"#{list_id} article >> nth={nth}")
    wait_listing(pg, card["id"])
    return card


def wait_listing(pg, listing_id: str) -> None:
    pg.wait_for_function("id => document.getElementById('listing-view').dataset.listingId === id "
                         "&& !document.getElementById('listing-view').hidden", arg=listing_id)
    assert pg.url.endswith(f"/listing/{listing_id}"), pg.url


def history_in_storage(pg) -> list[dict]:
    return pg.evaluate("JSON.parse(localStorage.getItem('listing-search.history') ?? '[]')")


def test_listing_page_shows_photos_and_more_like_this(page) -> None:
    search_text(page, "bike table sofa laptop")
    results = cards(page)
    first = open_card(page, "results-list", 0)
    assert page.is_hidden("#search-view"), "the listing is a page of its own, not under the results"
    assert page.text_content("#listing-title") == first["title"]
    assert page.title() == f"{first['title']} – Listing search"
    assert page.text_content("#listing-price") == first["price"]
    assert "Sub" in page.text_content("#listing-category"), "the category path is shown"
    assert "used but in good condition" in page.text_content("#listing-description")
    assert page.locator("#listing-photos img").count() >= 1
    page.wait_for_selector("#similar-list .card")
    similar = cards(page, "similar-list")
    assert similar and first["id"] not in {c["id"] for c in similar}
    assert not RAW_SCORE.search(page.inner_text("#similar")), "More like this shows a raw score"
    page.wait_for_function("() => [...document.querySelectorAll('#listing-photos img')].every(i => i.complete && i.naturalWidth)")
    shot(page, "04-listing")

    # Back (the browser's, or the page's link) returns to the results as they were, without searching again.
    searches = requests_to(page, "/v1/search")  # the request event fires when one is sent, not when it ends
    page.go_back()
    page.wait_for_selector("#search-view:not([hidden]) #results-list .card")
    assert [c["id"] for c in cards(page)] == [c["id"] for c in results]
    assert "q=bike+table+sofa+laptop" in page.url and "/listing/" not in page.url
    page.wait_for_timeout(200)
    assert not searches, "going back searched again"

    # A similar listing opens at its own address; its "Back to results" link goes back past both.
    second = open_card(page, "results-list", 1)
    page.wait_for_selector("#similar-list .card")
    other = open_card(page, "similar-list", 0)
    assert page.text_content("#listing-title") == other["title"]
    assert page.text_content("#back-link").strip() == "← Back to results"
    history = history_in_storage(page)
    assert [h["listing_id"] for h in history][-3:] == [first["id"], second["id"], other["id"]]
    assert history[-1]["title"] == other["title"], "the history panel needs the title"
    assert all(h["event"] == "viewed" and abs(h["timestamp"] - time.time()) < 600 for h in history)

    # Save (like) it: a "liked" event; pressing again takes it back.
    assert page.get_attribute("#like", "aria-pressed") == "false"
    page.click("#like")
    assert page.get_attribute("#like", "aria-pressed") == "true"
    history = history_in_storage(page)
    assert history[-1]["event"] == "liked" and history[-1]["listing_id"] == other["id"]
    page.click("#like")
    assert all(h["event"] == "viewed" for h in history_in_storage(page))

    page.click("#back-link")
    page.wait_for_selector("#search-view:not([hidden]) #results-list .card")
    assert "q=bike+table+sofa+laptop" in page.url
    assert [c["id"] for c in cards(page)] == [c["id"] for c in results]


def test_listing_page_at_its_address_reloads_and_says_not_found(page) -> None:
    page.goto("/listing/listing-004")
    wait_listing(page, "listing-004")
    for _ in range(2):  # as opened from a shared link, then reloaded
        assert page.text_content("#listing-title") == f"{TITLES[4]} 4"
        page.wait_for_selector("#similar-list .card")
        assert page.locator("#listing-photos img").count() == 2
        page.wait_for_function("() => [...document.querySelectorAll('#listing-photos img')].every(i => i.complete && i.naturalWidth)")
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        wait_listing(page, "listing-004")
    assert page.text_content("#back-link").strip() == "← Search all listings", "no results to go back to"
    page.click("#back-link")
    page.wait_for_selector("#search-view:not([hidden])")
    assert page.url.rstrip("/") == page.evaluate("location.origin"), page.url
    assert "Type what you are looking for" in summary(page)

    page.goto("/listing/no-such-listing")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#listing-error:not([hidden])")
    assert page.text_content("#listing-title") == "Listing not found"
    assert "There is no listing “no-such-listing”" in page.text_content("#listing-error")
    assert page.is_hidden("#similar") and page.is_hidden("#listing-detail")
    assert page.title() == "Listing not found – Listing search"
    assert "no-such-listing" not in json.dumps(history_in_storage(page)), "a missing listing was remembered"
    shot(page, "04-listing-not-found")

    page.goto("/?q=garden#listing=listing-004")  # a link shared before listings had their own address
    page.wait_for_selector("body[data-ready=true]")
    wait_listing(page, "listing-004")

    page.goto("/listing/%E0")  # a malformed escape: decodeURIComponent throws; the page must still answer
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#listing-error:not([hidden])")
    assert page.text_content("#listing-title") == "Listing not found"


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


def test_for_you_row_follows_browsing_history(page, base_url: str) -> None:
    assert page.is_hidden("#for-you"), "no history yet: no row"
    search_text(page, "mountain bike")
    seen_id = open_card(page, "results-list", 0)["id"]
    page.go_back()
    history = page.evaluate("localStorage.getItem('listing-search.history')")
    probe = httpx.post(f"{base_url}/v1/recommend", json={"history": json.loads(history), "k": 12})
    if probe.status_code in (404, 405):
        page.wait_for_timeout(300)
        assert page.is_hidden("#for-you"), "the row must stay hidden while /v1/recommend is absent"
        assert page.is_hidden("#error")
        return
    assert probe.status_code == 200, probe.text
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")
    feed = cards(page, "for-you-list")
    assert seen_id not in {c["id"] for c in feed}, "a listing already seen is not recommended"
    shot(page, "07-for-you")

    # Searches carry the history too (the API leans results towards it).
    with page.expect_request("**/v1/search") as request:
        search_text(page, "garden bench")
    assert seen_id in (request.value.post_data or "")
    assert page.is_hidden("#error")


def test_for_you_row_hides_when_recommend_fails(page) -> None:
    page.evaluate("""localStorage.setItem('listing-search.history',
        JSON.stringify([{listing_id: 'listing-001', event: 'viewed', timestamp: Date.now() / 1000}]))""")
    page.route("**/v1/recommend", lambda route: route.fulfill(status=500, body="{}"))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_hidden("#for-you")
    assert page.is_hidden("#error")


def test_history_the_api_would_refuse_is_left_out_not_sent(page) -> None:
    """Storage written by an older page or another tab (unknown event, bad or future time) must not
    make every search answer 422: those entries are dropped or sent without their time."""
    page.evaluate("""localStorage.setItem('listing-search.history', JSON.stringify([
        {listing_id: 'listing-002', event: 'clicked', timestamp: 1700000000},
        {listing_id: 'listing-003', event: 'viewed', timestamp: 'yesterday'},
        {listing_id: 'listing-001', event: 'viewed', timestamp: Date.now() / 1000 + 86400 * 365}]))""")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    with page.expect_request("**/v1/search") as request:
        search_text(page, "mountain bike")
    lines = [f for f in (request.value.post_data or "").split("\r\n") if f.startswith("[")]
    assert len(lines) == 1, request.value.post_data
    assert json.loads(lines[0]) == [{"listing_id": "listing-001", "event": "viewed"}]
    assert page.is_hidden("#error")
    assert cards(page), "the search answered"


def test_phone_width_is_two_columns_without_sideways_scroll(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert not page.eval_on_selector("#filters-box", "d => d.open"), "filters should start folded on a phone"
    search_text(page, "bike table sofa laptop")
    columns = page.eval_on_selector("#results-list", "el => getComputedStyle(el).gridTemplateColumns.split(' ').length")
    assert columns == 2
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "06-phone")


@pytest.mark.parametrize(("path", "title"), [("/docs", "listing-search - Swagger UI"), ("/redoc", "listing-search - ReDoc")])
def test_api_docs_work_without_network(browser, base_url: str, path: str, title: str) -> None:
    """Every request not to 127.0.0.1 is aborted, as on a machine without internet: the docs still
    render the endpoints, because their scripts and styles come from the server itself (ReDoc's
    "powered by" logo, an image, is the one thing left to the network). Their CSP is enforced, with
    no 'unsafe-inline' for scripts: nothing they need is blocked."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    blocked: list[str] = []

    def loopback_only(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            if route.request.resource_type != "image":
                blocked.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    context.add_init_script(WATCH_CSP)
    pg = context.new_page()
    try:
        response = pg.goto(path)
        assert "'unsafe-inline'" not in script_src(response.headers["content-security-policy"])
        pg.wait_for_function("() => document.body.innerText.includes('Search listings by photo and/or text')")
        assert pg.title() == title  # an operation's summary is rendered: the endpoint list is there
        assert "/v1/search" in pg.inner_text("body")
        violations = csp_violations(pg)
        shot(pg, f"08-offline{path.replace('/', '-')}")
    finally:
        context.close()
    assert not blocked, f"the docs need the network for {blocked}"
    # ReDoc's "powered by" logo is an image on its CDN: the docs' CSP keeps images on this server.
    assert [v for v in violations if "cdn.redoc.ly" not in v] == [], f"the CSP blocked: {violations}"


def script_src(csp: str) -> str:
    return next(d for d in csp.split(";") if d.strip().startswith("script-src"))


def test_the_page_runs_no_inline_script_and_refuses_a_cross_origin_frame(page, browser, base_url: str) -> None:
    """The CSP is enforced: a script element written into the page does not run; another site that
    frames the page (clickjacking on Save and Clear history) gets an empty frame."""
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                  " document.body.append(s); }")
    assert page.evaluate("() => window.__ran") is None
    assert any(v.startswith("script-src") for v in csp_violations(page))
    page.evaluate("() => { window.__csp = []; }")  # seen: the fixture checks nothing else was blocked

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    html = f'<iframe id="f" src="{base_url}/" width="800" height="600"></iframe>'
    try:
        with other_site(html) as other:
            framing = context.new_page()
            framing.goto(other)
            framing.wait_for_load_state("load")  # the frame's load ends too, refused or not
            (child,) = framing.main_frame.child_frames
            assert not child.url.startswith(base_url), f"the page rendered inside another site's frame: {child.url}"
    finally:
        context.close()


@contextmanager
def other_site(html: str) -> Iterator[str]:
    """Another origin (another port of 127.0.0.1, so no local-network check applies) serving ``html``."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --- honest states, understandable relevance, photo understanding ---


def summary(pg) -> str:
    return pg.text_content("#results-summary") or ""


def wait_summary(pg, text: str) -> None:
    pg.wait_for_function("t => document.getElementById('results-summary').textContent.includes(t)", arg=text)


def card_count(pg) -> int:
    return pg.locator("#results-list .card").count()


SPY_ON_SEARCHES = """() => {
    window.__searches = [];
    const real = window.fetch;
    window.fetch = (url, options = {}) => {
        if (String(url).endsWith('/search') && options.body instanceof FormData) {
            window.__searches.push(Object.fromEntries([...options.body.entries()].map(
                ([k, v]) => [k, v instanceof File ? `file:${v.name}` : v])));
        }
        return real(url, options);
    };
}"""


def sent_search(pg, action) -> dict:
    """The form fields of the search that ``action`` makes the page send (Chromium hides a multipart
    body that holds a file from the request events, so the page's own fetch is watched)."""
    if not pg.evaluate("Array.isArray(window.__searches)"):
        pg.evaluate(SPY_ON_SEARCHES)
    before = pg.evaluate("window.__searches.length")
    action()
    pg.wait_for_function("n => window.__searches.length > n", arg=before)
    return pg.evaluate("window.__searches[window.__searches.length - 1]")


def test_error_and_empty_answers_clear_old_results(page) -> None:
    search_text(page, "mountain bike")
    assert card_count(page) > 0

    page.route("**/v1/search", lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"detail": "the index is reloading"})))
    page.fill("#q", "garden bench")
    page.press("#q", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "the index is reloading" in page.text_content("#error")
    assert card_count(page) == 0, "bike cards stayed under a failed search for a garden bench"
    assert "“garden bench”" in summary(page) and "failed" in summary(page)
    page.unroute("**/v1/search")

    search_text(page, "mountain bike")
    assert page.is_hidden("#error"), "a search that worked still shows the last error"
    page.fill("#location", "Nowhere at all")
    page.press("#q", "Enter")
    wait_summary(page, "No listings")
    assert card_count(page) == 0, "old cards stayed under filters that match nothing"
    assert "near Nowhere at all" in summary(page)
    shot(page, "09-no-results")

    page.fill("#location", "")
    search_text(page, "mountain bike")
    page.fill("#q", "")
    page.press("#q", "Enter")
    wait_summary(page, "Type what you are looking for")
    assert card_count(page) == 0, "an empty query kept the old results"


def test_loading_state_while_searching(page) -> None:
    held: list = []  # the request waits here until the page's loading state has been checked
    page.route("**/v1/search", lambda route: held.append(route))
    page.fill("#q", "mountain bike")
    page.press("#q", "Enter")
    page.wait_for_selector("#results[aria-busy=true]")
    assert "Searching for “mountain bike”" in page.text_content("#status")
    assert page.is_disabled("#search-button")
    page.wait_for_function("() => true")  # lets the route handler run
    assert len(held) == 1
    held[0].continue_()
    wait_results(page)
    assert page.text_content("#status") == ""


def test_header_says_what_was_searched(page) -> None:
    search_text(page, "mountain bike")
    assert re.fullmatch(r"\d+ listings? for “mountain bike”, best match first\.", summary(page)), summary(page)
    page.select_option("#category", "Sports, Leisure & Travel")
    wait_summary(page, "in Sports, Leisure & Travel")
    page.fill("#price-max", "200")
    page.fill("#location", "Leeds")
    page.press("#q", "Enter")
    wait_summary(page, "near Leeds")
    assert "“mountain bike”, in Sports, Leisure & Travel, up to £200, near Leeds" in summary(page)
    assert {c["category"] for c in cards(page)} == {"Sports, Leisure & Travel"}


def crafted_answer(**extra) -> dict:
    def hit(i: int, score: float, relevance: float | None, match: str | None) -> dict:
        return {"id": f"listing-{i:03d}", "title": f"{TITLES[i]} {i}", "description": "", "price": 10.0 * i,
                "location": "Leeds", "category": "Home & Garden", "category_path": "Home & Garden / Sub",
                "photos": [], "score": score, "relevance": relevance, "match": match, "scores": {},
                "matched_photos": []}

    body = {"results": [hit(0, 1.82, 0.91, "great match"), hit(1, 1.2345, 0.7, "good match"),
                        hit(2, 0.51, 0.4, "related"), hit(3, 0.08, 0.1, "weak match"), hit(4, 0.05, None, None)],
            "k": 24, "filters": {}, "sort": "relevance", "offset": 0, "total": None, "searched": "oak table",
            "corrections": [], "predicted_categories": [], "no_match": False, "best_relevance": 0.91,
            "versions": {"ranker": "test"}}
    return {**body, **extra}


def test_cards_show_match_labels_never_raw_scores(page) -> None:
    page.route("**/v1/search", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(crafted_answer())))
    search_text(page, "oak table")
    assert [c["match"] for c in cards(page)] == ["great match", "good match", "related", "weak match", None]
    text = page.inner_text("#results")
    assert not RAW_SCORE.search(text) and "1.82" not in text and "1.23" not in text
    assert page.is_hidden("#no-match")
    shot(page, "10-match-labels")


def test_no_good_match_is_said_and_nothing_weak_is_shown(page) -> None:
    page.fill("#q", "zzqqx")  # no word of the catalogue: the API answers no_match, an empty match set
    page.press("#q", "Enter")
    page.wait_for_selector("#no-match:not([hidden])")
    assert "No good match" in page.text_content("#no-match")
    assert card_count(page) == 0, "nothing matched: no weak result is listed under the note"
    assert "No listings for “zzqqx”" in summary(page)
    shot(page, "11-no-match")
    search_text(page, "mountain bike")
    assert page.is_hidden("#no-match")
    assert not page.eval_on_selector("#results-list", "l => l.classList.contains('weak')")


def test_a_photo_whose_best_is_weak_says_so(page, served_artifacts: Path) -> None:
    weak = crafted_answer(best_match="related", searched=None)
    page.route("**/v1/search", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(weak)))
    page.set_input_files("#photo", str(served_artifacts / "images" / "img-007-1.jpg"))
    page.wait_for_selector("#weak-best:not([hidden])")
    assert "Nothing close to your photo" in page.text_content("#weak-best")
    assert page.is_hidden("#no-match") and card_count(page) == 5, "neighbours stay listed under the note"
    page.get_by_role("button", name="Remove photo").click()
    search_text(page, "oak table")  # words alone: the label on each card says it, no photo note
    assert page.is_hidden("#weak-best")


def test_did_you_mean_and_search_instead(page) -> None:
    search_text(page, "mountian bike")
    page.wait_for_selector("#did-you-mean:not([hidden])")
    assert page.text_content("#searched-words") == "mountain bike"
    assert page.text_content("#typed-words") == "mountian bike"
    assert "Showing results for mountain bike" in " ".join(page.inner_text("#did-you-mean").split())
    assert "“mountain bike”" in summary(page)
    shot(page, "12-did-you-mean")

    button = page.get_by_role("button", name="Search instead for mountian bike")
    button.focus()
    sent = sent_search(page, lambda: page.keyboard.press("Enter"))  # keyboard only
    assert sent["spelling"] == "false" and sent["text"] == "mountian bike"
    wait_summary(page, "“mountian bike”")
    assert page.is_hidden("#did-you-mean")
    assert page.evaluate("document.activeElement.id") == "results-heading", "focus was lost with the button"
    assert page.input_value("#q") == "mountian bike"

    sent = sent_search(page, lambda: search_text(page, "mountian bike"))
    assert "spelling" not in sent, "the next search corrects again"


def test_a_price_typed_among_the_words_is_read_as_a_filter_and_can_be_undone(page) -> None:
    sent = sent_search(page, lambda: search_text(page, "mountain bike under £5,000"))
    assert sent["text"] == "mountain bike under £5,000" and "read_words" not in sent
    page.wait_for_selector("#read-words:not([hidden])")
    note = " ".join(page.inner_text("#read-words").split())
    assert "Searching “mountain bike”: “under £5,000” read as a filter." in note, note
    assert "5,000" in summary(page), "the summary states the price the API applied"

    sent = sent_search(page, lambda: page.get_by_role("button", name="Search every word instead").click())
    assert sent["read_words"] == "false" and sent["text"] == "mountain bike under £5,000"
    page.wait_for_selector("#read-words", state="hidden")
    assert page.evaluate("document.activeElement.id") == "results-heading", "focus was lost with the button"
    sent = sent_search(page, lambda: search_text(page, "mountain bike under £5,000"))
    assert "read_words" not in sent, "the next search reads the words again"


def test_photo_guess_chip_applies_the_category(page, served_artifacts: Path) -> None:
    page.set_input_files("#photo", str(served_artifacts / "images" / "img-007-1.jpg"))
    wait_results(page)
    page.wait_for_selector("#photo-guess:not([hidden])")
    m = re.fullmatch(r"Looks like: (.+) \((\d+)%\)", page.text_content("#photo-guess-chip"))
    assert m, page.text_content("#photo-guess-chip")
    category = m.group(1)
    assert "your photo" in summary(page)
    shot(page, "13-photo-guess")

    sent = sent_search(page, lambda: page.click("#photo-guess-chip"))
    assert sent["category"] == category
    assert sent["image"] == "file:img-007-1.jpg", "the photo stays part of the search"
    wait_summary(page, f"in {category}")
    wait_results(page)
    assert page.input_value("#category") == category
    assert {c["category"] for c in cards(page)} == {category}
    assert page.is_hidden("#photo-guess"), "the chip offers a filter that is already on"


def test_removing_the_photo_makes_the_next_search_words_only(page, served_artifacts: Path) -> None:
    page.set_input_files("#photo", str(served_artifacts / "images" / "img-007-1.jpg"))
    wait_results(page)
    assert page.is_visible("#photo-preview-img")
    assert page.get_attribute("#photo-preview-img", "alt")
    sent = sent_search(page, lambda: search_text(page, "garden bench"))
    assert sent["image"] == "file:img-007-1.jpg", "a visible photo is searched with the words"
    wait_summary(page, "“garden bench” and your photo")

    sent = sent_search(page, page.get_by_role("button", name="Remove photo").click)
    assert "image" not in sent and sent["text"] == "garden bench"
    wait_summary(page, "for “garden bench”, best")
    assert "photo" not in summary(page)
    assert page.is_hidden("#photo-preview")
    assert page.is_hidden("#photo-guess"), "a photo's category guess left with the photo"
    assert "image" not in sent_search(page, lambda: search_text(page, "garden bench"))
    assert page.eval_on_selector_all("img", "is => is.filter(i => !i.hasAttribute('alt')).length") == 0


# --- browse and sort: filters alone, a sort control, "Load more", the search in the address ---


def wait_cards(pg, n: int) -> None:
    pg.wait_for_function("n => document.querySelectorAll('#results-list .card').length === n "
                         "&& document.getElementById('results').getAttribute('aria-busy') === 'false'", arg=n)


def api_total(base_url: str, **filters) -> int:
    body = httpx.post(f"{base_url}/v1/search", data={"k": "5", **filters}).json()
    return body["total"]


def test_filters_alone_browse_with_a_total(page, base_url: str) -> None:
    sent = sent_search(page, lambda: page.select_option("#category", "Home & Garden"))
    assert "text" not in sent and "image" not in sent and sent["category"] == "Home & Garden"
    wait_summary(page, "newest first")
    wait_results(page)
    total = api_total(base_url, category="Home & Garden")
    assert summary(page) == f"{total} listings in Home & Garden, newest first."
    assert {c["category"] for c in cards(page)} == {"Home & Garden"}
    assert card_count(page) == total  # fewer than a page: all of them, and no "Load more"
    assert page.is_hidden("#more")
    assert "category=Home+%26+Garden" in page.url
    shot(page, "14-browse")

    page.fill("#price-max", "50")
    page.click("#search-button")
    wait_summary(page, "up to £50")
    wait_results(page)
    total = api_total(base_url, category="Home & Garden", price_max="50")
    assert summary(page) == f"{total} listings in Home & Garden, up to £50, newest first."
    assert card_count(page) == total and max(c["value"] for c in cards(page)) <= 50

    page.fill("#price-max", "")
    page.select_option("#category", "")  # nothing left to browse by: back to the prompt
    wait_summary(page, "Type what you are looking for")
    assert card_count(page) == 0


def test_sort_by_price(page) -> None:
    search_text(page, "bike table sofa laptop")
    sort = page.get_by_role("combobox", name="Sort by")
    assert sort.input_value() == "relevance"
    sent = sent_search(page, lambda: sort.select_option("price_asc"))  # a change of sort searches again
    assert sent["sort"] == "price_asc" and sent["text"] == "bike table sofa laptop"
    wait_summary(page, "lowest price first")
    wait_results(page)
    prices = [c["value"] for c in cards(page)]
    assert len(prices) > 3 and prices == sorted(prices), prices
    assert "sort=price_asc" in page.url

    sort.focus()  # keyboard only
    sent = sent_search(page, lambda: page.keyboard.press("ArrowDown"))
    assert sent["sort"] == "price_desc"
    wait_summary(page, "highest price first")
    wait_results(page)
    prices = [c["value"] for c in cards(page)]
    assert prices == sorted(prices, reverse=True), prices
    shot(page, "15-sorted")


def test_load_more_appends_the_next_page_until_the_end(page, base_url: str) -> None:
    total = api_total(base_url, price_min="0")
    page_k = page.evaluate("PAGE_K")
    assert page_k < total <= 2 * page_k, "the tiny catalogue should make exactly two pages"
    page.fill("#price-min", "0")
    page.select_option("#sort", "price_asc")
    page.press("#price-min", "Enter")
    wait_summary(page, f"{total} listings from £0, lowest price first.")
    wait_cards(page, page_k)
    first = cards(page)
    more = page.get_by_role("button", name="Load more listings")
    assert more.is_visible()
    assert page.text_content("#more-count") == f"Showing {page_k} of {total}."

    more.focus()  # keyboard only
    sent = sent_search(page, lambda: page.keyboard.press("Enter"))
    assert sent["cursor"] and "offset" not in sent  # the API's next_cursor: nothing shifts if a listing is added
    assert sent["k"] == str(page_k) and sent["sort"] == "price_asc"
    assert sent["price_min"] == "0" and "text" not in sent
    wait_cards(page, total)
    found = cards(page)
    ids = [c["id"] for c in found]
    assert ids[:page_k] == [c["id"] for c in first], "the first page stayed as it was"
    assert len(set(ids)) == len(ids) == total, "a listing is shown twice"
    prices = [c["value"] for c in found]
    assert prices == sorted(prices), "the second page continues the order of the first"
    assert page.is_hidden("#more"), "the last page is shown: nothing more to load"
    assert page.evaluate("document.activeElement.classList.contains('card-link')"), "focus was lost with the button"
    assert summary(page) == f"{total} listings from £0, lowest price first."
    shot(page, "16-load-more")

    # A new search starts again from its first page.
    page.select_option("#sort", "price_desc")
    wait_summary(page, "highest price first")
    wait_cards(page, page_k)
    assert page.is_visible("#more")


def test_load_more_follows_the_cursor_until_the_last_page(page) -> None:
    """The next page is the one after the answer's ``next_cursor``; the last has none; a repeat is not shown twice."""
    def answer(route) -> None:
        sent = re.search(r'name="cursor"\r\n\r\n([\w-]+)', route.request.post_data or "")
        first = sent is None
        start = 0 if first else 24
        hit = crafted_answer()["results"][0]
        rows = [{**hit, "id": f"listing-{i:03d}", "title": f"Thing {i}", "match": None}
                for i in range(start, min(start + 24, 30))]  # 24 a page, 30 in all
        if not first:
            assert sent.group(1) == "after-page-one"
            rows[0] = {**rows[0], "id": "listing-005"}  # already on the first page
        route.fulfill(status=200, content_type="application/json", body=json.dumps(
            crafted_answer(results=rows, total=30, next_cursor="after-page-one" if first else None)))

    page.route("**/v1/search", answer)
    search_text(page, "oak table")
    wait_cards(page, 24)
    assert re.fullmatch(r"30 listings for “oak table”, best match first\.", summary(page)), summary(page)
    assert page.text_content("#more-count") == "Showing 24 of 30."
    page.click("#load-more")
    wait_cards(page, 29)
    ids = [c["id"] for c in cards(page)]
    assert len(set(ids)) == len(ids) == 29
    assert page.is_hidden("#more")


def test_address_restores_the_search(page) -> None:
    category = "Sports, Leisure & Travel"
    page.goto("/?q=bike&category=Sports%2C+Leisure+%26+Travel&sort=price_asc")
    page.wait_for_selector("body[data-ready=true]")
    for _ in range(2):  # as opened from a shared link, then reloaded
        wait_results(page)
        assert page.input_value("#q") == "bike"
        assert page.input_value("#category") == category
        assert page.input_value("#sort") == "price_asc"
        assert "“bike”, in Sports, Leisure & Travel, lowest price first" in summary(page)
        found = cards(page)
        assert {c["category"] for c in found} == {category}
        assert [c["value"] for c in found] == sorted(c["value"] for c in found)
        assert page.eval_on_selector("#filters-box", "d => d.open"), "a filter from the address is shown"
        page.reload()
        page.wait_for_selector("body[data-ready=true]")

    # Each search is a step back in the browser's history; going back restores the form and the results.
    page.select_option("#sort", "newest")
    wait_summary(page, "newest first")
    assert "sort=newest" in page.url
    page.go_back()
    wait_summary(page, "lowest price first")
    assert page.input_value("#sort") == "price_asc"

    page.goto("/?price_max=40&location=Leeds")  # filters alone, from the address: browsed
    page.wait_for_selector("body[data-ready=true]")
    wait_summary(page, "listings up to £40, near Leeds, newest first.")
    wait_results(page)
    assert page.input_value("#price-max") == "40" and page.input_value("#location") == "Leeds"
    assert all(c["value"] <= 40 and "Leeds" in c["location"] for c in cards(page))


# --- phone, keyboard only, accessibility (issue "web page", item 7) ---

def _in_viewport(pg, selector: str) -> bool:
    """The element's whole box lies inside the visible viewport, as things stand (no scrolling done)."""
    return pg.eval_on_selector(selector, """el => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0
            && r.right <= window.innerWidth && r.bottom <= window.innerHeight;
    }""")


def _no_sideways_scroll(pg) -> bool:
    return pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_phone_with_touch_searches_without_sideways_scroll(browser, base_url: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto("/")
        pg.wait_for_selector("body[data-ready=true]")
        assert pg.evaluate("window.innerWidth") == 390
        # Before any scrolling: the search box and its button are on screen, side by side on one row.
        assert pg.evaluate("window.scrollY") == 0
        assert _in_viewport(pg, "#q") and _in_viewport(pg, "#search-button")
        assert _no_sideways_scroll(pg)

        pg.tap("#q")
        pg.fill("#q", "bike table sofa laptop")
        pg.tap("#search-button")
        wait_results(pg)
        assert cards(pg), "no result cards on a phone"
        assert _no_sideways_scroll(pg), "the results page scrolls sideways on a phone"
        widest = pg.eval_on_selector_all("#results-list .card",
                                         "cs => Math.max(...cs.map(c => c.getBoundingClientRect().right))")
        assert widest <= 390

        # The filters and the sort stay reachable: they fit the width and work by touch.
        for selector in ("#filters-box summary", "#sort"):
            pg.locator(selector).scroll_into_view_if_needed()
            assert _in_viewport(pg, selector), f"{selector} is not reachable on a phone"
        pg.tap("#filters-box summary")
        assert pg.eval_on_selector("#filters-box", "d => d.open")
        for selector in ("#category", "#price-min", "#price-max", "#location"):
            pg.locator(selector).scroll_into_view_if_needed()
            assert _in_viewport(pg, selector), f"{selector} does not fit a phone's width"
        assert _no_sideways_scroll(pg), "the open filters scroll sideways on a phone"
        shot(pg, "20-phone-touch")

        # The listing's page fits too, its way back on screen.
        pg.locator("#results-list .card-link >> nth=0").scroll_into_view_if_needed()
        first = cards(pg)[0]
        pg.tap("#results-list article >> nth=0")
        wait_listing(pg, first["id"])
        pg.wait_for_selector("#similar-list .card")
        assert _in_viewport(pg, "#back-link"), "the way back is off screen on a phone"
        assert _in_viewport(pg, "#listing-photos img >> nth=0")
        assert _no_sideways_scroll(pg), "the listing page scrolls sideways on a phone"
        shot(pg, "20-phone-listing")
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _active(pg) -> dict:
    return pg.evaluate("""() => {
        const el = document.activeElement;
        return {id: el.id, tag: el.tagName.toLowerCase(), cls: el.className,
                card: el.closest('article[data-listing-id]')?.dataset.listingId ?? null,
                list: el.closest('ul')?.id ?? null};
    }""")


def test_keyboard_only_search_open_and_close(page) -> None:
    # A fresh load starts in the search box; before it come only the skip link and the header's links
    # (the site's home, Saved), the skip link first.
    assert _active(page)["id"] == "q", "the search box is not focused on load"
    before: list[dict] = []
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        now = _active(page)
        if now["tag"] == "body":
            break
        before.append(now)
    before.reverse()
    assert before and before[0]["cls"] == "skip", f"the skip link is not first: {before}"
    assert all(b["cls"] == "skip" or b["tag"] == "a" and b["list"] is None for b in before), before
    assert len(before) <= 3, before
    page.focus("#q")

    page.keyboard.type("mountain bike")
    page.keyboard.press("Enter")
    wait_results(page)
    first = cards(page)[0]

    # Tab on from the search box to the first result card's link (the form's controls, Near and Within,
    # the Ads and Sort selects and the two facet toolbars come between).
    for _ in range(20):
        page.keyboard.press("Tab")
        now = _active(page)
        if now["list"] == "results-list":
            break
    assert now["list"] == "results-list" and now["card"] == first["id"], f"Tab did not reach the first card: {now}"
    assert "card-link" in now["cls"]

    page.keyboard.press("Enter")
    wait_listing(page, first["id"])
    assert page.text_content("#listing-title") == first["title"]
    assert _active(page)["id"] == "listing-title", "focus did not move to the listing's title"

    page.keyboard.press("Shift+Tab")  # the way back is just before the title
    assert _active(page)["id"] == "back-link"
    page.keyboard.press("Enter")
    page.wait_for_selector("#search-view:not([hidden])")
    back = _active(page)
    assert back["list"] == "results-list" and back["card"] == first["id"] and "card-link" in back["cls"], \
        f"focus did not return to the card: {back}"
    shot(page, "21-keyboard")


ARIA_LINE = re.compile(r'^\s*- \'?(?P<role>[a-z]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?')
NAMED_ROLES = {"button", "link", "img", "textbox", "searchbox", "combobox", "spinbutton", "checkbox", "radio"}

DOM_PROBLEMS = """() => {
    const problems = [];
    const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    const named = el => (el.getAttribute('aria-label') || '').trim()
        || (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
            .map(id => document.getElementById(id)?.textContent.trim()).join('')
        || (el.labels ? [...el.labels].map(l => l.textContent.trim()).join('') : '')
        || (el.getAttribute('title') || '').trim();
    for (const img of document.querySelectorAll('img')) {
        if (!img.hasAttribute('alt')) problems.push(`img without alt: ${img.src.slice(0, 60)}`);
    }
    for (const el of document.querySelectorAll('input, select, textarea')) {
        if (el.type === 'hidden') continue;
        if (!named(el)) problems.push(`form control without a label: #${el.id || el.name}`);
    }
    for (const el of document.querySelectorAll('button, a[href], [role=button]')) {
        if (!visible(el)) continue;
        if (!(el.textContent.trim() || named(el)))
            problems.push(`${el.tagName} without a name: #${el.id} .${el.className}`);
    }
    const mains = document.querySelectorAll('main, [role=main]').length;
    if (mains !== 1) problems.push(`${mains} main landmarks`);
    const h1s = document.querySelectorAll('h1').length;
    if (h1s !== 1) problems.push(`${h1s} h1 headings`);
    return problems;
}"""


def _aria_problems(snapshot: str) -> list[str]:
    problems = []
    for line in snapshot.splitlines():
        m = ARIA_LINE.match(line)
        if m and m["role"] in NAMED_ROLES and not (m["name"] or "").strip():
            problems.append(f"{m['role']} without an accessible name: {line.strip()}")
    return problems


def test_accessibility_tree_has_no_critical_problem(page) -> None:
    """Chromium's own accessibility tree (Playwright's ARIA snapshot) plus DOM checks; axe-core's rules
    run in ``test_axe_finds_nothing_serious_in_any_state``."""
    def check(where: str) -> str:
        snapshot = page.locator("body").aria_snapshot()
        problems = _aria_problems(snapshot) + page.evaluate(DOM_PROBLEMS)
        assert not problems, f"{where}: {problems}\n{snapshot}"
        return snapshot

    tree = check("on load")
    assert re.search(r'^\s*- main\b', tree, re.M), tree
    assert len(re.findall(r'^\s*- heading "[^"]+" \[level=1\]', tree, re.M)) == 1, tree
    assert re.search(r'- (searchbox|textbox|combobox) "What are you looking for\?"', tree), tree
    assert re.search(r'- button "Search"', tree), tree

    search_text(page, "bike table sofa laptop")
    page.eval_on_selector("#filters-box", "d => { d.open = true; }")
    tree = check("with results and filters open")
    for label in ("Category", "Min price (£)", "Max price (£)", "Location", "Sort by"):
        assert f'"{label}"' in tree, f"{label} is not a named control\n{tree}"
    assert re.search(r'- link "' + re.escape(cards(page)[0]["title"]) + '"', tree), "cards have no named link"

    first = open_card(page, "results-list", 0)
    page.wait_for_selector("#similar-list .card")
    page.wait_for_function("() => [...document.querySelectorAll('#listing-photos img')].every(i => i.complete)")
    tree = check("on a listing's page")
    assert re.search(r'- article "' + re.escape(first["title"]) + '"', tree), f"the listing is not a named article\n{tree}"
    assert re.search(r'- link "← Back to results"', tree), tree
    assert re.search(r'- img "[^"]+photo 1 of', tree), f"listing photos have no alt text\n{tree}"

    # The checks themselves catch what they are for: a nameless button, an image without alt, an unlabelled input.
    page.go_back()
    page.wait_for_selector("#search-view:not([hidden])")
    page.evaluate("""() => {
        const box = document.createElement('div');
        box.id = 'a11y-bad';
        box.innerHTML = '<button type="button"></button><img src="data:,"><input type="text">';
        document.querySelector('main').append(box);
    }""")
    found = _aria_problems(page.locator("#a11y-bad").aria_snapshot()) + page.evaluate(DOM_PROBLEMS)
    assert any(p.startswith("button without") for p in found), found
    assert any(p.startswith("img without alt") for p in found), found
    assert any(p.startswith("form control without a label") for p in found), found
    page.evaluate("document.getElementById('a11y-bad').remove()")


# --- personalisation you control, listing pages, axe, emoji (issue "web page", items 5-7) ---


def requests_to(pg, path: str) -> list:
    """Every request the page makes to ``path`` from now on, as Playwright sees them."""
    seen: list = []
    pg.on("request", lambda r: seen.append(r) if r.url.endswith(path) else None)
    return seen


def open_history_panel(pg) -> None:
    if not pg.eval_on_selector("#history-box", "d => d.open"):
        pg.click("#history-box summary")


def history_items(pg) -> list[dict]:
    return pg.eval_on_selector_all("#history-list li", """lis => lis.map(li => ({
        id: li.querySelector('a').dataset.listingId, title: li.querySelector('a').textContent,
        what: li.querySelector('.what').textContent.trim()}))""")


def test_history_panel_lists_what_is_remembered_and_clears_it(page) -> None:
    open_history_panel(page)
    assert page.text_content("#history-summary") == "(nothing yet)"
    assert history_items(page) == [] and page.is_disabled("#history-clear")
    assert "only" in page.text_content("#history-note") and "this browser" in page.text_content("#history-note")

    search_text(page, "mountain bike")
    first = open_card(page, "results-list", 0)
    page.go_back()
    wait_results(page)
    second = open_card(page, "results-list", 1)
    page.click("#like")  # saved as well as viewed
    page.go_back()
    page.wait_for_selector("#search-view:not([hidden])")

    open_history_panel(page)
    assert page.text_content("#history-summary") == "(2 listings)"
    items = history_items(page)
    assert [(i["id"], i["title"]) for i in items] == [(second["id"], second["title"]), (first["id"], first["title"])], \
        "the most recent first, each listing once"
    assert set(items[0]["what"].split(", ")) == {"viewed", "saved"} and items[1]["what"] == "viewed"
    shot(page, "22-history-panel")

    # An entry opens its listing at its own address.
    page.click(f"#history-list a[data-listing-id='{first['id']}']")
    wait_listing(page, first["id"])
    page.go_back()
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")
    # Focus returns to that entry, though the panel was rebuilt meanwhile.
    assert page.evaluate("document.activeElement.closest('#history-list a')?.dataset.listingId") == first["id"]

    page.click("#history-clear")
    assert history_in_storage(page) == []
    assert history_items(page) == [] and page.text_content("#history-summary") == "(nothing yet)"
    assert page.is_hidden("#for-you"), "recommendations from a cleared history stayed"
    assert page.text_content("#status") == "Your history was cleared."
    assert page.evaluate("document.activeElement.id") == "personalise", "focus was lost with the disabled button"
    assert "history" not in sent_search(page, lambda: search_text(page, "garden bench"))


def test_one_remembered_listing_can_be_forgotten(page) -> None:
    search_text(page, "mountain bike")
    opened = []
    for nth in range(3):
        opened.append(open_card(page, "results-list", nth))
        if nth == 1:
            page.click("#like")  # saved as well as viewed: forgetting it drops both
        page.go_back()
        wait_results(page)
    open_history_panel(page)
    assert [i["id"] for i in history_items(page)] == [c["id"] for c in reversed(opened)]
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")

    middle = opened[1]
    forget = f"#history-list button.forget[data-listing-id='{middle['id']}']"
    assert page.get_attribute(forget, "aria-label") == f"Forget {middle['title']}"
    page.click(forget)
    assert [i["id"] for i in history_items(page)] == [opened[2]["id"], opened[0]["id"]]
    assert middle["id"] not in {e["listing_id"] for e in history_in_storage(page)}, "its events stayed stored"
    assert {e["listing_id"] for e in history_in_storage(page)} == {opened[0]["id"], opened[2]["id"]}
    assert page.text_content("#history-summary") == "(2 listings)"
    assert page.text_content("#status") == f"Forgot “{middle['title']}”."
    # focus moved to the next entry's button: the keyboard can go on forgetting
    assert page.evaluate("document.activeElement.dataset.listingId") == opened[0]["id"]
    page.keyboard.press("Enter")
    assert [i["id"] for i in history_items(page)] == [opened[2]["id"]]
    page.keyboard.press("Enter")  # the last one: focus goes to the toggle, the history is empty
    assert history_items(page) == [] and history_in_storage(page) == []
    assert page.evaluate("document.activeElement.id") == "personalise"
    assert page.is_hidden("#for-you"), "recommendations from a forgotten history stayed"
    assert "history" not in sent_search(page, lambda: search_text(page, "garden bench"))

    # With personalisation off, what was remembered before can still be forgotten.
    kept = open_card(page, "results-list", 0)
    page.go_back()
    wait_results(page)
    open_history_panel(page)
    page.uncheck("#personalise")
    assert page.text_content("#history-summary") == "(personalisation off)"
    page.click(f"#history-list button.forget[data-listing-id='{kept['id']}']")
    assert history_items(page) == [] and history_in_storage(page) == []


def test_a_listing_forgotten_in_another_tab_is_not_saved_again_here(page) -> None:
    search_text(page, "mountain bike")
    listing = open_card(page, "results-list", 0)
    page.click("#like")
    assert page.get_attribute("#like", "aria-pressed") == "true"
    other = page.context.new_page()  # another tab of the same browser: the same local storage
    other.goto("/")
    other.wait_for_selector("body[data-ready=true]")
    open_history_panel(other)
    other.click(f"#history-list button.forget[data-listing-id='{listing['id']}']")
    page.wait_for_function("() => document.getElementById('like').getAttribute('aria-pressed') === 'false'")
    page.click("#like")  # meant as "save", and it is: not a toggle of the forgotten state
    assert [e["event"] for e in history_in_storage(page) if e["listing_id"] == listing["id"]] == ["liked"]
    other.close()


def test_turning_personalisation_off_stops_sending_and_recording_history(page) -> None:
    page.goto("/listing/listing-001")
    wait_listing(page, "listing-001")
    page.goto("/")
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")
    remembered = history_in_storage(page)
    assert [h["listing_id"] for h in remembered] == ["listing-001"]

    recommends = requests_to(page, "/v1/recommend")
    open_history_panel(page)
    page.uncheck("#personalise")
    assert page.is_hidden("#for-you")
    assert page.text_content("#history-summary") == "(personalisation off)"
    assert "Personalisation is off" in page.text_content("#history-note")
    assert page.evaluate("localStorage.getItem('listing-search.personalise')") == "off"
    assert history_items(page)[0]["id"] == "listing-001", "what was remembered stays listed until cleared"
    shot(page, "23-personalisation-off")

    sent = sent_search(page, lambda: search_text(page, "mountain bike"))
    assert "history" not in sent, "a search sent the history while personalisation is off"
    other = open_card(page, "results-list", 0)
    assert page.is_hidden("#like"), "Save would remember: not offered while personalisation is off"
    assert history_in_storage(page) == remembered, f"{other['id']} was remembered while personalisation is off"

    page.goto("/")  # reloaded: the choice is kept
    page.wait_for_selector("body[data-ready=true]")
    assert not page.is_checked("#personalise")
    assert page.is_hidden("#for-you")
    assert recommends == [], "recommendations were asked for while personalisation is off"

    open_history_panel(page)
    page.check("#personalise")
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")
    assert page.evaluate("localStorage.getItem('listing-search.personalise')") is None
    sent = sent_search(page, lambda: search_text(page, "mountain bike"))
    assert [h["listing_id"] for h in json.loads(sent["history"])] == ["listing-001"]
    assert set(json.loads(sent["history"])[0]) == {"listing_id", "event", "timestamp"}, "titles stay in the browser"


def test_recommendations_say_which_listing_they_are_like(page, base_url: str) -> None:
    viewed = {}
    for lid in ("listing-001", "listing-002"):  # a bike and a laptop: different photos and words
        page.goto(f"/listing/{lid}")
        wait_listing(page, lid)
        viewed[lid] = page.text_content("#listing-title")
    page.click("#like")  # listing-002 saved too
    page.goto("/")
    page.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")

    history = [{k: h[k] for k in ("listing_id", "event", "timestamp")} for h in history_in_storage(page)]
    expected = {r["id"]: r["because"] for r in
                httpx.post(f"{base_url}/v1/recommend", json={"history": history, "k": 12}).json()["results"]}
    shown = page.eval_on_selector_all("#for-you-list article", """as => as.map(a => ({
        id: a.dataset.listingId, because: a.querySelector('.because').hidden ? null : a.querySelector('.because').textContent}))""")
    assert [c["id"] for c in shown] == list(expected)
    named = set()
    for c in shown:
        because = expected[c["id"]]
        assert because["listing_id"] in viewed and because["title"] == viewed[because["listing_id"]]
        verb = "saved" if because["event"] == "liked" else "viewed"
        assert c["because"] == f"Because you {verb} “{because['title']}”", c
        named.add(because["listing_id"])
    assert "Based on the 2 listings you opened or saved" in page.text_content("#for-you-note")
    shot(page, "24-because-you-viewed")
    assert named, "no recommendation said why"


def test_more_like_this_is_labelled_like_the_search_cards(page) -> None:
    body = crafted_answer()
    page.route("**/v1/listings/listing-009/similar*", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({"listing_id": "listing-009", "results": body["results"]})))
    page.goto("/listing/listing-009")
    wait_listing(page, "listing-009")
    page.wait_for_selector("#similar-list .card")
    assert [c["match"] for c in cards(page, "similar-list")] == ["great match", "good match", "related", "weak match", None]
    assert not RAW_SCORE.search(page.inner_text("#similar")) and "1.82" not in page.inner_text("#similar")


def test_browsing_without_words_says_newest_in_the_sort_box(page) -> None:
    sort = page.get_by_role("combobox", name="Sort by")
    sent = sent_search(page, lambda: page.select_option("#category", "Home & Garden"))
    wait_summary(page, "newest first")
    assert sort.input_value() == "newest" and sent["sort"] == "newest"
    assert page.eval_on_selector("#sort", "s => s.selectedOptions[0].textContent") == "Newest"
    assert page.eval_on_selector("#sort option[value=relevance]", "o => o.disabled && o.hidden"), \
        "'Best match' is offered with nothing to match"
    assert "sort=" not in page.url, "the browse default is not a choice to keep in the address"

    sent = sent_search(page, lambda: search_text(page, "garden bench"))  # words: best match again
    assert sort.input_value() == "relevance" and sent["sort"] == "relevance"
    wait_summary(page, "best match first")
    assert page.eval_on_selector("#sort option[value=relevance]", "o => !o.disabled && !o.hidden")

    sort.select_option("newest")  # a choice of the user's own stays, with or without words
    wait_summary(page, "“garden bench”, in Home & Garden, newest first")
    page.fill("#q", "")
    page.press("#q", "Enter")
    wait_summary(page, "listings in Home & Garden, newest first")
    sent = sent_search(page, lambda: search_text(page, "garden bench"))
    assert sent["sort"] == "newest" and sort.input_value() == "newest"


EMOJI_FONT_FILES = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "/usr/share/fonts/noto/NotoColorEmoji.ttf")


def _has_emoji_font() -> bool:
    if any(Path(f).is_file() for f in EMOJI_FONT_FILES):
        return True
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    return "noto color emoji" in subprocess.run([fc_list], capture_output=True, text=True).stdout.lower()


def coloured_pixels(png: bytes) -> int:
    """Pixels far from grey: the page's text is dark grey on white, a colour emoji is not."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).sum())


def test_emoji_in_a_title_renders_as_a_colour_glyph(page) -> None:
    if not _has_emoji_font():
        need_part("no colour emoji font (run scripts/install_system_deps.sh: fonts-noto-color-emoji)")
    hit = crafted_answer()["results"][0]
    rows = [{**hit, "id": "listing-001", "title": "Sunflower seeds 🌻 and a bike 🚲"},
            {**hit, "id": "listing-002", "title": "Sunflower seeds and a bike"}]
    page.route("**/v1/search", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(crafted_answer(results=rows))))
    search_text(page, "sunflower")
    with_emoji = page.locator("#results-list .card-link >> nth=0").screenshot()
    without = page.locator("#results-list .card-link >> nth=1").screenshot()
    assert coloured_pixels(without) == 0, "the control title has colour: the measure would not tell"
    assert coloured_pixels(with_emoji) > 30, "the emoji rendered without colour (a missing-glyph box?)"


def axe_violations(pg, where: str) -> list[dict]:
    """axe-core's violations on the page as it stands (the axe.min.js bundled by axe-playwright-python)."""
    axe = need_module("axe_playwright_python.sync_playwright", "axe-playwright-python is not installed").Axe()
    found = axe.run(pg).response["violations"]
    return [{"where": where, "id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:3]} for v in found]


def test_axe_finds_nothing_serious_in_any_state(browser, base_url: str) -> None:
    found: list[dict] = []
    for viewport in ({"width": 1280, "height": 900}, {"width": 390, "height": 844}):
        context = browser.new_context(viewport=viewport, base_url=base_url)
        context.set_default_timeout(TIMEOUT_MS)
        pg = context.new_page()
        try:
            pg.goto("/")
            pg.wait_for_selector("body[data-ready=true]")
            size = f"{viewport['width']}px"
            found += axe_violations(pg, f"{size}, on load")

            search_text(pg, "bike table sofa laptop")
            pg.eval_on_selector("#filters-box", "d => { d.open = true; }")
            found += axe_violations(pg, f"{size}, results")

            first = open_card(pg, "results-list", 0)
            pg.wait_for_selector("#similar-list .card")
            found += axe_violations(pg, f"{size}, listing page")

            pg.go_back()
            pg.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")
            open_history_panel(pg)
            found += axe_violations(pg, f"{size}, for you and history panel")
            assert first["id"] in {i["id"] for i in history_items(pg)}

            pg.fill("#location", "Nowhere at all")
            pg.press("#q", "Enter")
            wait_summary(pg, "No listings")
            found += axe_violations(pg, f"{size}, no results")

            pg.route("**/v1/search", lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(crafted_answer())))
            pg.fill("#location", "")
            search_text(pg, "oak table")
            found += axe_violations(pg, f"{size}, match labels")

            pg.goto("/listing/no-such-listing")
            pg.wait_for_selector("#listing-error:not([hidden])")
            found += axe_violations(pg, f"{size}, listing not found")
        finally:
            context.close()
    serious = [v for v in found if v["impact"] in ("critical", "serious")]
    assert not serious, json.dumps(serious, indent=1)
    # Moderate and minor findings are printed (pytest -s) to be looked at, not failed on.
    for v in found:
        print(f"axe {v['impact']}: {v['where']}: {v['id']} ({v['help']}) at {v['nodes']}")


# --- no friction; the gallery and the Saved page (issue 31, items 4-6), each at desktop and phone ---


def assert_axe_clean(pg, where: str) -> None:
    """axe-core finds nothing critical or serious in the page as it stands (others are printed)."""
    found = axe_violations(pg, f"{pg.viewport_size['width']}px, {where}")
    for v in found:
        print(f"axe {v['impact']}: {v['where']}: {v['id']} ({v['help']}) at {v['nodes']}")
    serious = [v for v in found if v["impact"] in ("critical", "serious")]
    assert not serious, json.dumps(serious, indent=1)


def open_filters(pg) -> None:
    if not pg.eval_on_selector("#filters-box", "d => d.open"):
        pg.click("#filters-box summary")


def searches_sent(pg) -> int:
    return pg.evaluate("window.__searches.length")


def test_filters_apply_as_they_are_typed_without_enter(screen) -> None:
    search_text(screen, "bike table sofa laptop")
    open_filters(screen)
    prices = sorted(c["value"] for c in cards(screen))
    cap = int(prices[len(prices) // 2])
    screen.evaluate(SPY_ON_SEARCHES)

    # Typed key by key (input events at once, as a fast typist): one search once typing pauses, no Enter.
    screen.focus("#price-max")
    screen.evaluate("""cap => { const box = document.getElementById('price-max');
        for (const ch of String(cap)) { box.value += ch; box.dispatchEvent(new Event('input', {bubbles: true})); } }""", cap)
    wait_summary(screen, f"up to £{cap}")
    wait_results(screen)
    assert searches_sent(screen) == 1, "each key searched: the typing is not debounced"
    assert max(c["value"] for c in cards(screen)) <= cap
    assert f"price_max={cap}" in screen.url

    # The place, typed for real; then the sort and the category, which apply as they change.
    screen.locator("#location").press_sequentially("Leeds", delay=40)
    wait_summary(screen, "near Leeds")
    assert searches_sent(screen) < len("Leeds"), "each key searched: the typing is not debounced"
    assert all("Leeds" in c["location"] for c in cards(screen))
    assert screen.evaluate("document.activeElement.id") == "location", "the search took the focus from the typing"
    screen.select_option("#sort", "price_desc")
    wait_summary(screen, "highest price first")


def test_a_wrong_price_is_said_beside_it_and_the_results_stay(screen, base_url: str) -> None:
    search_text(screen, "bike table sofa laptop")
    open_filters(screen)
    screen.fill("#price-max", "100")
    screen.press("#price-max", "Enter")
    wait_summary(screen, "up to £100")
    wait_results(screen)
    good = ([c["id"] for c in cards(screen)], summary(screen))
    screen.evaluate(SPY_ON_SEARCHES)

    def said_beside(field: str, sentence: str) -> None:
        """``sentence`` comes under ``field``, tied to it (aria-describedby), the field marked invalid."""
        screen.wait_for_function("([id, t]) => document.getElementById(id + '-error')?.textContent === t",
                                 arg=[field, sentence])
        assert screen.get_attribute(f"#{field}", "aria-invalid") == "true"
        assert screen.get_attribute(f"#{field}", "aria-describedby") == f"{field}-error"
        assert screen.eval_on_selector(f"#{field}-error", "e => e.closest('.field') === "
                                       f"document.getElementById('{field}').closest('.field')"), "not beside its field"

    def results_stayed() -> None:
        assert ([c["id"] for c in cards(screen)], summary(screen)) == good, "the last good results were cleared"
        assert screen.is_hidden("#error")
        text = screen.inner_text("body")
        assert "price_min" not in text and "Value error" not in text, "the API's own words reached the buyer"

    # A min above the max, with Enter: said beside the min, nothing sent, focus on what needs fixing.
    screen.fill("#price-min", "500")
    screen.press("#price-min", "Enter")
    screen.wait_for_function("() => document.getElementById('price-min-error')?.textContent "
                             "|| !document.getElementById('error').hidden")  # said, one way or the other
    results_stayed()
    said_beside("price-min", "The min price (£500) is above the max price (£100). Lower the min or raise the max.")
    assert screen.evaluate("document.activeElement.id") == "price-min"
    screen.wait_for_timeout(500)  # past the typing pause: that does not send it either
    assert searches_sent(screen) == 0, "a search was sent with a min above the max"
    assert_axe_clean(screen, "a price said wrong beside its field")

    # A price below £0, typed (no Enter).
    screen.fill("#price-min", "-5")
    said_beside("price-min", "The min price can’t be below £0.")
    results_stayed()
    assert searches_sent(screen) == 0

    # Put right: the sentence goes and the search runs.
    screen.fill("#price-min", "5")
    wait_summary(screen, "£5 to £100")
    assert screen.text_content("#price-min-error") == ""
    assert screen.get_attribute("#price-min", "aria-invalid") is None
    wait_results(screen)
    good = ([c["id"] for c in cards(screen)], summary(screen))

    # What the API refuses (a 422 naming its parameter) is said in words beside the field as well.
    refusals = {
        "location": httpx.post(f"{base_url}/v1/search", data={"text": "bike", "location": "Leeds\x01"}),
        "price-max": httpx.post(f"{base_url}/v1/search", data={"text": "bike", "price_min": "500", "price_max": "100"}),
    }
    for field, refused in refusals.items():
        assert refused.status_code == 422, refused.text
        body = refused.text
        screen.route("**/v1/search", lambda route: route.fulfill(status=422, content_type="application/json", body=body))
        if field == "location":
            screen.fill("#location", "Leeds")
            said_beside("location", "This place can’t be searched: enter a town or area, like Leeds.")
        else:
            screen.fill("#price-max", "90")
            said_beside("price-max", "The min price is above the max price. Lower the min or raise the max.")
        results_stayed()
        screen.unroute("**/v1/search")
    shot(screen, f"31-price-said-beside-the-field-{screen.viewport_size['width']}")


def test_results_come_before_the_recommendations(screen) -> None:
    screen.goto("/listing/listing-003")  # one sofa opened: the "for you" row fills with things like it
    wait_listing(screen, "listing-003")
    screen.goto("/")
    screen.wait_for_selector("#for-you:not([hidden]) #for-you-list .card")
    search_text(screen, "garden bench")  # something else: the buyer came for it, not for more sofas
    first = screen.locator("#results-list .card").first
    box, row = first.bounding_box(), screen.locator("#for-you").bounding_box()
    assert box["y"] + box["height"] <= row["y"], "the recommendations come before the results"
    assert screen.evaluate("window.scrollY") == 0
    height = screen.evaluate("window.innerHeight")
    shot(screen, f"32-results-first-{screen.viewport_size['width']}")
    assert box["y"] < height * 0.75, f"the first result starts below the fold ({box['y']:.0f} of {height} px)"


def test_the_search_box_is_focused_on_load(screen) -> None:
    assert screen.evaluate("document.activeElement.id") == "q"
    screen.keyboard.type("mountain bike")  # no click or Tab needed
    screen.keyboard.press("Enter")
    wait_results(screen)
    screen.reload()
    screen.wait_for_selector("body[data-ready=true]")
    assert screen.evaluate("document.activeElement.id") == "q", "not focused when a search is in the address"
    screen.goto("/listing/listing-004")
    wait_listing(screen, "listing-004")
    assert screen.evaluate("document.activeElement.id") == "listing-title", "a listing's page starts at its title"


UUID_NAME = "a9bee305-9ca3-494c-9095-a5564e373a93.jpg"  # how the catalogue's (and many phones') photos are named


def choose_photo(pg, served_artifacts: Path, name: str = UUID_NAME) -> None:
    data = (served_artifacts / "images" / "img-007-1.jpg").read_bytes()
    pg.set_input_files("#photo", files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
    wait_results(pg)


NOT_CUT = """el => el.getBoundingClientRect().left >= 0 && el.getBoundingClientRect().right <= window.innerWidth
    && [el, ...el.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth + 1)"""


def test_placeholder_and_chips_fit_the_screen(screen, served_artifacts: Path) -> None:
    fits = screen.eval_on_selector("#q", """q => {
        const style = getComputedStyle(q), ctx = document.createElement('canvas').getContext('2d');
        ctx.font = style.font;
        const room = q.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return {text: ctx.measureText(q.placeholder).width, room};
    }""")
    problems = [] if fits["text"] <= fits["room"] else [f"the placeholder is cut: {fits}"]

    choose_photo(screen, served_artifacts)
    screen.wait_for_selector("#photo-guess:not([hidden])")
    problems += [f"{chip} is cut or sticks out" for chip in ("#photo-preview", "#photo-guess-chip")
                 if not screen.eval_on_selector(chip, NOT_CUT)]
    problems += [] if _no_sideways_scroll(screen) else ["the page scrolls sideways"]
    assert not problems, problems
    shot(screen, f"33-chips-{screen.viewport_size['width']}")


def test_the_photo_chip_says_your_photo_with_a_thumbnail(screen, served_artifacts: Path) -> None:
    choose_photo(screen, served_artifacts)
    assert screen.inner_text("#photo-preview figcaption").strip() == "Your photo"
    assert screen.get_by_role("button", name="Remove photo").is_visible()
    thumb = screen.locator("#photo-preview img")
    assert thumb.is_visible() and thumb.evaluate("i => i.complete && i.naturalWidth > 0"), "no thumbnail"
    assert UUID_NAME[:8] not in screen.content() and UUID_NAME[:8] not in screen.inner_text("body"), \
        "the file's name is shown"
    assert "your photo" in summary(screen)
    assert_axe_clean(screen, "the photo chip")


def test_a_long_query_is_shortened_in_the_summary(screen) -> None:
    words = ("oak dining table with six matching chairs and a sideboard, " * 20)[:928]
    screen.fill("#q", words)
    screen.press("#q", "Enter")
    screen.wait_for_function("() => document.getElementById('results').getAttribute('aria-busy') === 'false' "
                             "&& document.getElementById('results-summary').textContent.includes('“')")
    quoted = re.search(r"“(.*)”", summary(screen)).group(1)
    assert quoted.endswith("…") and len(quoted) <= 81, f"{len(quoted)} characters echoed"
    assert words.startswith(quoted[:-1].rstrip()), quoted
    assert len(summary(screen)) < 160
    assert screen.input_value("#q") == words, "the box keeps all the words"


# --- the listing's photos full screen ---


def swipe(pg, selector: str, dx: float) -> None:
    """A one-finger swipe across the middle of ``selector``, through Chromium's touch input (real
    touch and pointer events, as a phone sends them)."""
    box = pg.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2 - dx / 2, box["y"] + box["height"] / 2
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 6):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx * step / 5, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def viewer_shows(pg, n: int, of: int) -> None:
    pg.wait_for_function("t => document.getElementById('viewer-count').textContent === t", arg=f"Photo {n} of {of}")
    assert pg.get_attribute("#viewer-img", "alt").endswith(f"photo {n} of {of}")
    pg.wait_for_function("() => { const i = document.getElementById('viewer-img'); return i.complete && i.naturalWidth > 0; }")


LONG_TITLE = "Vortex plush velvet corner or 3+2 sofa available, fast delivery, brand new in its box"


def with_long_title(route) -> None:
    """The listing as the API answers it, with a title as long as sellers write them."""
    body = route.fetch().json()
    route.fulfill(status=200, content_type="application/json", body=json.dumps({**body, "title": LONG_TITLE}))


def test_gallery_opens_a_photo_full_screen(screen) -> None:
    touch = SCREENS["phone"]["viewport"] == screen.viewport_size
    screen.route("**/v1/listings/listing-004", with_long_title)
    screen.goto("/listing/listing-004")
    wait_listing(screen, "listing-004")
    title = screen.text_content("#listing-title")
    assert title == LONG_TITLE
    photos = screen.locator("#listing-photos button")
    assert photos.count() == 2
    assert photos.first.get_attribute("aria-haspopup") == "dialog"
    photos.first.tap() if touch else photos.first.click()

    dialog = screen.get_by_role("dialog", name=title)
    dialog.wait_for()
    assert screen.eval_on_selector("#viewer", "d => d.open && d.matches(':modal')"), "not a modal dialog"
    viewer_shows(screen, 1, 2)
    box, size = screen.locator("#viewer-img").bounding_box(), screen.viewport_size
    assert box["width"] >= size["width"] * 0.95 and box["height"] >= size["height"] * 0.8, f"not full screen: {box}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"] + 1, f"the photo is cut at the sides: {box}"
    assert screen.eval_on_selector("#viewer", "d => d.scrollWidth <= d.clientWidth"), "the viewer scrolls sideways"
    inside = "() => document.getElementById('viewer').contains(document.activeElement)"
    assert screen.evaluate(inside), "focus did not move into the viewer"
    for _ in range(4):  # Tab stays inside (the page behind is inert)
        screen.keyboard.press("Tab")
        assert screen.evaluate(inside), "Tab left the full-screen photo"
    assert_axe_clean(screen, "a photo full screen")

    screen.keyboard.press("ArrowRight")
    viewer_shows(screen, 2, 2)
    screen.keyboard.press("ArrowRight")  # past the last comes the first
    viewer_shows(screen, 1, 2)
    screen.keyboard.press("ArrowLeft")
    viewer_shows(screen, 2, 2)
    if touch:
        swipe(screen, "#viewer-stage", -160)  # finger to the left: the next photo
        viewer_shows(screen, 1, 2)
        swipe(screen, "#viewer-stage", 160)
        viewer_shows(screen, 2, 2)
        swipe(screen, "#viewer-stage", 12)  # a wobble is not a swipe
        screen.wait_for_timeout(100)
        viewer_shows(screen, 2, 2)
    shot(screen, f"34-gallery-{screen.viewport_size['width']}")

    screen.keyboard.press("Escape")
    screen.wait_for_function("() => !document.getElementById('viewer').open")
    focus_back = "() => document.activeElement.dataset.photo === '1'"  # the close event comes a task later
    screen.wait_for_function(focus_back)  # ("focus did not return to the photo shown" when it times out)
    # Opened again by keyboard, closed with its button.
    screen.keyboard.press("Enter")
    viewer_shows(screen, 2, 2)
    close = screen.get_by_role("button", name="Close the full-screen photo")
    close.tap() if touch else close.click()
    screen.wait_for_function("() => !document.getElementById('viewer').open")
    screen.wait_for_function(focus_back)


# --- the Saved page ---


def saved_cards(pg) -> list[str]:
    return [c["id"] for c in cards(pg, "saved-list")]


def test_saved_page_lists_what_was_saved(screen, base_url: str) -> None:
    assert httpx.get(f"{base_url}/saved").status_code == 200, "the Saved page has no address of its own"
    saved_link = screen.get_by_role("link", name="Saved", exact=True)
    assert saved_link.is_visible()

    titles = {}
    for lid in ("listing-001", "listing-002", "listing-005"):
        screen.goto(f"/listing/{lid}")
        wait_listing(screen, lid)
        titles[lid] = screen.text_content("#listing-title")
        save = screen.get_by_role("button", name="Save", exact=True, pressed=False)
        assert save.is_visible(), "the Save button does not say Save"
        if lid == "listing-005":
            continue  # viewed only
        save.click()
        saved = screen.get_by_role("button", name="Saved", exact=True, pressed=True)
        assert saved.is_visible(), "after saving, the button does not say Saved"
    assert_axe_clean(screen, "a saved listing's page")

    screen.get_by_role("link", name="Saved (2)").click()
    screen.wait_for_selector("#saved-view:not([hidden]) #saved-list .card")
    assert screen.url.endswith("/saved") and screen.title() == "Saved listings – Listing search"
    assert screen.evaluate("document.activeElement.id") == "saved-heading"
    assert saved_cards(screen) == ["listing-002", "listing-001"], "the most recently saved first, viewed ones left out"
    for c in cards(screen, "saved-list"):
        api = httpx.get(f"{base_url}/v1/listings/{c['id']}").json()
        assert c["title"] == api["title"] == titles[c["id"]] and c["value"] == api["price"]
    screen.wait_for_function("() => [...document.querySelectorAll('#saved-list img')].every(i => i.complete && i.naturalWidth)")
    assert _no_sideways_scroll(screen)
    assert_axe_clean(screen, "the Saved page")
    shot(screen, f"35-saved-{screen.viewport_size['width']}")

    # A saved listing opens at its own address; its back link leads back here, focus on its card.
    open_card(screen, "saved-list", 1)
    assert screen.text_content("#back-link").strip() == "← Back to saved listings"
    screen.click("#back-link")
    screen.wait_for_selector("#saved-view:not([hidden]) #saved-list .card")
    assert screen.evaluate("document.activeElement.closest('article')?.dataset.listingId") == "listing-001"
    screen.reload()  # kept in the browser: still there
    screen.wait_for_selector("#saved-view:not([hidden]) #saved-list .card")
    assert saved_cards(screen) == ["listing-002", "listing-001"]

    # Removed here: the list, the header's count and the listing's Save button follow.
    remove = screen.get_by_role("button", name=f"Remove {titles['listing-002']} from saved")
    remove.click()
    screen.wait_for_function("() => document.querySelectorAll('#saved-list .card').length === 1")
    assert saved_cards(screen) == ["listing-001"]
    assert screen.text_content("#saved-status") == f"Removed “{titles['listing-002']}” from your saved listings."
    assert screen.evaluate("document.activeElement.dataset.listingId") == "listing-001", "focus was lost"
    assert screen.get_by_role("link", name="Saved (1)").is_visible()
    screen.goto("/listing/listing-002")
    wait_listing(screen, "listing-002")
    assert screen.get_attribute("#like", "aria-pressed") == "false" and screen.inner_text("#like").strip() == "Save"

    # Unsaved from its own page: the Saved page says there is nothing.
    screen.goto("/listing/listing-001")
    wait_listing(screen, "listing-001")
    screen.get_by_role("button", name="Saved", exact=True).click()
    screen.get_by_role("link", name="Saved", exact=True).click()
    screen.wait_for_selector("#saved-empty:not([hidden])")
    assert saved_cards(screen) == []
    assert "Nothing saved yet" in screen.text_content("#saved-empty")
    assert_axe_clean(screen, "the Saved page, empty")

    # "← Search all listings" goes back to the search page.
    screen.click("#saved-back")
    screen.wait_for_selector("#search-view:not([hidden])")
    assert "/saved" not in screen.url


def test_saves_outlast_the_history_and_a_sold_listing_says_so(page) -> None:
    """The history keeps its last 50 events: views go first, so a save is not pushed out by browsing;
    a saved listing the catalogue no longer has keeps its title and says it is gone."""
    page.evaluate("""() => {
        const now = Date.now() / 1000;
        const h = [{listing_id: 'listing-009', event: 'liked', timestamp: now - 900, title: 'Tennis racket 9'},
                   {listing_id: 'sold-long-ago', event: 'liked', timestamp: now - 800, title: 'Pine wardrobe'}];
        for (let i = 0; i < 48; i++) h.push({listing_id: `listing-0${10 + i % 20}`, event: 'viewed', timestamp: now - 700 + i});
        localStorage.setItem('listing-search.history', JSON.stringify(h));
    }""")
    for lid in ("listing-001", "listing-002", "listing-003"):
        page.goto(f"/listing/{lid}")
        wait_listing(page, lid)
    history = history_in_storage(page)
    assert len(history) == 50 and history[-1]["listing_id"] == "listing-003"
    page.goto("/saved")
    page.wait_for_selector("#saved-list .card")
    assert saved_cards(page) == ["sold-long-ago", "listing-009"]
    gone = cards(page, "saved-list")[0]
    assert gone["title"] == "Pine wardrobe" and gone["price"] == "No longer listed"


LEEDS_BUYER = {"latitude": 53.8012, "longitude": -1.5499}  # a fixed position a kilometre from Leeds' centre


def test_near_me_and_a_town_show_distances_sorted_within_the_radius(browser, base_url: str) -> None:
    """"Near me" asks for the position only on its click and lists the nearest first, each card saying how
    far; a typed town with a radius in miles keeps every result inside it; the listing page says how far."""
    with watched_page(browser, base_url, viewport={"width": 1280, "height": 900}, geolocation=LEEDS_BUYER,
                      permissions=["geolocation"]) as pg:
        assert not pg.is_visible("#results-list .card")
        pg.click("#near-me")
        wait_summary(pg, "nearest first")
        wait_results(pg)
        assert pg.input_value("#near") == "53.80,-1.55" and pg.input_value("#sort") == "distance"
        assert "within 25 miles of you, nearest first" in summary(pg)
        miles = pg.eval_on_selector_all("#results-list .card .distance", "ds => ds.map(d => d.textContent)")
        locations = {c["location"] for c in cards(pg)}
        assert miles and all(m.endswith("away") for m in miles) and locations == {"Leeds, West Yorkshire"}
        leeds = api_total(base_url, near="53.80,-1.55", within_km=str(25 * 1.609344))
        assert card_count(pg) == leeds and "near=53.80%2C-1.55" in pg.url

        pg.fill("#q", "sofa bike table lamp")
        pg.fill("#near", "Bristol")
        pg.select_option("#within", "10")
        pg.select_option("#sort", "distance")
        wait_summary(pg, "within 10 miles of Bristol, nearest first")
        wait_results(pg)
        found = cards(pg)
        assert found and {c["location"] for c in found} == {"Bristol, Bristol"}
        km = pg.eval_on_selector_all("#results-list .card .distance", "ds => ds.map(d => d.textContent)")
        values = [0.0 if m.startswith("under") else float(m.split()[0]) for m in km]
        assert len(values) == len(found) and values == sorted(values) and max(values) <= 10

        pg.fill("#near", "Leedz")
        pg.press("#near", "Enter")
        pg.wait_for_selector("#near[aria-invalid=true]")
        assert "Did you mean Leeds" in pg.text_content("#near-error")

        pg.fill("#near", "Bristol")
        pg.press("#near", "Enter")
        wait_summary(pg, "within 10 miles of Bristol")
        wait_results(pg)
        pg.click("#results-list article >> nth=0")
        pg.wait_for_selector("#listing-distance:not([hidden])")
        assert pg.text_content("#listing-distance").endswith("away")
        shot(pg, "40-near")


# --- suggestions, counts and facets, why it matched (issue 31, items 1-3), each at desktop and phone ---


def press(pg, locator) -> None:
    """A tap where the screen is touch, a click otherwise: the way a buyer on that screen chooses."""
    if pg.evaluate("navigator.maxTouchPoints > 0"):
        locator.tap()
    else:
        locator.click()


def answer_of(pg, action) -> dict:
    """The JSON answer of the search that ``action`` makes the page send, once its cards are shown."""
    with pg.expect_response(lambda r: r.url.endswith("/v1/search") and r.request.method == "POST") as info:
        action()
    body = info.value.json()
    pg.wait_for_function("() => document.getElementById('results').getAttribute('aria-busy') === 'false'")
    return body


def search_for(pg, text: str) -> dict:
    """Type ``text``, press Enter: the API's answer, its cards on screen."""
    pg.fill("#q", text)
    body = answer_of(pg, lambda: pg.press("#q", "Enter"))
    wait_results(pg)
    return body


def listings_said(n: int) -> str:
    return f"{n:,} listing{'' if n == 1 else 's'}"


def suggestions_shown(pg) -> list[dict]:
    pg.wait_for_selector("#suggestions:not([hidden]) [role=option]")
    return pg.eval_on_selector_all("#suggestions [role=option]", """os => os.map(o => ({
        id: o.id, kind: o.dataset.kind, text: o.querySelector('.suggestion-text').textContent,
        count: o.querySelector('.count')?.textContent.trim() ?? null,
        selected: o.getAttribute('aria-selected')}))""")


def combo_state(pg) -> dict:
    return pg.eval_on_selector("#q", """q => ({expanded: q.getAttribute('aria-expanded'),
        active: q.getAttribute('aria-activedescendant'), open: !document.getElementById('suggestions').hidden,
        value: q.value, focused: document.activeElement === q})""")


def test_suggestions_while_typing(screen, base_url: str) -> None:
    box = screen.locator("#q")
    assert (box.get_attribute("role"), box.get_attribute("aria-controls")) == ("combobox", "suggestions")
    assert screen.get_attribute("#suggestions", "role") == "listbox"
    assert combo_state(screen)["expanded"] == "false"
    asked = requests_to(screen, "/v1/suggest?q=bike&k=8")
    every = requests_to(screen, "&k=8")

    # Typed faster than the pause (150 ms): one request, for what was typed last.
    box.press_sequentially("bike", delay=30)
    options = suggestions_shown(screen)
    expected = httpx.get(f"{base_url}/v1/suggest", params={"q": "bike", "k": 8}).json()["suggestions"]
    assert [(o["text"].removeprefix("in "), o["count"]) for o in options] == \
        [(s["text"], listings_said(s["count"])) for s in expected], "not the API's suggestions, each with its count"
    assert len(options) >= 3
    assert len(asked) == 1, "what was typed last was not asked for, or twice"
    assert len(every) < len("bike"), "a request per key: the suggestions are not debounced"
    assert combo_state(screen) == {"expanded": "true", "active": None, "open": True, "value": "bike", "focused": True}

    # The arrow keys move through the options (focus stays in the box), wrapping at both ends.
    ids = [o["id"] for o in options]
    for key, at in (("ArrowDown", 0), ("ArrowDown", 1), ("ArrowUp", 0), ("ArrowUp", len(ids) - 1), ("ArrowDown", 0)):
        screen.keyboard.press(key)
        assert combo_state(screen)["active"] == ids[at], key
        assert [o["selected"] for o in suggestions_shown(screen)] == ["true" if i == at else "false" for i in range(len(ids))]
    assert_axe_clean(screen, "suggestions open, one active")
    shot(screen, f"36-suggestions-{screen.viewport_size['width']}")

    # Escape closes the list and keeps the words (a search box would empty itself); Down opens it again.
    screen.keyboard.press("Escape")
    assert combo_state(screen) == {"expanded": "false", "active": None, "open": False, "value": "bike", "focused": True}
    screen.keyboard.press("ArrowDown")
    screen.keyboard.press("ArrowDown")
    chosen = options[1]
    assert chosen["kind"] == "query" and combo_state(screen)["active"] == chosen["id"]

    # Enter on an option: its words fill the box and are searched.
    sent = sent_search(screen, lambda: screen.keyboard.press("Enter"))
    assert sent["text"] == chosen["text"]
    wait_summary(screen, f"“{chosen['text']}”")
    wait_results(screen)
    assert combo_state(screen) == {"expanded": "false", "active": None, "open": False, "value": chosen["text"],
                                   "focused": True}

    # A category, chosen with the mouse or a finger: the category filter, the box emptied, the list closed.
    screen.fill("#q", "")
    box.press_sequentially("hom", delay=30)
    category = next(o for o in suggestions_shown(screen) if o["kind"] == "category")
    assert category["text"] == "in Home & Garden"
    total = httpx.post(f"{base_url}/v1/search", data={"category": "Home & Garden"}).json()["total"]
    assert category["count"] == listings_said(total)
    press(screen, screen.locator(f"#{category['id']}"))
    wait_summary(screen, "in Home & Garden")
    wait_results(screen)
    assert screen.input_value("#category") == "Home & Garden"
    assert {c["category"] for c in cards(screen)} == {"Home & Garden"}
    assert summary(screen).startswith(listings_said(total))
    assert combo_state(screen) == {"expanded": "false", "active": None, "open": False, "value": "", "focused": True}


def test_suggestions_never_hold_up_typing_and_old_answers_are_dropped(screen) -> None:
    held: list = []
    screen.route(re.compile(r"/v1/suggest\?q=ga&"), lambda route: held.append(route))
    box = screen.locator("#q")
    box.press_sequentially("ga", delay=30)
    screen.wait_for_function("() => true")
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline:  # the request for "ga" is held unanswered
        screen.wait_for_timeout(50)
    assert held, "no suggestions were asked for after the pause"
    box.press_sequentially("rden", delay=30)  # typing goes on while that answer is awaited
    assert screen.input_value("#q") == "garden"
    options = suggestions_shown(screen)
    assert options and all("garden" in o["text"].lower() for o in options), options
    try:  # the old answer comes at last (if the page did not cancel its request): it must not show
        held[0].fulfill(status=200, content_type="application/json",
                        body=json.dumps({"suggestions": [{"text": "gamma stale", "kind": "query", "count": 99}]}))
    except Exception:  # noqa: BLE001 - the page aborted the request: dropped all the same
        pass
    screen.wait_for_timeout(300)
    assert [o["text"] for o in suggestions_shown(screen)] == [o["text"] for o in options], "an old answer replaced the list"
    # Enter searches what is typed (no option active) and closes the list.
    search_text(screen, "garden")
    assert combo_state(screen)["open"] is False and "“garden”" in summary(screen)
    # Leaving the box closes the list.
    box.press_sequentially(" b", delay=30)
    suggestions_shown(screen)
    screen.keyboard.press("Tab")
    assert combo_state(screen)["expanded"] == "false" and screen.is_hidden("#suggestions")


def facet_buttons(pg, group: str) -> list[dict]:
    return pg.eval_on_selector_all(f"#facet-{group} button", """bs => bs.map(b => ({
        key: b.dataset.facet, name: b.querySelector('.facet-name').textContent,
        count: Number(b.querySelector('.count').firstChild.textContent.replace(/,/g, '')),
        words: b.textContent.replace(/\\s+/g, ' ').trim(), pressed: b.getAttribute('aria-pressed'),
        child: Boolean(b.closest('.facet-children'))}))""")


def band_label(band: dict) -> str:
    money = lambda v: f"£{v:,.0f}"  # noqa: E731
    if band["max"] is None:
        return f"{money(band['min'])} and over"
    return f"Under {money(band['max'])}" if band["min"] == 0 else f"{money(band['min'])} to {money(band['max'])}"


def facets_as_the_api_says(pg, body: dict, chosen: str = "") -> None:
    """The category and price facets on screen are the answer's: names, counts, what is pressed."""
    roots = body["facets"]["category"]
    shown = facet_buttons(pg, "category")
    # All: the answer's total with no category chosen (a group of copies under two roots counts under
    # each root, once in the total); with one chosen, the roots' sum (the total without it)
    everything = sum(r["count"] for r in roots) if chosen else body["total"]
    assert shown[0]["name"] == "All categories" and shown[0]["count"] == everything
    assert shown[0]["pressed"] == ("false" if chosen else "true")
    want = []
    for r in roots:
        if r["count"]:
            want.append((r["value"], r["count"], False))
        if chosen and chosen.split(" / ")[0] == r["value"]:
            want += [(c["value"].split(" / ")[-1], c["count"], True) for c in r["children"] if c["count"]]
    assert [(b["name"], b["count"], b["child"]) for b in shown[1:]] == want
    assert [b["key"] for b in shown if b["pressed"] == "true"] == [f"category:{chosen}"]
    bands = [b for b in body["facets"]["price"] if b["count"]]
    assert [(b["name"], b["count"]) for b in facet_buttons(pg, "price")] == [(band_label(b), b["count"]) for b in bands]
    # The select says the same counts.
    labels = pg.eval_on_selector_all("#category option", "os => os.map(o => o.textContent.trim())")
    for r in roots:
        assert f"{r['value']} ({r['count']})" in labels, labels


def test_facets_count_and_narrow_the_search(screen) -> None:
    body = search_for(screen, "bike table sofa laptop")
    assert screen.is_visible("#facets")
    facets_as_the_api_says(screen, body)
    buttons = facet_buttons(screen, "category")
    assert buttons[0]["words"] == f"All categories {body['total']} listings", "the count is not said in words"
    assert summary(screen).startswith(listings_said(body["total"]))
    if screen.viewport_size["width"] >= 900:  # a column beside the cards, not above them
        facets, first = screen.locator("#facets").bounding_box(), screen.locator("#results-list .card").first.bounding_box()
        assert facets["x"] + facets["width"] <= first["x"] and first["y"] < facets["y"] + 60
    assert _no_sideways_scroll(screen)
    assert_axe_clean(screen, "facets with counts")

    # Each facet is a toolbar, one Tab stop: from the results bar, Tab reaches the chosen category (all of
    # them), the arrow keys go through the others, and the next Tab the price bands.
    focused = lambda: screen.evaluate("document.activeElement.dataset.facet ?? document.activeElement.id")  # noqa: E731
    assert screen.eval_on_selector_all("#facets button", "bs => bs.filter(b => b.tabIndex === 0).length") == 2
    # (past "Save this search", which follows the results bar once there is a search to save)
    screen.focus("#save-search" if screen.is_visible("#save-search") else "#sort")
    screen.keyboard.press("Tab")
    assert focused() == "category:"
    screen.keyboard.press("ArrowDown")
    assert focused() == f"category:{buttons[1]['name']}"
    screen.keyboard.press("End")
    assert focused() == buttons[-1]["key"]
    screen.keyboard.press("Tab")
    assert focused().startswith("price:")

    # A root: chosen, its subcategories under it; its siblings keep their counts.
    root = next(r for r in body["facets"]["category"] if r["children"])
    chose_root = answer_of(screen, lambda: press(screen, screen.locator(f'#facet-category button[data-facet="category:{root["value"]}"]')))
    wait_summary(screen, f"in {root['value']}")
    assert screen.input_value("#category") == root["value"]
    assert {c["category"] for c in cards(screen)} == {root["value"]}
    assert [(r["value"], r["count"]) for r in chose_root["facets"]["category"]] == \
        [(r["value"], r["count"]) for r in body["facets"]["category"]], "choosing a category changed its siblings' counts"
    facets_as_the_api_says(screen, chose_root, root["value"])
    shot(screen, f"37-facets-{screen.viewport_size['width']}")

    # A subcategory sets the path prefix (by keyboard: the focus stays on it once the answer is shown).
    child = chose_root["facets"]["category"][[r["value"] for r in chose_root["facets"]["category"]].index(root["value"])]["children"][0]
    screen.focus(f'#facet-category button[data-facet="category:{child["value"]}"]')
    sent = sent_search(screen, lambda: screen.keyboard.press("Enter"))
    assert sent["category"] == child["value"]
    wait_summary(screen, f"in {child['value']}")
    assert screen.input_value("#category") == child["value"]
    assert screen.evaluate("document.activeElement.dataset.facet") == f"category:{child['value']}", "focus was lost"
    assert_axe_clean(screen, "a subcategory chosen")
    # Pressed again: back to its root.
    sent = sent_search(screen, lambda: screen.keyboard.press("Enter"))
    assert sent["category"] == root["value"]
    wait_summary(screen, f"in {root['value']},")


def test_a_price_band_finds_as_many_listings_as_it_says(screen, base_url: str) -> None:
    """Browsing (filters alone) every listing passing them is found: a band's press must find its count,
    though the price filters include their max and the bands do not (£50 to £100 sends max £99.99)."""
    def priced_at_its_max(category: str, band: dict) -> bool:  # left out of the band, taken in by a max sent as is
        return httpx.post(f"{base_url}/v1/search", data={"category": category, "price_min": band["max"],
                                                          "price_max": band["max"]}).json()["total"] > 0

    category, band = next(((c, b) for c in httpx.get(f"{base_url}/v1/categories").json()["categories"]
                           for b in httpx.post(f"{base_url}/v1/search", data={"category": c}).json()["facets"]["price"]
                           if b["count"] and b["max"] is not None and b["min"] > 0 and priced_at_its_max(c, b)), (None, None))
    assert band, "no band whose max is some listing's price: the test would not tell a max sent as is"
    open_filters(screen)
    body = answer_of(screen, lambda: screen.select_option("#category", category))
    wait_summary(screen, listings_said(body["total"]))
    chosen = answer_of(screen, lambda: press(screen, screen.locator(f'#facet-price button[data-facet="price:{band["min"]:g}"]')))
    assert chosen["total"] == band["count"], "the band's count is not what its press finds"
    wait_summary(screen, listings_said(band["count"]))
    assert (screen.input_value("#price-min"), screen.input_value("#price-max")) == (f"{band['min']:g}", f"{band['max'] - 0.01:g}")
    assert all(band["min"] <= c["value"] < band["max"] for c in cards(screen))
    pressed = [b for b in facet_buttons(screen, "price") if b["pressed"] == "true"]
    assert [b["name"] for b in pressed] == [band_label(band)]
    # Pressed again: no price filter.
    answer_of(screen, lambda: press(screen, screen.locator(f'#facet-price button[data-facet="price:{band["min"]:g}"]')))
    wait_summary(screen, listings_said(body["total"]))
    assert (screen.input_value("#price-min"), screen.input_value("#price-max")) == ("", "")


def test_every_search_says_how_many_listings_match(screen, served_artifacts: Path) -> None:
    """Words, a photo, both, and filters alone: the summary says the API's total, not the page shown."""
    body = search_for(screen, "bike table sofa laptop")
    assert body["total"] > len(body["results"]) or body["next_cursor"] is None
    assert summary(screen).startswith(listings_said(body["total"]) + " for “bike table sofa laptop”"), summary(screen)
    photo = (served_artifacts / "images" / "img-007-1.jpg").read_bytes()
    for words in ("", "kettle"):
        screen.fill("#q", words)
        body = answer_of(screen, lambda: screen.set_input_files(
            "#photo", files=[{"name": "p.jpg", "mimeType": "image/jpeg", "buffer": photo}]))
        wait_results(screen)
        what = "your photo" if not words else f"“{words}” and your photo"
        assert summary(screen).startswith(f"{listings_said(body['total'])} for {what}"), summary(screen)
        screen.get_by_role("button", name="Remove photo").click()
        screen.wait_for_function("() => document.getElementById('results').getAttribute('aria-busy') === 'false'")
    screen.fill("#q", "")
    open_filters(screen)
    body = answer_of(screen, lambda: screen.select_option("#category", "Appliances"))
    wait_summary(screen, "in Appliances")
    assert summary(screen).startswith(f"{listings_said(body['total'])} in Appliances"), summary(screen)


def utf16(text: str, start: int, end: int) -> str:
    """``text[start:end]`` in UTF-16 code units, as the API's spans count (and JavaScript indexes)."""
    return text.encode("utf-16-le")[2 * start:2 * end].decode("utf-16-le")


def card_marks(pg) -> list[dict]:
    return pg.eval_on_selector_all("#results-list article", """as => as.map(a => ({
        id: a.dataset.listingId, title: a.querySelector('.card-link').textContent,
        marks: [...a.querySelectorAll('.card-link mark')].map(m => m.textContent),
        snippet: a.querySelector('.snippet').hidden ? null : a.querySelector('.snippet').textContent,
        snippetMarks: [...a.querySelectorAll('.snippet mark')].map(m => m.textContent),
        posted: a.querySelector('.posted').hidden ? null : a.querySelector('.posted').textContent,
        datetime: a.querySelector('.posted time')?.dateTime ?? null,
        elements: [...a.querySelectorAll('.card-body *')].map(e => e.tagName.toLowerCase())}))""")


def posted_said(pg, seconds: float) -> tuple[str, str]:
    """("Posted 26 Feb 2022", "2022-02-26") in the browser's time zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    day = datetime.fromtimestamp(seconds, ZoneInfo(pg.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")))
    month = day.strftime("%b") if day.month != 9 else "Sept"  # en-GB's short September
    return f"Posted {day.day} {month} {day.year}", day.strftime("%Y-%m-%d")


def test_the_words_held_are_marked_and_dates_shown(screen) -> None:
    body = search_for(screen, "mountain bike")
    shown = {c["id"]: c for c in card_marks(screen)}
    marked_any = False
    for hit in body["results"]:
        c, marks = shown[hit["id"]], hit["highlight"]
        assert c["title"] == hit["title"]
        assert c["marks"] == [utf16(hit["title"], s, e) for s, e in marks["title"]]
        snippet = marks["snippet"]
        if snippet["spans"]:  # from shortly before its first mark, so that two lines of a card show one
            assert c["snippet"] == snippet["text"] or (c["snippet"].startswith("…")
                                                       and snippet["text"].endswith(c["snippet"][1:])), c["snippet"]
            assert c["snippet"].index(c["snippetMarks"][0]) <= 17
            assert c["snippetMarks"] == [utf16(snippet["text"], s, e) for s, e in snippet["spans"]]
        else:
            assert c["snippet"] is None, "a snippet holding no word searched takes room for nothing"
        assert (c["posted"], c["datetime"]) == posted_said(screen, hit["posted_at"])
        marked_any |= bool(c["marks"])
    assert marked_any, "no title was marked"
    assert {m.lower() for c in shown.values() for m in c["marks"]} <= {"mountain", "bike"}
    assert_axe_clean(screen, "words marked, dates shown")
    shot(screen, f"38-highlights-{screen.viewport_size['width']}")

    # The listing's page says when it was posted.
    first = open_card(screen, "results-list", 0)
    assert screen.text_content("#listing-posted") == shown[first["id"]]["posted"]
    screen.go_back()
    wait_results(screen)

    # A listing's own words are never markup: text nodes only, marks where the spans say (UTF-16: an
    # emoji counts two), spans that make no sense left out.
    title = "🛋️ Sofa <img src=x onerror=\"window.__pwned=1\"> & <b>co</b>"
    snippet = "Collect from Leeds: a grey sofa, <script>window.__pwned=2</script> like new"
    hit = {**crafted_answer()["results"][0], "title": title, "posted_at": 1645876800.0,  # 26 Feb 2022, noon UTC
           "highlight": {"title": [[4, 8], [1, 2], [100, 104], [6, 5]],
                         "snippet": {"text": snippet, "spans": [[snippet.index("sofa"), snippet.index("sofa") + 4]]}}}
    screen.route("**/v1/search", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(crafted_answer(results=[hit], total=1))))
    search_text(screen, "sofa")
    c = card_marks(screen)[0]
    assert c["title"] == title and c["marks"] == ["Sofa"]
    assert c["snippet"] == "…Leeds: a grey sofa, <script>window.__pwned=2</script> like new"
    assert c["snippetMarks"] == ["sofa"]
    assert (c["posted"], c["datetime"]) == ("Posted 26 Feb 2022", "2022-02-26")
    assert not {"img", "b", "script"} & set(c["elements"]), c["elements"]
    assert screen.evaluate("window.__pwned") is None
    screen.unroute("**/v1/search")
