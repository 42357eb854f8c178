"""One evaluator for every method, from per-sample outcomes.

A ranker gives a score per candidate; its outcome is the target's rank with ties counted
against it (an all-equal score vector ranks the target last, never first). A generator picks
one candidate or none; a correct pick is rank 1, anything else is a miss for every metric.
Outcomes are kept per sample so that methods can be compared pairwise on the same candidates.
"""

from __future__ import annotations

import numpy as np

from harness.errors import UserError

CUTOFFS = (1, 3, 5)
METRICS = ("HR@1", "HR@3", "HR@5", "NDCG@3", "NDCG@5", "MRR", "ValidRatio")
MISS = 0  # rank of a sample the method did not rank (wrong or invalid generation)


def ranks_from_scores(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank of the target: 1 + #(higher) + #(other candidates tied with it)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(target_index):
        raise ValueError(f"expected scores of shape [{len(target_index)}, C], got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("a method returned NaN scores")
    target = scores[np.arange(len(scores)), target_index][:, None]
    return (scores >= target).sum(axis=1).astype(np.int64)


def ranks_from_choices(choices: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """choices[i] = chosen candidate index, or -1 for an answer that named no single candidate."""
    choices = np.asarray(choices)
    return np.where(choices == target_index, 1, MISS).astype(np.int64)


def metrics(ranks: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    ranks = np.asarray(ranks)
    if len(ranks) == 0:
        raise UserError("no samples to evaluate")
    hit = ranks != MISS
    out: dict[str, float] = {}
    for k in CUTOFFS:
        out[f"HR@{k}"] = float(np.mean(hit & (ranks <= k)))
    for k in (3, 5):
        gain = np.where(hit & (ranks <= k), 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0)
        out[f"NDCG@{k}"] = float(np.mean(gain))
    out["MRR"] = float(np.mean(np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)))
    out["ValidRatio"] = 1.0 if valid is None else float(np.mean(valid))
    return out


FULL_CUTOFF = 10
FULL_METRICS = (f"HR@{FULL_CUTOFF}", f"NDCG@{FULL_CUTOFF}")


def full_ranks(scores: np.ndarray, targets: np.ndarray, seen: list[tuple[int, ...]]) -> np.ndarray:
    """Rank of the target among ALL items (items the user had before are masked), ties pessimistic.

    Sampled metrics can order models differently from full ranking (Krichene & Rendle, KDD 2020),
    so ID models report both.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets].copy()
    for i, items in enumerate(seen):
        scores[i, list(items)] = -np.inf
    scores[rows, targets] = target_scores
    return (scores >= target_scores[:, None]).sum(axis=1).astype(np.int64)


def full_metrics(ranks: np.ndarray) -> dict[str, float]:
    k = FULL_CUTOFF
    hit = ranks <= k
    return {f"HR@{k}": float(np.mean(hit)), f"NDCG@{k}": float(np.mean(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)))}
