"""A real build (``make run``'s artifacts): everyday searches show each ad once, and buying ads last.

"Each ad once" is judged without ``index.duplicates``: no two results of a top 10 share a
byte-identical photo file or the same title from one place. Needs a built artifacts folder
(``ARTIFACTS_DIR``, default ./artifacts); skipped without one, like tests/serve/test_realdata.py.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from listing_search import schema as S
from listing_search.core.query import Page, Query

pytestmark = pytest.mark.realdata
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "artifacts"))


@pytest.fixture(scope="module")
def engine():
    from listing_search.search.engine import SearchEngine
    from listing_search.settings import Settings

    if not all((ARTIFACTS / n).is_file() for n in (S.STORE_DB, S.RANKER_JSON)):
        pytest.skip(f"no built and ranker-tuned catalogue in {ARTIFACTS}")
    return SearchEngine.load(Settings(artifacts_dir=ARTIFACTS))


def copies(hits) -> list[tuple[str, str]]:
    """Pairs of results that are one ad by a byte-identical photo or the same title from one place."""
    seen: dict[str, str] = {}
    out = []
    for h in hits:
        title = " ".join(re.findall(r"[a-z0-9]+", h.listing.title.lower()))
        marks = {f"title:{title}|{h.listing.location}"}
        for image_id in h.listing.image_ids:
            path = ARTIFACTS / S.CLEAN_IMAGES_DIR / f"{image_id}.jpg"
            if path.is_file():
                marks.add("photo:" + hashlib.md5(path.read_bytes()).hexdigest())
        out += [(seen[m], h.listing.listing_id) for m in marks if m in seen]
        seen.update(dict.fromkeys(marks, h.listing.listing_id))
    return out


@pytest.mark.parametrize("words, k", [("sofa", 5), ("sofa", 10), ("wardrobe", 10), ("iphone", 10)])
def test_a_top_of_everyday_searches_holds_each_ad_once(engine, words: str, k: int) -> None:
    hits = engine.search(Query(text=words, page=Page(k))).hits
    assert len(hits) == k and copies(hits) == []


def test_buying_ads_follow_every_sale_ad(engine) -> None:
    result = engine.search(Query(text="iphone", page=Page(200)))
    flags = [h.buying for h in result.hits]
    assert len(result.hits) == result.total and flags == sorted(flags)
