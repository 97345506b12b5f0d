"""The golden set through the API: real titles as queries must keep finding their category.

Each golden query is a real listing that is NOT in the catalogue; its title (and its title with one
letter dropped) goes to ``POST /v1/search``. P@10 counts the top 10 that share the query's root
category; nDCG@10 grades 2 for the same category path, 1 for the same root, against the best the
catalogue allows. The floors in golden.json sit just below the measured numbers (measured - 0.03,
see scripts/make_golden.py), so a ranking regression fails ``make test``. At least 80% of the
committed nonsense queries must come back ``no_match``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from listing_search.core.grading import grade, ideal_grades, ndcg_at_k
from listing_search.fit.no_match import no_match_queries
from listing_search.serve.app import create_app
from tests.golden.conftest import golden_settings, load_golden

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
K = 10
NO_MATCH_SHARE = 0.8


@pytest.fixture(scope="module")
def client(golden_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(golden_settings(golden_artifacts))) as c:
        yield c


def catalogue_counts(artifacts: Path) -> tuple[Counter, Counter]:
    import pandas as pd

    from listing_search import schema as S

    listings = pd.read_csv(artifacts / S.LISTINGS_CSV, dtype=str, keep_default_na=False)
    return Counter(listings[S.CATEGORY_PATH]), Counter(listings[S.ROOT_CATEGORY])


def search(client: TestClient, text: str) -> dict:
    resp = client.post("/v1/search", data={"text": text, "k": K})
    assert resp.status_code == 200, (text, resp.text)
    return resp.json()


def measure(client: TestClient, queries: list[dict], field: str, paths: Counter, roots: Counter) -> dict:
    """Mean P@10 and path-graded nDCG@10 of the queries' ``field`` text, and how many ran."""
    precision, ndcg = [], []
    for q in queries:
        if not q[field]:
            continue
        results = search(client, q[field])["results"]
        grades = np.array([grade(q["root"], q["path"], r["category"], r["category_path"]) for r in results], np.int64)
        precision.append(float((grades >= 1).sum()) / K)
        ndcg.append(ndcg_at_k(grades, ideal_grades(paths[q["path"]], roots[q["root"]], K), K))
    return {"queries": len(precision), "precision_at_10": round(float(np.mean(precision)), 4),
            "ndcg_at_10": round(float(np.mean(ndcg)), 4)}


def test_golden_queries_stay_above_their_floors(real_data: Path, client: TestClient, golden_artifacts: Path) -> None:
    golden = load_golden()
    paths, roots = catalogue_counts(golden_artifacts)
    title = measure(client, golden["queries"], "title", paths, roots)
    typo = measure(client, golden["queries"], "typo_title", paths, roots)
    measured = {"title_precision_at_10": title["precision_at_10"], "title_ndcg_at_10": title["ndcg_at_10"],
                "typo_title_precision_at_10": typo["precision_at_10"]}
    floors = golden["floors"]
    build = json.loads((golden_artifacts / "build_seconds.json").read_text())
    message = (f"golden measured {json.dumps(measured)} vs floors {json.dumps(floors)} "
               f"({title['queries']} titles, {typo['queries']} misspelt; catalogue built in {build})")
    print(message)
    assert floors, f"golden.json has no floors yet: {message}"
    below = {k: v for k, v in measured.items() if v < floors[k]}
    assert not below, f"ranking regression, below floor: {below}; {message}"


def nonsense_no_match_share(client: TestClient) -> tuple[float, list[str]]:
    """Share of the committed nonsense queries answered ``no_match``, and the ones that were not."""
    nonsense = no_match_queries()
    missed = [t for t in nonsense if not search(client, t)["no_match"]]
    return 1 - len(missed) / len(nonsense), missed


def test_nonsense_queries_come_back_as_no_match(real_data: Path, client: TestClient) -> None:
    share, missed = nonsense_no_match_share(client)
    assert share >= NO_MATCH_SHARE, f"no_match for {share:.4f} of the nonsense queries; missed {missed}"


def short_query_scores(client: TestClient, queries: list[dict], kind: str, catalogue: list[tuple[str, str]]) -> dict:
    """For each golden title's buyer query of ``kind`` (``fit.buyer_queries``): the share of the top 10
    holding its words, of min(10, the catalogue listings holding them) (as ``evaluate``'s
    ``held_share``; queries no catalogue listing holds are left out), and the share in the query's root
    category (of 10)."""
    from listing_search.core.text import match_terms
    from listing_search.fit.buyer_queries import head, modifier_head
    from listing_search.search.match import holds

    make = {"head": head, "modifier_head": modifier_head}[kind]
    held, precision = [], []
    for q in queries:
        text = make(q["title"])
        if not text:
            continue
        terms = match_terms(text)
        holders = sum(holds(terms, title, description) for title, description in catalogue)
        results = search(client, text)["results"]
        precision.append(float(sum(r["category"] == q["root"] for r in results)) / K)
        if holders:
            shown = sum(holds(terms, r["title"], r.get("description") or "") for r in results)
            held.append(shown / min(K, holders))
    return {"queries": len(precision), "held_share": round(float(np.mean(held)), 4),
            "precision_at_10": round(float(np.mean(precision)), 4)}


def test_buyers_short_queries_stay_above_their_floors(real_data: Path, client: TestClient,
                                                      golden_artifacts: Path) -> None:
    """A buyer's one or two words (the golden titles' head noun, modifier + head noun): the top 10 hold
    them, and stay in the listing's root category, at least as often as the floors in golden.json."""
    import pandas as pd

    from listing_search import schema as S

    golden = load_golden()
    floors = golden["short_floors"]
    listings = pd.read_csv(golden_artifacts / S.LISTINGS_CSV, dtype=str, keep_default_na=False)
    catalogue = list(zip(listings[S.TITLE], listings[S.DESCRIPTION]))
    measured = {f"{kind}_{name}": value for kind in ("head", "modifier_head")
                for name, value in short_query_scores(client, golden["queries"], kind, catalogue).items()
                if name != "queries"}
    print(f"short queries measured {json.dumps(measured)} vs floors {json.dumps(floors)}")
    below = {k: v for k, v in measured.items() if v < floors[k]}
    assert not below, f"short-query regression, below floor: {below}; measured {measured}"
