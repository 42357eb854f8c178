"""The answer parser: exact match after normalisation, then the unique (longest) contained title."""

from methods.llm.answers import INVALID, match_answer, normalise, upstream_match
from methods.llm.prompts import ItemSlot, build_prompt, domain_for, template_index

CANDS = ["Heat", "Heat and Dust", "The Godfather", "The Godfather: Part II", "Se7en", "Babe (2)", "Babe"]


def test_exact_match_beats_contained_titles():
    assert match_answer(" Heat\nmore text", CANDS) == 0
    assert match_answer("heat and dust", CANDS) == 1
    assert match_answer("The Godfather: Part II", CANDS) == 3


def test_case_punctuation_and_whitespace_are_ignored():
    assert match_answer("  THE GODFATHER PART II.  ", CANDS) == 3
    assert match_answer("se7en!", CANDS) == 4
    assert normalise("  The  Godfather:\tPart II ") == "the godfather part ii"


def test_longest_of_nested_contained_titles_wins():
    assert match_answer("I recommend Heat and Dust (1983)", CANDS) == 1
    assert match_answer("I recommend The Godfather: Part II", CANDS) == 3


def test_two_unrelated_titles_or_none_are_invalid():
    assert match_answer("Heat or Se7en", CANDS) == INVALID
    assert match_answer("Casablanca", CANDS) == INVALID
    assert match_answer("", CANDS) == INVALID
    assert match_answer("\nHeat", CANDS) == 0  # leading blank lines are stripped before the first line


def test_duplicate_titles_are_ambiguous_unless_disambiguated():
    assert match_answer("Babe", CANDS) == 6
    assert match_answer("Babe (2)", CANDS) == 5
    assert match_answer("Heat", ["Heat", "heat."]) == INVALID


def test_upstream_rule_counts_substring_collisions_as_invalid():
    assert upstream_match("Heat and Dust", CANDS) == INVALID  # "heat" is inside too
    assert upstream_match("Se7en", CANDS) == 4
    assert match_answer("Heat and Dust", CANDS) == 1


def test_prompt_is_deterministic_and_hybrid_adds_one_slot_per_title():
    titles = [f"T{i}" for i in range(30)]
    text = build_prompt((1, 2, 3), tuple(range(10, 30)), titles, "movie", hybrid=False)
    hybrid = build_prompt((1, 2, 3), tuple(range(10, 30)), titles, "movie", hybrid=True)
    assert len(text) == 1 and "20 movie title" in text[0] and "T1, T2, T3" in text[0]
    assert [p.item for p in hybrid if isinstance(p, ItemSlot)] == [1, 2, 3, *range(10, 30)]
    assert "".join(p for p in hybrid if isinstance(p, str)) == text[0]
    assert template_index((1, 2, 3), tuple(range(10, 30))) == template_index((1, 2, 3), tuple(range(10, 30)))
    assert {domain_for("ml-100k"), domain_for("lastfm"), domain_for("steam"), domain_for("synthetic")} == {
        "movie", "artist", "game", "item"}


def test_history_only_ablation_lists_no_candidate():
    """bench/llm_levers.py's prompt knob: the history stays, no candidate title or slot is in the prompt."""
    titles = [f"T{i}" for i in range(30)]
    text = build_prompt((1, 2, 3), tuple(range(10, 30)), titles, "movie", hybrid=False, list_candidates=False)
    hybrid = build_prompt((1, 2, 3), tuple(range(10, 30)), titles, "movie", hybrid=True, list_candidates=False)
    assert text == ["This user has watched T1, T2, T3 in the previous. Please predict the next movie this user will watch. Answer:"]
    assert [p.item for p in hybrid if isinstance(p, ItemSlot)] == [1, 2, 3]
    assert "".join(p for p in hybrid if isinstance(p, str)) == text[0]
