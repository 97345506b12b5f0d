"""Typo correction: fixes dropped letters against the catalogue's words, never touches safe words."""

from __future__ import annotations

import sys
import threading

from listing_search.index.spelling import ENGLISH_MIN_LENGTH, Correction, Speller, english_words, typo_prior

TEXTS = ["Grey corner sofa", "Office chair, black", "Pine wardrobe with two doors", "Kids chair and table",
         "iphone 12 pro 256gb"]


def speller(min_count: int = 1) -> Speller:
    return Speller.from_texts(TEXTS, min_count=min_count)


def test_dropped_letter_words_are_corrected():
    got = speller().correct("Chir and wardobe")
    assert got == Correction(original="Chir and wardobe", corrected="chair and wardrobe", changed=True,
                             replacements=[("chir", "chair"), ("wardobe", "wardrobe")])


def test_known_words_numbers_and_short_words_are_left_alone():
    s = speller()
    for query in ["corner sofa", "256gb 12", "1234", "sf", "tabl3"]:
        got = s.correct(query)
        assert got.corrected == query and not got.changed and got.replacements == []
    assert s.correct("Corner SOFA").corrected == "corner sofa"  # lower-cased, but nothing replaced
    assert not s.correct("Corner SOFA").changed


def test_a_word_with_no_close_target_is_kept():
    got = speller().correct("xylophone sofa")
    assert got.corrected == "xylophone sofa" and not got.changed


def test_of_two_equally_close_targets_the_more_frequent_wins():
    s = Speller.from_texts(["lamp shade", "lamb stew", "lamb chops", "lamb roast"])
    assert s.correct("lamz").corrected == "lamb"
    s.add("lamp post")
    s.add("lamp oil")
    s.add("lamp base")
    assert s.correct("lamz").corrected == "lamp"


def test_smaller_distance_beats_higher_count():
    s = Speller.from_texts(["chair"] + ["chain"] * 10)
    assert s.correct("chir").corrected == "chair"


def test_removal_stops_a_word_being_a_target_and_add_restores_it():
    s = speller()
    assert s.correct("wardobe").corrected == "wardrobe"
    s.remove("Pine wardrobe with two doors")
    assert s.count("wardrobe") == 0
    assert s.correct("wardobe").corrected == "wardobe"
    s.add("wardrobe")
    assert s.correct("wardobe").corrected == "wardrobe"


def test_removing_one_of_several_uses_lowers_the_count_but_keeps_the_target():
    s = speller()
    s.remove("Office chair, black")
    assert s.count("chair") == 1
    assert s.correct("chir").corrected == "chair"


def test_min_count_keeps_rare_words_out_of_targets_but_known():
    s = Speller.from_texts(["sofa bed", "sofa", "sofas", "sofaa"], min_count=2)
    assert s.vocabulary_size == 1  # only "sofa" is a target
    assert s.correct("sofaa").corrected == "sofaa"  # a catalogue word, so not rewritten
    assert s.correct("sofs").corrected == "sofa"


def test_known_words_counts_only_words_the_catalogue_uses():
    speller = Speller.from_texts(["oak dining table", "pine bed frame"])
    assert speller.known_words("oak table xqzvbnm") == 2
    assert speller.known_words("xqzvbnm qwzxkjv") == 0
    speller.remove("oak dining table")
    assert speller.known_words("oak table") == 0


def test_short_words_are_corrected_within_one_edit_only():
    speller = Speller.from_texts(["paw print", "vape pen", "wardrobe"])
    assert speller.correct("pqwx").corrected == "pqwx"  # "paw" is 2 edits away: nonsense stays nonsense
    assert speller.correct("vpe pen").corrected == "vpe pen"  # 3 letters beside other words: only if they vouch
    assert speller.correct("vpe").corrected == "vape"  # alone: a letter left out is put back
    assert speller.correct("pw").corrected == "pw"  # 2 letters: never corrected
    assert speller.correct("vapes").changed is False or speller.correct("vapes").corrected == "vape"
    assert speller.correct("wrdrobe").corrected == "wardrobe"  # 7 letters: 1 edit, corrected
    assert speller.correct("wrdrbe").corrected == "wardrobe"  # 6 letters: 2 edits allowed


def test_ties_go_to_the_word_listed_with_the_other_words():
    speller = Speller.from_texts(["chip chip chip fryer", "chair oak dining"])

    def context(candidate: str, others: list[str]) -> int:  # documents with the candidate and another word
        docs = [{"chip", "fryer"}, {"chair", "oak", "dining"}]
        return sum(1 for d in docs if candidate in d and d & set(others))

    assert speller.correct("chir").corrected == "chair"  # no context: the likelier slip (a letter left out)
    assert speller.correct("oak chir", context).corrected == "oak chair"
    assert speller.correct("chir fryer", context).corrected == "chip fryer"


def test_three_letter_words_only_when_the_other_words_vouch():
    speller = Speller.from_texts(["leather sofa", "spa day", "sea view"])

    def context(candidate: str, others: list[str]) -> int:
        docs = [{"leather", "sofa"}, {"spa", "day"}, {"sea", "view"}]
        return sum(1 for d in docs if candidate in d and d & set(others))

    assert speller.correct("leather sfa", context).corrected == "leather sofa"
    assert speller.correct("leather sfa").corrected == "leather sfa"  # no context: left alone
    assert speller.correct("leather sfy", context).corrected == "leather sfy"  # nothing listed beside it


