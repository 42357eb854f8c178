"""The one data protocol: split schemes, then candidate sets frozen to files.

Upstream re-drew negatives on every data access, so two methods (or two batch sizes) never saw
the same candidates. Here the candidates are drawn once per (data, split, candidate
parameters, seed), written to a file whose name is a hash of those inputs, and every method
reads that file. Same inputs give the same bytes in any process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.data import DataSet, Sample
from harness.errors import UserError
from harness.records import atomic_write_text

SPLIT_SCHEMES = ("llara", "loo", "given")
EXCLUDE_MODES = ("seen", "window")
CANDIDATE_FORMAT = "ilora-bench candidates v1"


@dataclass(frozen=True)
class SplitSpec:
    scheme: str = "llara"
    max_history: int = 10  # the prompt lists at most this many past items
    min_history: int = 3  # held-out samples with a shorter history are dropped, as upstream
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # llara: users into train/valid/test

    def __post_init__(self) -> None:
        if self.scheme not in SPLIT_SCHEMES:
            from harness.registry import unknown_name_message

            raise UserError(unknown_name_message("split scheme", self.scheme, list(SPLIT_SCHEMES)))
        if self.max_history < 1:
            raise UserError(f"--max-history must be at least 1, got {self.max_history}")
        if not 0 <= self.min_history <= self.max_history:
            raise UserError(f"--min-history must be within 0..{self.max_history}, got {self.min_history}")


@dataclass(frozen=True)
class CandidateSpec:
    n_negatives: int = 19
    exclude: str = "seen"  # "seen": all items the user had before the target; "window": history only (upstream)

    def __post_init__(self) -> None:
        if self.n_negatives < 1 or self.n_negatives > 10_000:
            raise UserError(f"--negatives must be within 1..10000, got {self.n_negatives}")
        if self.exclude not in EXCLUDE_MODES:
            from harness.registry import unknown_name_message

            raise UserError(unknown_name_message("negative-exclusion mode", self.exclude, list(EXCLUDE_MODES)))


@dataclass
class Split:
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample]
    dropped: dict[str, int] = field(default_factory=dict)  # held-out samples dropped for short history


def _rng(seed: int, stream: str) -> np.random.Generator:
    """Independent, process-stable random streams per purpose (Python's hash() is salted)."""
    digest = hashlib.sha256(stream.encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:4], "little")])


def make_split(data: DataSet, spec: SplitSpec, seed: int) -> Split:
    if spec.scheme == "given":
        if data.given is None:
            raise UserError(f"data set {data.name!r} has no pre-split files; use --split llara or loo")
        return _keep_long_enough(data.given["train"], data.given["valid"], data.given["test"], spec)
    if data.interactions is None:
        raise UserError(f"data set {data.name!r} is published pre-split; only --split given applies")
    inter = data.interactions.sort_values(["user", "timestamp"], kind="stable")
    sequences = {int(u): g.to_numpy() for u, g in inter.groupby("user", sort=True)["item"]}
    users = np.array(sorted(sequences))
    if spec.scheme == "llara":
        order = _rng(seed, "split").permutation(users)
        n_train = int(round(spec.fractions[0] * len(order)))
        n_valid = int(round(spec.fractions[1] * len(order)))
        train_users, valid_users, test_users = np.split(order, [n_train, n_train + n_valid])
        train = [w for u in sorted(train_users) for w in _windows(u, sequences[u], spec.max_history)]
        valid = [_last(u, sequences[u], spec.max_history) for u in sorted(valid_users)]
        test = [_last(u, sequences[u], spec.max_history) for u in sorted(test_users)]
        return _keep_long_enough(train, valid, test, spec)
    # loo: every user contributes; last item to test, second to last to valid, the rest to train.
    train, valid, test = [], [], []
    for u in users:
        seq = sequences[int(u)]
        if len(seq) < 3:
            continue
        train.extend(_windows(int(u), seq[:-2], spec.max_history))
        valid.append(_last(int(u), seq[:-1], spec.max_history))
        test.append(_last(int(u), seq, spec.max_history))
    return _keep_long_enough(train, valid, test, spec)


