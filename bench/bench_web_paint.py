"""Claim: the search page's facets, highlights and suggestions add at most 20 ms to "Enter -> first results
painted" (p50), measured in Chromium from the page's own performance timing, against the page of eca91ab.

Each page is served by its own code over its own artifacts (`--old-src` a checkout of the old commit,
`--old-artifacts` a catalogue it can load; the new one is this checkout over `--artifacts`), or already
running at `--new-url` / `--old-url`. A third page splits the difference: the old commit's page (its
static files, given to the browser in place of the server's) over the new server, so
`page_added_p50_ms` is what the new page itself adds (facets, marks, dates, suggestions) on the same
answers, and the rest of `added_p50_ms` is the API's. One headless Chromium page each (1280x800, no
history) types each query, pauses as a buyer does (the new page's suggestions arrive meanwhile), and
presses Enter; the searches go round the pages, in turn first, so all see the same machine load.

In the page (a script run before its own, outside its CSP): t0 is the Enter keydown's `timeStamp`; the
results are "painted" when, after the first card of the new answer is in the list (a MutationObserver),
a requestAnimationFrame has run and a task posted from it has run (the frame holding it was produced).
`api_ms` is the search request's own time from Resource Timing (request start to response end), so
`page_ms` (painted minus api, per search) is what the page itself spends: parsing, cards, facets, marks.

    python bench/bench_web_paint.py --artifacts ART --old-src OLD_CHECKOUT --old-artifacts OLD_ART [--rounds 20]
"""

from __future__ import annotations

import argparse
import logging
import mimetypes
import os
import re
import statistics
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve_latency import free_port, wait_healthy  # noqa: E402
from benchlib import REPO, emit, machine_state, parser, setup_logging  # noqa: E402

log = logging.getLogger("bench.web_paint")

QUERIES = ("sofa", "garden table", "lawn mower", "mountain bike", "dining chairs", "office desk", "pram",
           "wardrobe", "coffee table", "tv stand", "bookcase", "double bed", "fridge freezer", "washing machine",
           "kids bike", "golf clubs", "guitar", "laptop", "mirror", "lamp", "armchair", "bbq", "drill", "rug")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
STATIC = Path("src/listing_search/serve/static")
TYPING_PAUSE_MS = 400  # between the last key and Enter: a buyer's pause, long enough for suggestions to come
SETTLE_MS = 300  # after the results, before the next query: idle, as between a buyer's searches

# Runs before the page's own script, in every document; records one sample per Enter in the search box.
PROBE = """(() => {
  const probe = window.__paint = { samples: [], armed: false };
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || e.target?.id !== 'q') return;
    const list = document.getElementById('results-list');
    Object.assign(probe, { t0: e.timeStamp, before: list.firstElementChild, armed: true,
                           resources: performance.getEntriesByType('resource').length });
  }, true);
  const afterNextFrame = (done) => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = done;
    channel.port2.postMessage(null);
  });
  document.addEventListener('DOMContentLoaded', () => {
    const list = document.getElementById('results-list');
    new MutationObserver(() => {
      const first = list.querySelector('article');
      if (!probe.armed || !first || list.firstElementChild === probe.before) return;
      probe.armed = false;
      const inDom = performance.now();
      afterNextFrame(() => {
        const painted = performance.now();
        const api = performance.getEntriesByType('resource').slice(probe.resources)
          .filter((r) => r.name.endsWith('/v1/search')).pop();
        probe.samples.push({ dom_ms: inDom - probe.t0, painted_ms: painted - probe.t0,
                             api_ms: api ? api.responseEnd - api.startTime : null });
      });
    }).observe(list, { childList: true });
  });
})();"""