def test_a_three_letter_word_alone_gets_a_left_out_letter_back():
    speller = Speller.from_texts(["leather sofa", "spa day", "sea view", "pine desk", "oak desk", "deck chair",
                                  "bed"])
    # "sofa" (a letter left out) before "spa" and "sea" (a wrong letter), though all are one edit away
    assert speller.correct("sfa").corrected == "sofa"
    assert speller.correct("Dsk").replacements == [("dsk", "desk")]
    assert speller.correct("dek").corrected == "desk"  # desk and deck: both a letter short, desk the commoner
    assert speller.correct("pne").corrected == "pine"
    for typed in ["ofa", "spx", "bex"]:  # only a changed first letter, or a wrong letter, would make a word
        assert speller.correct(typed).corrected == typed
    assert speller.correct("sfa 2024").corrected == "sofa 2024"  # a number no listing uses vouches for nothing
    taxis = Speller.from_texts(["taxi rank sign", "zoom lens", "bird table"])
    for english in ["tax", "zoo", "bid"]:  # real words a buyer meant, though no listing uses them
        assert taxis.correct(english).corrected == english
    assert Speller.from_texts(["taxi rank sign"], english=False).correct("tax").corrected == "taxi"
    assert speller.correct("sfa", spelling_context({"sofa": {"red"}})).corrected == "sofa"


def spelling_context(neighbours: dict[str, set[str]]):
    return lambda candidate, others: len(neighbours.get(candidate, set()) & set(others))


def test_a_left_out_letter_is_likelier_than_a_wrong_or_extra_one():
    # "desk" and "be" are far more common, but "dess" and "bie" are one letter short of "dress" and "bike"
    speller = Speller.from_texts(["desk desk desk desk", "dress", "be be be be", "bike", "girls bike",
                                  "blades blades blades", "ladies"])
    assert speller.correct("boohoo dess").corrected == "boohoo dress"
    assert speller.correct("lades").corrected == "ladies"  # the first letter kept beats the commoner word

    def context(candidate: str, others: list[str]) -> int:
        docs = [{"girls", "bike", "be"}]
        return sum(1 for d in docs if candidate in d and d & set(others))

    assert speller.correct("girls bie", context).corrected == "girls bike"  # both vouched: the left-out letter


def test_typo_prior_orders_the_kinds_of_slip():
    # a letter left out, then a key pressed twice, then a wrong letter, then any other extra letter
    assert typo_prior("dess", "dress") < typo_prior("dess", "des") < typo_prior("dess", "desk")
    assert typo_prior("desk", "dsk") > typo_prior("desk", "dusk")
    assert typo_prior("lades", "ladies") < typo_prior("lades", "blades")


def test_a_long_english_word_the_catalogue_lacks_stands_as_typed():
    # Measured on never-seen titles: "robot" -> root, "missile" -> missing, "wedgwood" -> redwood,
    # "blizzard" -> lizard were searched instead of what the seller wrote.
    texts = ["missing parts", "redwood table", "lizard tank", "garden root cutter"]
    speller = Speller.from_texts(texts)
    for word in ("missile", "wedgwood", "blizzard"):
        got = speller.correct(f"mens {word}")
        assert got.corrected == f"mens {word}" and not got.changed
    # the same words are corrected without the English list: the rule, not the catalogue, keeps them
    plain = Speller.from_texts(texts, english=False)
    assert plain.correct("mens missile").corrected == "mens missing"
    assert plain.correct("blizzard").corrected == "lizard"
    # English words shorter than 6 letters stay correctable: one dropped letter makes many of them
    assert Speller.from_texts(["dining chairs", "chairs"]).correct("dining chars").corrected == "dining chairs"
    assert speller.correct("robot").corrected == "root"
    # a catalogue typo is no English word: still corrected
    assert Speller.from_texts(["pine wardrobe"]).correct("wardobe").corrected == "wardrobe"


def test_the_english_list_holds_common_long_words_only():
    words = english_words()
    assert {"missile", "wedgwood", "blizzard", "trekking", "wardrobe"} <= words
    assert not {"chars", "robot", "wardobe", "lenova"} & words  # short, or not English
    assert min(len(w) for w in words) == ENGLISH_MIN_LENGTH and all(w.isalpha() for w in words)
    assert 20_000 < len(words) < 60_000  # read from symspellpy's bundled list, not a handful


def test_words_coming_and_going_while_queries_are_corrected_never_raise():
    # The live indexes' follower thread changes the vocabulary while request threads correct
    # queries; without the speller's lock symspell raised KeyError within milliseconds here.
    speller = Speller.from_texts(["pine wardrobe"], english=False)
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            speller.add("wardrobes")
            speller.remove("wardrobes")

    def reader() -> None:
        while not stop.is_set():
            try:
                assert speller.correct("wardobes").corrected in ("wardrobe", "wardrobes")
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(exc))
                stop.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        stop.wait(1.0)
        stop.set()
        for t in threads:
            t.join(5)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


def test_a_key_pressed_twice_is_as_likely_as_one_left_out():
    """"sofaa bed" meant sofa bed: the doubled letter, not "sofas" (one letter wrong)."""
    assert typo_prior("sofaa", "sofa") < typo_prior("sofaa", "sofas")
    assert typo_prior("tble", "table") < typo_prior("tabble", "table") < typo_prior("tavle", "table")
    speller = Speller.from_texts(["sofa bed", "sofas for sale", "a sofa", "sofas sofas bed"], english=False)
    assert speller.correct("sofaa bed").corrected == "sofa bed"
