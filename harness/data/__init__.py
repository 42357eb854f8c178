"""Data sets in one canonical form.

Every loader returns a `DataSet`: an item catalogue (internal id -> title) plus either
time-stamped interactions (user, item, timestamp, optional rating) that a split scheme cuts,
or, for published splits, the pre-split samples themselves. Internal ids are dense
0..n-1; the raw ids are kept for tracing a record back to the source file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.registry import Registry

DATASETS: Registry[Callable[..., "DataSet"]] = Registry("data set", ("harness.data",))


@dataclass(frozen=True)
class Sample:
    """One prediction task: given `history` (oldest first), predict `target`.

    `seen` holds every item the user interacted with before the target, so that negatives can
    exclude all of them (upstream excluded only the 10-item window). It is empty for training
    windows, which never need negatives drawn here.
    """

    user: int
    history: tuple[int, ...]
    target: int
    seen: tuple[int, ...] = ()


@dataclass
class DataSet:
    name: str
    source: str
    titles: list[str]
    raw_item_ids: list[str]
    interactions: pd.DataFrame | None = None  # columns: user, item, timestamp[, rating]
    given: dict[str, list[Sample]] | None = None  # pre-split samples: train / valid / test
    default_split: str = "llara"
    notes: list[str] = field(default_factory=list)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.titles)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical content; keys candidate files and run records."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update("\x1f".join(self.titles).encode())
            if self.interactions is not None:
                for col in ("user", "item", "timestamp"):
                    h.update(np.ascontiguousarray(self.interactions[col].to_numpy(np.int64)).tobytes())
            for part in sorted(self.given or {}):
                h.update(part.encode())
                for s in self.given[part]:  # type: ignore[index]
                    h.update(f"{s.user};{' '.join(map(str, s.history))};{s.target}\n".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def statistics(self) -> dict[str, int | float]:
        stats: dict[str, int | float] = {"items": self.n_items}
        if self.interactions is not None:
            inter = self.interactions
            per_user = inter.groupby("user").size()
            stats.update(
                users=int(inter["user"].nunique()),
                interactions=int(len(inter)),
                items_with_interactions=int(inter["item"].nunique()),
                mean_sequence_length=round(float(per_user.mean()), 2),
                min_sequence_length=int(per_user.min()),
                density=round(len(inter) / (per_user.size * self.n_items), 5),
            )
        for part, samples in (self.given or {}).items():
            stats[f"{part}_samples"] = len(samples)
        stats["duplicate_titles_disambiguated"] = sum("duplicate title" in n for n in self.notes)
        return stats


def load_dataset(spec: str, *, trust_pickle: bool = False) -> DataSet:
    """A registered name (e.g. 'ml-100k') or a path to a folder whose layout we recognise."""
    path = Path(spec).expanduser()
    if spec in DATASETS.names():
        return DATASETS.get(spec).obj()
    if not path.exists():
        if "/" in spec or "\\" in spec:
            raise UserError(f"data set path {spec!r} does not exist")
        DATASETS.get(spec)  # raises the "unknown data set ... did you mean" error
    from harness.data import atomic, llara  # local: avoids an import cycle at module load

    if llara.looks_like(path):
        return llara.load(path, trust_pickle=trust_pickle)
    if atomic.looks_like(path):
        return atomic.load(path)
    raise UserError(
        f"{spec}: not a recognised data set folder (expected RecBole atomic files <name>.inter + "
        f"<name>.item, or a LLaRA split: train/valid/test.csv + items.txt, or *_data.df + id2name.txt)"
    )


def dense_ids(raw: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Map raw id tokens to 0..n-1, numeric order when all are integers, else string order."""
    uniques = pd.unique(raw.astype(str))
    try:
        order = sorted(uniques, key=int)
    except ValueError:
        order = sorted(uniques)
    index = {tok: i for i, tok in enumerate(order)}
    return raw.astype(str).map(index).to_numpy(np.int64), list(order)


def disambiguate_titles(titles: list[str], notes: list[str], years: list[str] | None = None) -> list[str]:
    """Give repeated titles a suffix so a generated title names one item.

    Upstream kept duplicates (23 in MovieLens-100K), which makes a correct answer ambiguous.
    Remakes get their year when the catalogue has one ("Hamlet (1948)"); what is still repeated
    after that keeps its title on the first occurrence (lowest id) and gets " (2)", " (3)", ...
    """
    counts: dict[str, int] = {}
    for t in titles:
        counts[t.casefold()] = counts.get(t.casefold(), 0) + 1
    named = list(titles)
    if years is not None:  # a year helps only where it differs within the group of namesakes
        group_years: dict[str, set[str]] = {}
        for t, y in zip(titles, years):
            group_years.setdefault(t.casefold(), set()).add(y)
        named = [
            f"{t} ({y})" if counts[t.casefold()] > 1 and y and len(group_years[t.casefold()]) > 1 else t
            for t, y in zip(titles, years)
        ]
    seen: dict[str, int] = {}
    out = []
    for original, t in zip(titles, named):
        seen[t.casefold()] = seen.get(t.casefold(), 0) + 1
        if seen[t.casefold()] > 1:
            t = f"{t} ({seen[t.casefold()]})"
        if t != original:
            notes.append(f"duplicate title {original!r} renamed to {t!r}")
        out.append(t)
    return out


MAX_TITLE_CHARS = 1000


def clean_title(title: object, where: str) -> str:
    """Whitespace collapsed (tabs and newlines would break prompts); empty or huge is an error.

    No real catalogue has a title of over a thousand characters; one that long is almost always a
    broken file (an unclosed quote swallowing lines), and it would blow up every LLM prompt.
    """
    if title is None or (isinstance(title, float) and np.isnan(title)):
        raise UserError(f"{where}: missing title")
    text = " ".join(str(title).split())
    if not text:
        raise UserError(f"{where}: empty title")
    if len(text) > MAX_TITLE_CHARS:
        raise UserError(f"{where}: title of {len(text):,} characters (limit {MAX_TITLE_CHARS:,}): {text[:40]!r}...")
    return text