@contextmanager
def served(src: Path, artifacts: Path) -> Iterator[str]:
    """`listing-search serve` of the code in ``src`` (its ``src/`` first on the path) over ``artifacts``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src / "src"), "LISTING_SEARCH_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            health = wait_healthy(client, proc, timeout=600)
        log.info("%s serving %s listings from %s", url, health.get("listings"), src)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def open_page(browser, url: str, static: Path | None = None):
    """The search page at ``url``; with ``static``, its HTML, script and style come from that folder
    instead (only those requests are intercepted: the API's go to the server untouched)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=url)
    context.add_init_script(PROBE)
    if static is not None:
        def from_folder(route) -> None:
            path = re.sub(r"^https?://[^/]+/", "", route.request.url).split("?")[0] or "index.html"
            file = static / path.removeprefix("static/")
            route.fulfill(status=200, body=file.read_bytes(), headers={"Cache-Control": "no-cache"},
                          content_type=mimetypes.guess_type(file.name)[0] or "text/html")
        context.route(re.compile(r"^https?://[^/]+/(static/[^?]*)?(\?.*)?$"), from_folder)
    page = context.new_page()
    page.goto("/")
    page.wait_for_selector("#results-list", state="attached")
    page.wait_for_function("() => document.body.dataset.ready !== 'false'")
    return page


def one_search(page, query: str) -> dict:
    """Type ``query``, pause, press Enter; the sample once the results are painted."""
    n = page.evaluate("window.__paint.samples.length")
    page.fill("#q", query)
    page.wait_for_timeout(TYPING_PAUSE_MS)
    page.press("#q", "Enter")
    page.wait_for_function("n => window.__paint.samples.length > n", arg=n, timeout=60_000)
    page.wait_for_function("() => document.getElementById('results').getAttribute('aria-busy') !== 'true'")
    page.wait_for_timeout(SETTLE_MS)
    return page.evaluate("window.__paint.samples[window.__paint.samples.length - 1]")


def p50(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def summary(samples: list[dict]) -> dict:
    painted = [s["painted_ms"] for s in samples]
    return {"painted_p50_ms": p50(painted), "painted_p90_ms": round(sorted(painted)[int(0.9 * (len(painted) - 1))], 1),
            "in_dom_p50_ms": p50([s["dom_ms"] for s in samples]), "api_p50_ms": p50([s["api_ms"] for s in samples]),
            "page_p50_ms": p50([s["painted_ms"] - s["api_ms"] for s in samples if s["api_ms"] is not None]),
            "n": len(samples)}


def run(a: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        new = a.new_url or stack.enter_context(served(REPO, a.artifacts))
        old = a.old_url or stack.enter_context(served(a.old_src, a.old_artifacts))
        variants = {"new": (new, None), "eca91ab": (old, None)}
        if a.old_src:
            variants["eca91ab_page_new_api"] = (new, a.old_src / STATIC)
        for name, folder in a.page:  # experiments: other static files over the new server
            variants[name] = (new, Path(folder))
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS)
        pages = {name: open_page(browser, url, static) for name, (url, static) in variants.items()}
        queries = (QUERIES * (1 + a.rounds // len(QUERIES)))[:a.rounds]
        for name, page in pages.items():  # warm: the first searches load the models' caches, fonts, photos
            for q in QUERIES[-3:]:
                one_search(page, q)
        samples: dict[str, list[dict]] = {name: [] for name in pages}
        start = machine_state()
        for i, q in enumerate(queries):
            names = list(pages)
            order = names[i % len(names):] + names[:i % len(names)]  # none always goes first
            for name in order:
                samples[name].append(one_search(pages[name], q))
            log.info("%s: %s", q, {n: round(s[-1]["painted_ms"], 1) for n, s in samples.items()})
        browser.close()
    result = {name: summary(s) for name, s in samples.items()}
    def added(than: str) -> float | None:
        both = (result["new"]["painted_p50_ms"], result.get(than, {}).get("painted_p50_ms"))
        return None if None in both else round(both[0] - both[1], 1)

    return {"bench": "web_paint", "claim_ms": 20, "added_p50_ms": added("eca91ab"),
            "page_added_p50_ms": added("eca91ab_page_new_api"), "pages": result,
            "queries": len(queries), "viewport": VIEWPORT, "typing_pause_ms": TYPING_PAUSE_MS,
            "machine_start": start}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--old-src", type=Path, help="a checkout of the old commit (its src/ is served)")
    ap.add_argument("--old-artifacts", type=Path, help="artifacts the old code loads")
    ap.add_argument("--new-url", help="the new page's server, already running")
    ap.add_argument("--old-url", help="the old page's server, already running")
    ap.add_argument("--rounds", type=int, default=20, help="searches per page")
    ap.add_argument("--page", nargs=2, action="append", default=[], metavar=("NAME", "STATIC_DIR"),
                    help="also time these static files over the new server (an experiment)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    if not a.old_url and not (a.old_src and a.old_artifacts):
        ap.error("give --old-url, or --old-src and --old-artifacts")
    setup_logging()
    emit(run(a))


if __name__ == "__main__":
    main()
