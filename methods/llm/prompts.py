"""LLaRA's prompts: the history titles, the candidate titles, and the answer.

A prompt is a list of pieces: text, or an `ItemSlot` where a hybrid prompt puts one placeholder
position right after an item's title (its input embedding is later replaced by the projected
SASRec embedding of that item). A text-only prompt has no slots and is one piece of text, so it
tokenises exactly as the whole string would.

Upstream picked one of three templates at random per batch; here the template is a fixed
function of the sample (history and candidates), so a sample reads the same in every epoch, every
batch size and every method. The number of candidates in the text is the real one (upstream
said "10 titles" in places while listing 20).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# iLoRA/LLaRA's three movie templates (prompt/movie.txt upstream), with the domain words made
# slots so that artists (LastFM) and games (Steam) read naturally.
TEMPLATES = (
    "This user has {past} {history} in the previous. Please predict the next {noun} this user will {future}. "
    "Choose the answer from the following {n} {name}s: {candidates}. Answer:",
    "This user has {past} {history} in the previous. Given the following {n} {name}s: {candidates}, "
    "recommend one {noun} for this user to {future} next. The {name} you recommend is:",
    "The visit history of this user is: {history}. Recommend a next {noun} for this user to {future} from the "
    "following {name} set: {candidates}. The recommendation should contain one {name} only. Recommendation:",
)

DOMAINS = {
    "movie": {"past": "watched", "future": "watch", "noun": "movie", "name": "movie title"},
    "artist": {"past": "listened to", "future": "listen to", "noun": "artist", "name": "artist name"},
    "game": {"past": "played", "future": "play", "noun": "game", "name": "game title"},
    "item": {"past": "interacted with", "future": "interact with", "noun": "item", "name": "item title"},
}

# Not the paper's prompt: a labelled ablation only (bench/llm_levers.py's `prompt` knob, issue 8). The
# first template without its candidate sentence, so a training window costs about half the tokens and
# the model ranks candidates by P(title | history) alone, as a next-item language model would.
HISTORY_ONLY = "This user has {past} {history} in the previous. Please predict the next {noun} this user will {future}. Answer:"

SEPARATOR = ", "
ANSWER_END = "\n"  # the training target is " " + title + newline; the newline ends the answer


def domain_for(dataset: str) -> str:
    """The template words for a data set, from its name (MovieLens, LastFM, Steam; else generic)."""
    name = dataset.casefold()
    if "lastfm" in name or "music" in name:
        return "artist"
    if "steam" in name or "game" in name:
        return "game"
    if name.startswith("ml-") or "movie" in name:
        return "movie"
    return "item"


@dataclass(frozen=True)
class ItemSlot:
    """One placeholder position for `item`'s projected embedding (hybrid prompts only)."""

    item: int


Piece = str | ItemSlot


def template_index(history: tuple[int, ...], candidates: tuple[int, ...]) -> int:
    """A fixed template per sample: a stable hash (crc32, not Python's salted hash) of its items."""
    key = (",".join(map(str, history)) + "|" + ",".join(map(str, candidates))).encode()
    return zlib.crc32(key) % len(TEMPLATES)


def build_prompt(
    history: tuple[int, ...], candidates: tuple[int, ...], titles: list[str], domain: str, hybrid: bool,
    list_candidates: bool = True,
) -> list[Piece]:
    """The prompt as pieces; adjacent text is merged, so a text-only prompt is a single string.
    `list_candidates=False` is the HISTORY_ONLY ablation (the candidates are then not in the text)."""
    template = TEMPLATES[template_index(history, candidates)] if list_candidates else HISTORY_ONLY + "{candidates}"
    words = DOMAINS[domain]
    pieces: list[Piece] = []

    def add_text(text: str) -> None:
        if pieces and isinstance(pieces[-1], str):
            pieces[-1] += text
        else:
            pieces.append(text)

    def add_items(items: tuple[int, ...]) -> None:
        for i, item in enumerate(items):
            add_text((SEPARATOR if i else "") + titles[item])
            if hybrid:
                pieces.append(ItemSlot(item))

    before_history, rest = template.split("{history}")
    before_candidates, after = rest.split("{candidates}")
    fill = dict(words, n=len(candidates))
    add_text(before_history.format(**fill))
    add_items(history)
    add_text(before_candidates.format(**fill))
    if list_candidates:
        add_items(candidates)
    add_text(after.format(**fill))
    return pieces


def answer_text(title: str) -> str:
    """What the model is trained to continue the prompt with, and what likelihood scores."""
    return " " + title + ANSWER_END
