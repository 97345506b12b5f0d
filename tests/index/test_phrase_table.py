"""The suggestions' phrase table: prefix lookups ranked by use, short prefixes' answers kept a while."""

from listing_search.index.suggest import PhraseTable


def table(*titles: str) -> PhraseTable:
    t = PhraseTable()
    for title in titles:
        t.add(title)
    return t


def test_extending_ranks_by_titles_using_the_phrase_then_length() -> None:
    t = table("oak table", "oak table and chairs", "oak chair", "office chair")
    assert t.extending("oak", 3) == ["oak", "oak table", "oak chair"]
    assert t.extending("o", 2) == ["oak", "oak table"]
    assert t.has_prefix("offi") and not t.has_prefix("zz")


def test_a_removed_title_stops_extending_and_has_prefix_skips_unused_phrases() -> None:
    t = table("walnut desk", "oak desk")
    t.remove("walnut desk")
    assert "walnut" not in t.extending("walnut", 5) and not t.has_prefix("wal")


def test_a_short_prefix_answer_is_kept_until_stale_then_follows_changes() -> None:
    t = table("oak table")
    assert t.extending("o", 5) == ["oak", "oak table"]
    t.add("otter lamp")
    t.add("otter lamp")
    assert t.extending("o", 5) == ["oak", "oak table"], "kept: a one-letter answer is recomputed at most every few s"
    t.SHORT_STALE_S = 0.0
    assert t.extending("o", 5)[:2] == ["otter", "otter lamp"]
    assert t.extending("ott", 5) == ["otter", "otter lamp"], "a longer prefix is always current"
