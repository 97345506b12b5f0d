"""Highlights mark exactly the words held (plurals and accents folded), in UTF-16 units, and a snippet
window holds the first held word of a long description with only whole words marked."""

from listing_search.search.highlight import SNIPPET_CHARS, char_spans, highlight


def marked(text: str, spans) -> list[str]:
    units = text.encode("utf-16-le")
    return [units[2 * a:2 * b].decode("utf-16-le") for a, b in spans]


def test_title_marks_held_words_with_plurals_and_accents_folded() -> None:
    h = highlight("🛋️ Two Sofas and a Café chair (sofa)", "", ("sofa", "cafe"))
    assert marked("🛋️ Two Sofas and a Café chair (sofa)", h.title) == ["Sofas", "Café", "sofa"]


def test_a_word_that_only_contains_a_term_is_not_marked() -> None:
    assert char_spans("sofabed sofa-bed sofas", frozenset({"sofa"})) == [(8, 12), (17, 22)]


def test_snippet_window_holds_the_first_held_word_and_marks_only_whole_words() -> None:
    description = "word " * 200 + "a lovely oak table " + "filler " * 100 + "table"
    h = highlight("t", description, ("table",))
    assert h.snippet_text.startswith("…") and h.snippet_text.endswith("…")
    assert len(h.snippet_text) <= SNIPPET_CHARS + 2
    assert marked(h.snippet_text, h.snippet_spans) == ["table"], "the far 'table' lies outside the window"


def test_no_held_word_gives_the_description_start_unmarked() -> None:
    h = highlight("Sofa", "nothing here " * 40, ("lamp",))
    assert h.title == [] and h.snippet_spans == [] and h.snippet_text.startswith("nothing here")


def test_a_window_cut_inside_a_word_does_not_mark_its_tail() -> None:
    text = "xx" + "tables" * 3 + " table"
    assert char_spans(text, frozenset({"table"}), start=8) == [(21, 26)]


def _word_by_word(text: str, terms: frozenset[str], start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Every word of ``text[start:end]`` read and folded, one by one: what ``char_spans`` skims to."""
    import re

    from listing_search.core.text import fold_accents, fold_plural

    end = len(text) if end is None else end
    out = []
    for m in re.finditer(r"[^\W_]+", text):
        if m.start() < start or m.end() > end or (m.start() == start and start and re.match(r"[^\W_]", text[start - 1])):
            continue
        parts = re.findall(r"[a-z0-9]+", fold_accents(m.group().lower()))
        if parts and all(fold_plural(p) in terms for p in parts):
            out.append(m.span())
    return out


def test_skimming_marks_the_words_read_one_by_one_would() -> None:
    """Stems found in C stand for reading every word: plurals of every rule, a y made ies, accents,
    letters outside ASCII next to held words, a word that lower-cases to two letters, cut windows."""
    import random

    rng = random.Random(5)
    vocab = ["Chair", "chairs", "BENCHES", "bench", "batteries", "battery", "cookie", "cooky", "café", "Cafés",
             "£20", "tv", "TVs", "x", "12", "naïve", "İstanbul", "sofa-bed", "sofabed", "glass", "glasses",
             "’s", "—", "🛋️", "boxes", "box", "toy", "toies", "chair’s"]
    for _ in range(3000):
        text = " ".join(rng.choice(vocab) + rng.choice(["", "", ",", ".", "’"]) for _ in range(rng.randint(0, 30)))
        terms = frozenset(rng.sample(["chair", "bench", "battery", "cooky", "cafe", "tv", "x", "12", "naive",
                                      "glass", "box", "toy", "sofa", "bed", "s"], rng.randint(1, 3)))
        start = rng.randint(0, max(0, len(text) - 1)) if rng.random() < 0.3 else 0
        end = rng.randint(start, len(text)) if rng.random() < 0.3 else None
        assert char_spans(text, terms, start, end) == _word_by_word(text, terms, start, end), (text, terms, start, end)
