#!/usr/bin/env python
"""What do the LLM methods choose? Their generated answers against list position and popularity.

    python bench/llm_choices.py                              # results/runs: every record with generated choices
    python bench/llm_choices.py --llm gemma3-270m --pooled          # one row per method, seeds pooled
    python bench/llm_choices.py results/gpu/NVIDIA-H200            # candidate files from results/candidates

Issue 8 asks why the trained LLM rows sit below `pop` on the paper's prompt. Each record's samples
keep the candidate the generated answer named (`choice`, its index in the prompt's list), so two
readings need no rescoring: are the choices spread evenly over the list's positions (a chi-square p;
a small one is a position bias, as the untrained backbones show for the first and last titles), and
how often is the choice the candidate `pop` would pick (the one most often a training target), with
HR@1 split by whether it is. A model that learned only a weak popularity prior hits like `pop` when
it agrees with it and near chance when it does not. Pop's counts are the training targets of the
record's own split, rebuilt from its data set and seed (cheap and deterministic).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.data import load_dataset  # noqa: E402
from harness.errors import UserError  # noqa: E402
from harness.protocol import SplitSpec, make_split, read_candidates  # noqa: E402
from harness.records import RecordStore  # noqa: E402

HEADERS = ["method", "dataset", "llm", "profile", "seeds", "answers named a candidate", "most chosen position (share)",
           "chi-square p of positions", "choice = pop's pick", "HR@1 when it is", "HR@1 when not",
           "pop's HR@1 when not", "HR@1 (generate)", "pop's HR@1"]


def pop_counts(record: dict[str, Any], cache: dict[tuple[str, int], np.ndarray]) -> np.ndarray:
    """How often each item is a training target in the record's split (what `pop` scores by)."""
    name, seed = record["dataset"]["name"], int(record["seed"])
    if (name, seed) not in cache:
        source = record["dataset"].get("source") or name
        try:
            data = load_dataset(name)
        except UserError:
            data = load_dataset(source)
        split_fields = {k: record["split"][k] for k in ("scheme", "max_history", "min_history")}
        spec = SplitSpec(**split_fields, fractions=tuple(record["split"]["fractions"]))
        split = make_split(data, spec, seed)
        if len(split.train) != record["split"]["train"]:
            raise UserError(f"{record['_path']}: its split had {record['split']['train']} training samples, "
                            f"the rebuilt one {len(split.train)} (another data set under the same name?)")
        cache[name, seed] = np.bincount([s.target for s in split.train], minlength=data.n_items)
    return cache[name, seed]


def outcomes(root: Path, candidates: Path, record: dict[str, Any], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per test sample: the chosen position (-1: no candidate named), agreement with pop, hits."""
    tried = [folder / record["candidates"]["file"] for folder in (root / "candidates", candidates)]
    path = next((p for p in tried if p.exists()), None)
    if path is None:
        raise UserError(f"{record['_path']}: its candidate file is in neither {tried[0].parent} nor {tried[1].parent}")
    frozen = read_candidates(path)
    if frozen.sha256 != record["candidates"]["sha256"]:
        raise UserError(f"{record['_path']}: {path} is not the candidate file it was scored on (sha256 differs)")
    test = frozen.test
    samples = RecordStore.samples_at(Path(record["_path"]))
    if len(samples) != len(test):
        raise UserError(f"{record['_path']}: {len(samples)} samples, but {path} has {len(test)} test rows")
    choice = np.array([s.get("choice", -1) for s in samples])
    pop_pick = np.argmax(counts[test.candidates], axis=1)  # ties: the first listed, as argmax breaks them
    target = test.target_index
    return {"choice": choice, "agree": choice == pop_pick, "hit": choice == target, "pop_hit": pop_pick == target,
            "valid": choice >= 0, "n_candidates": np.full(len(test), test.candidates.shape[1])}


def row(group: tuple[str, str, str, str], seeds: list[int], parts: list[dict[str, np.ndarray]]) -> list[Any]:
    o = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    valid = o["valid"]
    chosen = o["choice"][valid]
    n_positions = int(o["n_candidates"][0])
    counts = np.bincount(chosen, minlength=n_positions)
    p_positions = stats.chisquare(counts).pvalue if len(chosen) else float("nan")
    agree, hit, pop_hit = o["agree"], o["hit"], o["pop_hit"]
    disagree = valid & ~agree

    def mean(x: np.ndarray) -> str:
        return f"{x.mean():.3f}" if len(x) else ""

    return [*group, " ".join(map(str, sorted(seeds))), f"{valid.sum()}/{len(valid)}",
            f"{counts.argmax()} ({counts.max() / max(len(chosen), 1):.2f})", f"{p_positions:.2g}", mean(agree),
            mean(hit[agree]), mean(hit[disagree]), mean(pop_hit[disagree]), mean(hit), mean(pop_hit)]


def table(root: Path, candidates: Path, llm: str | None = None, pooled: bool = False) -> list[list[Any]]:
    if not (root / "runs").is_dir():
        raise UserError(f"{root}: no runs/ folder (not a results folder)")
    cache: dict[tuple[str, int], np.ndarray] = {}
    groups: dict[tuple[str, str, str, str], list[tuple[int, dict[str, np.ndarray]]]] = defaultdict(list)
    for record in RecordStore(root).load_all():
        if record.get("status") != "ok" or "generate" not in record["metrics"]["test"]:
            continue
        params = record.get("params", {})
        if llm and params.get("llm") != llm:
            continue
        profile = str(params.get("profile", "")) + (" + history loss" if params.get("history_loss") else "")
        group = (record["method"], record["dataset"]["name"], str(params.get("llm", "")), profile)
        groups[group].append((int(record["seed"]), outcomes(root, candidates, record, pop_counts(record, cache))))
    rows = []
    for group in sorted(groups):
        if not pooled:
            rows += [row(group, [seed], [o]) for seed, o in sorted(groups[group], key=lambda x: x[0])]
        if len(groups[group]) > 1 or pooled:
            rows.append(row(group, [s for s, _ in groups[group]], [o for _, o in groups[group]]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("results"), help="a results folder (default results)")
    parser.add_argument("--candidates", type=Path, default=Path("results/candidates"),
                        help="where to look for candidate files the folder lacks (a GPU folder keeps only runs/; "
                             "a file is used only if its sha256 is the record's)")
    parser.add_argument("--llm", help="only records of this backbone (e.g. gemma3-270m)")
    parser.add_argument("--pooled", action="store_true", help="only the rows pooled over seeds")
    args = parser.parse_args()
    try:
        rows = table(args.root, args.candidates, args.llm, args.pooled)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if not rows:
        print(f"error: {args.root}: no finished record with generated answers", file=sys.stderr)
        sys.exit(2)
    print(tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
