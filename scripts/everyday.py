"""The everyday buyer queries (tests/golden/everyday) through the served API: each query's top 10 as a
buyer sees it, judged by the committed judgements (rubric.md).

    python scripts/everyday.py --artifacts ART top --out top.json      # top 10s; the unjudged listed apart
    python scripts/everyday.py --artifacts ART score                   # wanted in the top 10s, summed

``top`` writes every query's top 10 with the listing's title, description, category, price and location,
each marked with its judgement where one of the judgement files has it (``"wanted": null`` when none has:
those are judged by the rubric, in a commit, before ``score`` is read). ``score`` exits 2 when a shown
listing is unjudged. A query is typed into the search box as is (``text`` of POST /v1/search, k=10).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from listing_search.config import Settings
from listing_search.serve.app import create_app

EVERYDAY = Path(__file__).resolve().parents[1] / "tests" / "golden" / "everyday"


def judgements() -> dict[tuple[str, str], dict]:
    """(query, listing id) -> the judgement, from every judgements-*.json (a listing judged once keeps it:
    a later file judges only what is new to a top 10)."""
    out: dict[tuple[str, str], dict] = {}
    for f in sorted(EVERYDAY.glob("judgements-*.json")):
        for q in json.loads(f.read_text())["queries"]:
            for r in q["results"]:
                out.setdefault((q["q"], r["id"]), {"wanted": r["wanted"], "why": r.get("why", ""), "file": f.name})
    return out


def top10(artifacts: Path) -> list[dict]:
    queries = json.loads((EVERYDAY / "queries.json").read_text())["queries"]
    judged = judgements()
    out = []
    with TestClient(create_app(Settings(artifacts_dir=artifacts))) as client:
        for q in queries:
            r = client.post("/v1/search", data={"text": q["q"], "k": 10})
            r.raise_for_status()
            body = r.json()
            results = []
            for hit in body["results"]:
                j = judged.get((q["q"], hit["id"]))
                results.append({"id": hit["id"], "title": hit["title"],
                                "description": (hit.get("description") or "")[:300],
                                "category": hit.get("category_path") or hit.get("category"), "price": hit.get("price"),
                                "location": hit.get("location"), "match": hit.get("match"),
                                "duplicates": (hit.get("duplicates") or {}).get("count"),
                                "wanted": None if j is None else j["wanted"], "why": None if j is None else j["why"]})
            out.append({"q": q["q"], "wanted_line": q["wanted"], "total": body.get("total"),
                        "no_match": body.get("no_match"), "results": results})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("what", choices=["top", "score"])
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    tops = top10(a.artifacts)
    unjudged = [(t["q"], r["id"], r["title"]) for t in tops for r in t["results"] if r["wanted"] is None]
    if a.what == "top":
        text = json.dumps(tops, indent=1, ensure_ascii=False)
        (a.out.write_text(text) if a.out else print(text))
        print(json.dumps({"queries": len(tops), "shown": sum(len(t["results"]) for t in tops),
                          "unjudged": len(unjudged)}), file=sys.stderr)
        return 0
    if unjudged:
        print(f"error: {len(unjudged)} shown listings have no judgement (run `top` and judge them first): "
              f"{unjudged[:5]}", file=sys.stderr)
        return 2
    per = {t["q"]: sum(r["wanted"] for r in t["results"]) for t in tops}
    print(json.dumps({"wanted_in_top10": sum(per.values()), "shown": sum(len(t["results"]) for t in tops),
                      "per_query": per}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
