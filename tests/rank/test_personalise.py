"""Profiles from history and the feed: favours the history, never shows what was seen."""

from __future__ import annotations

import numpy as np

from listing_search.rank.features import FEATURES, Query
from listing_search.rank.personalise import HistoryEvent, build_profile, event_weight, recommend
from listing_search.rank.ranker import Ranker
from tests.rank.fixtures import make_vectors

NOW = 1_700_000_000.0
DAY = 86400.0


def _ranker() -> Ranker:
    r = Ranker.default(list(FEATURES))
    r.weights[0, FEATURES.index("category_agreement")] = 1.0
    return r


def test_feed_excludes_seen_and_favours_history_category():
    v = make_vectors(n=30)
    history = [HistoryEvent("l001", "viewed"), HistoryEvent("l004", "liked"), HistoryEvent("l007", "searched")]
    profile = build_profile(history, v, now=NOW)
    feed = recommend(profile, v, _ranker(), k=8)
    assert not {1, 4, 7} & set(feed.rows.tolist())
    assert (v.labels[feed.rows] == 1).mean() >= 0.75
    assert profile.category_prefs.argmax() == 1 and abs(profile.category_prefs.sum() - 1) < 1e-9


def test_unknown_ids_are_counted_and_ignored():
    v = make_vectors(n=12)
    profile = build_profile([HistoryEvent("nope"), HistoryEvent("l002")], v, now=NOW)
    assert profile.unknown_ids == ["nope"] and profile.used == 1
    empty = build_profile([HistoryEvent("nope")], v, now=NOW)
    assert empty.empty and len(recommend(empty, v, _ranker(), k=5).rows) == 0


def test_recency_and_event_kind_weights():
    assert event_weight(HistoryEvent("x", "liked"), NOW) > event_weight(HistoryEvent("x", "viewed"), NOW)
    old = event_weight(HistoryEvent("x", "viewed", NOW - 14 * DAY), NOW, half_life_days=14)
    assert abs(old - 0.5) < 1e-9
    v = make_vectors(n=30)
    recent_home = [HistoryEvent("l003", "viewed", NOW - DAY), HistoryEvent("l001", "viewed", NOW - 60 * DAY)]
    assert build_profile(recent_home, v, now=NOW).category_prefs.argmax() == 0


def test_query_with_history_blends_and_still_excludes_seen():
    v = make_vectors(n=30)
    query = Query(text_vec=v.text[2])  # a category-2 query
    history = [HistoryEvent(f"l{i:03d}") for i in (2, 5, 8)]
    got = recommend(build_profile(history, v, now=NOW), v, _ranker(), k=5, query=query, history_weight=0.5)
    assert not {2, 5, 8} & set(got.rows.tolist())
    no_history = recommend(build_profile([], v, now=NOW), v, _ranker(), k=5, query=query)
    assert 2 in no_history.rows.tolist()
