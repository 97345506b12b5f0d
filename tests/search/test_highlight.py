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
