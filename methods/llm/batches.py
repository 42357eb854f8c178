"""Prompts to token ids, and token ids to left-padded tensors.

Every batch is left-padded (so batched generation continues from each prompt's real last token)
and carries explicit position ids that start at 0 on each row's first real token, so a padded
row computes what it would compute alone. Padding never exceeds the batch's longest row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from methods.llm.prompts import ItemSlot, Piece

IGNORE = -100  # label of positions that carry no loss (prompt, padding)
PIECE_CACHE = 8192  # distinct prompt pieces kept per tokenizer (ml-100k: 1682 titles + template pieces)


@dataclass
class Encoded:
    """One tokenised prompt (+ optional answer). `slots` holds (position, item) pairs."""

    ids: list[int]
    slots: list[tuple[int, int]]
    answer_start: int  # == len(ids) when there is no answer
    extra_labels: tuple[int, ...] = ()  # prompt positions that also carry the loss (history titles, an ablation)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L]; slot positions hold the pad id (their embedding is replaced)
    attention_mask: torch.Tensor  # [B, L]
    position_ids: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L]; IGNORE except on answer tokens
    slot_rows: torch.Tensor  # [S] row of each item slot
    slot_cols: torch.Tensor  # [S] column of each item slot
    slot_items: torch.Tensor  # [S] item id of each slot

    def to(self, device: str) -> "Batch":
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))  # type: ignore[arg-type]


PieceIds = Callable[[str, bool], tuple[int, ...]]  # (text, add_special_tokens) -> token ids


def piece_tokenizer(tokenizer: Any) -> PieceIds:
    """The tokenizer on one prompt piece, each distinct piece tokenised once. A hybrid prompt is
    ~30 titles and template pieces, each tokenised on its own (its ids never depend on its
    neighbours), and the tokenizer's per-call overhead dominated: 1.2 ms per window here, against
    ~10 ms for llara's whole training step per window on an H100; 0.15 ms cached
    (bench/llm_encode.py, both ways side by side). A text-only prompt is one whole-prompt piece that
    never repeats (the cache costs it ~0.06 ms), so the cache is a bounded LRU: titles and template
    pieces, used in every hybrid prompt, stay in it."""

    @functools.lru_cache(maxsize=PIECE_CACHE)
    def ids(text: str, special: bool) -> tuple[int, ...]:
        return tuple(tokenizer(text, add_special_tokens=special)["input_ids"])

    return ids


def encode(piece_ids: PieceIds, pad_id: int, pieces: list[Piece], answer: str | None = None) -> Encoded:
    """Tokenise text pieces separately (special tokens, e.g. a BOS, only before the first);
    an ItemSlot takes one position. The answer is tokenised on its own, so the same answer
    tokens are scored after any prompt."""
    ids: list[int] = []
    slots: list[tuple[int, int]] = []
    for piece in pieces:
        if isinstance(piece, ItemSlot):
            slots.append((len(ids), piece.item))
            ids.append(pad_id)
        else:
            ids.extend(piece_ids(piece, not ids))
    start = len(ids)
    if answer is not None:
        ids.extend(piece_ids(answer, False))
    return Encoded(ids, slots, start)


def collate(rows: list[Encoded], pad_id: int) -> Batch:
    """Left-pad to the longest row; labels on answer tokens (and a row's `extra_labels`) only."""
    width = max(len(r.ids) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    slot_rows, slot_cols, slot_items = [], [], []
    for b, r in enumerate(rows):
        off = width - len(r.ids)
        input_ids[b, off:] = torch.tensor(r.ids)
        mask[b, off:] = 1
        if r.answer_start < len(r.ids):
            labels[b, off + r.answer_start :] = torch.tensor(r.ids[r.answer_start :])
        for pos in r.extra_labels:
            labels[b, off + pos] = r.ids[pos]
        for pos, item in r.slots:
            slot_rows.append(b)
            slot_cols.append(off + pos)
            slot_items.append(item)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return Batch(input_ids, mask, positions, labels, as_long(slot_rows), as_long(slot_cols), as_long(slot_items))


def title_positions(ids: list[int], titles: list[tuple[int, ...]], end: int) -> tuple[int, ...]:
    """Positions in ids[:end] of each title's tokens, the titles found in order (the history's).

    A title is looked for as its answer tokens (" " + title, tokenised alone). In a whole-prompt
    tokenisation its last token may merge with the separator after it (SmolLM2: ")" + "," = "),"), so
    a title matches on all but its last token, which counts only where it is there as well; a title
    not found that way (its first tokens merged with what precedes it) is skipped, not guessed."""
    found: list[int] = []
    cursor = 0
    for title in titles:
        head = title[:-1] if len(title) > 1 else title
        for p in range(cursor, end - len(head) + 1):
            if tuple(ids[p : p + len(head)]) == head:
                found.extend(range(p, p + len(head)))
                cursor = p + len(head)
                if len(title) > 1 and cursor < end and ids[cursor] == title[-1]:
                    found.append(cursor)
                    cursor += 1
                break
    return tuple(found)


def length_buckets(lengths: list[int], batch_size: int, rng: Any) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, chunked), chunks in random order:
    padding stays small, and the order still changes every epoch."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]
