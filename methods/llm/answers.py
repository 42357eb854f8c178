"""From a generated answer to a chosen candidate, two ways.

`match_answer` is this benchmark's rule. Upstream's rule (`upstream_match`, reported as
"llara_hr1") calls an answer valid only when exactly one candidate title is a substring of it, so
a correct answer whose title contains another candidate's title ("Heat" inside "Heat and Dust")
counts as invalid. Here:
1. the first line of the answer is normalised (casefolded, punctuation dropped, whitespace
   collapsed); a candidate whose normalised title equals it wins (if exactly one does);
2. otherwise the candidates whose normalised titles occur in it as whole words, keeping only
   the longest of nested matches ("heat and dust" over "heat"); exactly one left wins;
3. otherwise the answer is invalid (-1).
"""

from __future__ import annotations

import unicodedata

INVALID = -1


def first_line(answer: str) -> str:
    return answer.strip().split("\n", 1)[0].strip()


def normalise(text: str) -> str:
    """Casefold, punctuation and symbols to spaces, whitespace collapsed."""
    chars = [" " if unicodedata.category(c)[0] in "PSZC" else c for c in text.casefold()]
    return " ".join("".join(chars).split())


def match_answer(answer: str, candidate_titles: list[str]) -> int:
    """Index of the candidate the answer names, or INVALID (-1). See the module docstring."""
    said = normalise(first_line(answer))
    if not said:
        return INVALID
    names = [normalise(t) for t in candidate_titles]
    exact = [i for i, n in enumerate(names) if n == said]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:  # two candidates with the same normalised title: the answer is ambiguous
        return INVALID
    padded = f" {said} "
    inside = [i for i, n in enumerate(names) if n and f" {n} " in padded]
    longest = [i for i in inside if not any(j != i and names[i] != names[j] and names[i] in names[j] for j in inside)]
    return longest[0] if len(longest) == 1 else INVALID


def upstream_match(answer: str, candidate_titles: list[str]) -> int:
    """LLaRA/iLoRA's rule: valid iff exactly one lowercased title is a substring of the lowercased
    first line; that candidate is the choice."""
    said = first_line(answer).lower()
    inside = [i for i, t in enumerate(candidate_titles) if t.lower() in said]
    return inside[0] if len(inside) == 1 else INVALID