def _windows(user: int, seq: np.ndarray, max_history: int) -> list[Sample]:
    """Sliding windows, step 1; the first item has no history to predict from, so it starts none."""
    items = [int(i) for i in seq]
    return [Sample(user, tuple(items[max(0, t - max_history) : t]), items[t]) for t in range(1, len(items))]


def _last(user: int, seq: np.ndarray, max_history: int) -> Sample:
    items = [int(i) for i in seq]
    return Sample(user, tuple(items[-1 - max_history : -1]), items[-1], seen=tuple(items[:-1]))


def _keep_long_enough(train: list[Sample], valid: list[Sample], test: list[Sample], spec: SplitSpec) -> Split:
    def keep(samples: list[Sample]) -> list[Sample]:
        return [
            Sample(s.user, s.history[-spec.max_history :], s.target, s.seen)
            for s in samples
            if len(s.history) >= spec.min_history
        ]

    kept_valid, kept_test = keep(valid), keep(test)
    train = [s if len(s.history) <= spec.max_history else Sample(s.user, s.history[-spec.max_history :], s.target) for s in train]
    return Split(train, kept_valid, kept_test, {"valid": len(valid) - len(kept_valid), "test": len(test) - len(kept_test)})


# ---------------------------------------------------------------- frozen candidates


@dataclass
class EvalSet:
    """Held-out samples with their frozen candidates, as read back from the candidate file."""

    part: str
    users: np.ndarray  # [N]
    histories: list[tuple[int, ...]]
    targets: np.ndarray  # [N]
    candidates: np.ndarray  # [N, C]; exactly one column per row equals the target
    seen: list[tuple[int, ...]]  # every item the user had before the target (masked in full ranking)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def target_index(self) -> np.ndarray:
        return np.argmax(self.candidates == self.targets[:, None], axis=1)


@dataclass
class FrozenCandidates:
    path: Path
    sha256: str
    key: str
    valid: EvalSet
    test: EvalSet


