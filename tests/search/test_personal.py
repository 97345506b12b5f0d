"""A history leans a search only as far as it is related: laptops viewed leave a record search alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from listing_search.core.query import HistoryEvent, Page, Query
from listing_search.search.engine import SearchEngine
from listing_search.search.rank import relatedness
from tests.serve.conftest import serve_settings


def test_an_unrelated_history_leaves_the_results_alone_and_a_related_one_leans_them(ranked_artifacts: Path):
    engine = SearchEngine.load(serve_settings(ranked_artifacts), ranked_artifacts)
    try:
        view = engine.live.catalog
        laptops = tuple(HistoryEvent(view.listing_id[r], "liked") for r in view.live_rows()
                        if "laptop" in view.title[r])[:3]
        plain = engine.search(Query(text="vinyl record", page=Page(10)))
        leaned = engine.search(Query(text="vinyl record", page=Page(10), history=laptops))
        assert [h.listing.listing_id for h in leaned.hits] == [h.listing.listing_id for h in plain.hits]
        assert [h.score for h in leaned.hits] == [h.score for h in plain.hits]

        u = engine.pipeline.understand(Query(text="gaming laptop"), show=False)
        profile = engine.pipeline.personaliser.profile(view, laptops)
        assert relatedness(u, profile) == 1.0
        own = engine.search(Query(text="gaming laptop", page=Page(10), history=laptops))
        alone = engine.search(Query(text="gaming laptop", page=Page(10)))
        assert not np.allclose([h.score for h in own.hits], [h.score for h in alone.hits])
    finally:
        engine.close()


def test_a_history_of_old_events_still_points_somewhere(ranked_artifacts: Path):
    """Weights decay by age (half-life 14 days): a years-old history must still give unit vectors, its
    events weighted in ratio (a sum of 1e-24-weighted vectors is not a direction)."""
    engine = SearchEngine.load(serve_settings(ranked_artifacts), ranked_artifacts)
    try:
        view = engine.live.catalog
        ids = [view.listing_id[r] for r in view.live_rows() if "laptop" in view.title[r]][:3]
        old = tuple(HistoryEvent(i, "viewed", 1.0e9) for i in ids)  # 2001
        profile = engine.pipeline.personaliser.profile(view, old)
        assert abs(float(np.linalg.norm(profile.text_vec)) - 1.0) < 1e-5
        assert abs(float(np.linalg.norm(profile.image_vec)) - 1.0) < 1e-5
    finally:
        engine.close()


def test_path_affinity_is_the_history_share_by_the_levels_two_paths_share():
    """The same path counts fully, a sibling by its shared levels to ``PATH_POWER``, another root not at all."""
    from types import SimpleNamespace

    from listing_search.search.rank import PATH_POWER, path_affinity

    names = ["Home / Sofas / Private", "Home / Sofas / Trade", "Home / Beds", "Garden / Mowers", "Home / Sofas"]
    catalog = SimpleNamespace(paths=SimpleNamespace(values=names), path=np.array([0, 1, 2, 3, 4, -1]))
    prefs = {"Home / Sofas / Private": 2 / 3, "Garden / Mowers": 1 / 3}
    got = path_affinity(catalog, prefs, np.arange(6))
    want = [2 / 3, 2 / 3 * (2 / 3) ** PATH_POWER, 2 / 3 * (1 / 3) ** PATH_POWER, 1 / 3,
            2 / 3 * (2 / 3) ** PATH_POWER, 0.0]
    np.testing.assert_allclose(got, want)
    assert got[0] >= 0.5 > got[1]  # only the viewed path itself is promoted into the first tier (PROMOTE)
