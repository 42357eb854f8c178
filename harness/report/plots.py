"""PNG figures beside the leaderboard: HR@1 with intervals, tuning curves (and, with iLoRA, expert usage)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.records import atomic_write_bytes

if TYPE_CHECKING:
    from harness.report.leaderboard import Section


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless; also keeps figures identical across machines with a display
    import matplotlib.pyplot as plt

    return plt


def section_slug(section: "Section") -> str:
    return f"{section.dataset}-{hashlib.sha256(section.label.encode()).hexdigest()[:8]}"


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_hr1(section: "Section", folder: Path) -> Path | None:
    from harness.report import stats

    if not section.rows:
        return None
    plt = _pyplot()
    labels, means, lows, highs = [], [], [], []
    for row in reversed(section.rows):  # best at the top
        hits = np.array([1.0 if v == 1 else 0.0 for v in row.outcomes.values()])
        low, high = stats.mean_ci(hits)
        labels.append(row.label)
        means.append(hits.mean())
        lows.append(hits.mean() - low)
        highs.append(high - hits.mean())
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    ax.barh(range(len(labels)), means, xerr=[lows, highs], color="#4c72b0", capsize=3)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("test HR@1 (95% bootstrap CI over samples, all seeds)")
    ax.set_title(section.dataset, fontsize=10)
    ax.set_xlim(0, max(1e-3, max(m + h for m, h in zip(means, highs))) * 1.1)
    return _save(fig, folder / f"hr1-{section_slug(section)}.png")


def plot_tuning(studies: list[tuple[str, list[float]]], path: Path) -> Path | None:
    """Best validation value so far against trial number, one line per study."""
    studies = [(name, values) for name, values in studies if len(values) > 1]
    if not studies:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in studies:
        ax.plot(range(len(values)), np.maximum.accumulate(values), marker=".", label=name.rsplit(".", 1)[-1])
    ax.set_xlabel("trial")
    ax.set_ylabel("best validation objective so far")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_experts(section: "Section", heat: list[tuple[str, np.ndarray]], folder: Path) -> Path | None:
    """Heat-map of mean gate weight per expert (columns) for all users and each user cluster (rows)."""
    if not heat:
        return None
    plt = _pyplot()
    matrix = np.stack([g for _, g in heat])
    fig, ax = plt.subplots(figsize=(1.2 * matrix.shape[1] + 4, 0.35 * len(heat) + 1.2))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto", vmin=0, vmax=max(0.5, float(matrix.max())))
    ax.set_xticks(range(matrix.shape[1]), [f"expert {e + 1}" for e in range(matrix.shape[1])])
    ax.set_yticks(range(len(heat)), [label for label, _ in heat], fontsize=7)
    for (i, j), w in np.ndenumerate(matrix):
        ax.text(j, i, f"{w:.2f}", ha="center", va="center", color="white" if w < 0.35 else "black", fontsize=7)
    fig.colorbar(image, ax=ax, label="mean gate weight")
    ax.set_title(f"iLoRA expert usage, {section.dataset}", fontsize=10)
    return _save(fig, folder / f"experts-{section_slug(section)}.png")