def candidate_key(data: DataSet, split: SplitSpec, cands: CandidateSpec, seed: int) -> tuple[str, dict]:
    inputs = {
        "format": CANDIDATE_FORMAT,
        "data": data.fingerprint(),
        "split": asdict(split),
        "candidates": asdict(cands),
        "seed": seed,
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return key, inputs


def draw_candidates(
    samples: list[Sample], n_items: int, spec: CandidateSpec, rng: np.random.Generator, where: str = ""
) -> np.ndarray:
    all_items = np.arange(n_items)
    rows = np.empty((len(samples), spec.n_negatives + 1), dtype=np.int64)
    for i, s in enumerate(samples):
        known = s.seen if spec.exclude == "seen" else s.history
        allowed = np.setdiff1d(all_items, np.array(list(known) + [s.target], dtype=np.int64), assume_unique=False)
        if len(allowed) < spec.n_negatives:
            raise UserError(
                f"{where}sample with target item {s.target}: only {len(allowed)} items are left to draw "
                f"{spec.n_negatives} negatives from (the data set has {n_items} items); lower --negatives"
            )
        negatives = rng.choice(allowed, size=spec.n_negatives, replace=False)
        rows[i] = rng.permutation(np.concatenate([[s.target], negatives]))
    return rows


def _render(inputs: dict, parts: dict[str, tuple[list[Sample], np.ndarray]]) -> str:
    lines = [f"# {CANDIDATE_FORMAT} " + json.dumps(inputs, sort_keys=True), "part\tuser\thistory\ttarget\tcandidates\tseen"]
    for part, (samples, rows) in parts.items():
        for s, row in zip(samples, rows):
            history, cands, seen = (" ".join(map(str, x)) for x in (s.history, row, s.seen))
            lines.append(f"{part}\t{s.user}\t{history}\t{s.target}\t{cands}\t{seen}")
    return "\n".join(lines) + "\n"


def freeze_candidates(
    data: DataSet, split: Split, split_spec: SplitSpec, spec: CandidateSpec, seed: int, folder: Path
) -> FrozenCandidates:
    """Write the candidate file once (atomically); later calls and other processes read it."""
    key, inputs = candidate_key(data, split_spec, spec, seed)
    path = folder / f"{data.name}-{split_spec.scheme}-seed{seed}-{key}.tsv"
    if not path.exists():
        for part, samples in (("valid", split.valid), ("test", split.test)):
            if not samples:
                raise UserError(
                    f"data set {data.name!r} ({data.source}): the {part} part has no sample with at least "
                    f"{split_spec.min_history} history items under --split {split_spec.scheme}"
                )
        rng = _rng(seed, "candidates")
        where = f"data set {data.name!r} ({data.source}): "
        parts = {
            p: (s, draw_candidates(s, data.n_items, spec, rng, where)) for p, s in (("valid", split.valid), ("test", split.test))
        }
        atomic_write_text(path, _render(inputs, parts))
    return read_candidates(path, key)


def read_candidates(path: Path, key: str = "") -> FrozenCandidates:
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    lines = text.splitlines()
    if not lines or not lines[0].startswith(f"# {CANDIDATE_FORMAT} "):
        raise UserError(f"{path}: line 1: not an ilora-bench candidate file")
    parts: dict[str, list[tuple[int, tuple[int, ...], int, list[int], tuple[int, ...]]]] = {"valid": [], "test": []}
    for lineno, line in enumerate(lines[2:], 3):
        try:
            part, user, history, target, cands, seen = line.split("\t")
            row = (
                int(user), tuple(int(x) for x in history.split()), int(target), [int(x) for x in cands.split()],
                tuple(int(x) for x in seen.split()),
            )
            parts[part].append(row)
        except (ValueError, KeyError):
            raise UserError(f"{path}: line {lineno}: malformed candidate row {line[:80]!r}") from None
    sets = {}
    for part, rows in parts.items():
        widths = {len(r[3]) for r in rows}
        if len(widths) > 1:
            raise UserError(f"{path}: {part} rows have different candidate counts {sorted(widths)}")
        cand = np.array([r[3] for r in rows], dtype=np.int64).reshape(len(rows), -1 if rows else 0)
        targets = np.array([r[2] for r in rows], dtype=np.int64)
        if len(rows) and not np.all((cand == targets[:, None]).sum(axis=1) == 1):
            raise UserError(f"{path}: a {part} row does not hold its target exactly once")
        users = np.array([r[0] for r in rows], dtype=np.int64)
        sets[part] = EvalSet(part, users, [r[1] for r in rows], targets, cand, [r[4] for r in rows])
    return FrozenCandidates(path, hashlib.sha256(raw).hexdigest(), key or path.stem.rsplit("-", 1)[-1], sets["valid"], sets["test"])



def reordered_test(frozen: FrozenCandidates, order: int, seed: int) -> EvalSet:
    """The test candidates shuffled into another order, frozen to a file of their own.

    A generator reads the candidates in the prompt, so its answer can depend on where the target
    stands; scoring the same sets in a few fixed other orders measures that position bias.
    """
    path = frozen.path.with_name(f"{frozen.path.stem}.order{order}.tsv")
    if not path.exists():
        rng = _rng(seed, f"order{order}")
        test = frozen.test
        rows = np.stack([rng.permutation(row) for row in test.candidates]) if len(test) else test.candidates
        samples = [Sample(int(u), h, int(t), s) for u, h, t, s in zip(test.users, test.histories, test.targets, test.seen)]
        atomic_write_text(path, _render({"reorder_of": frozen.sha256, "order": order}, {"test": (samples, rows)}))
    return read_candidates(path).test
