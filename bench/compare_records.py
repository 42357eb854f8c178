#!/usr/bin/env python
"""Does this machine reproduce the committed records? Compare two results folders run by run.

    python run_bench.py --methods all --out /tmp/mine        # the same command, into a fresh folder
    python bench/compare_records.py results /tmp/mine

The same seed gives byte-identical candidate files everywhere, but a CPU's float kernels need not
match another CPU's (AVX-512 vs AVX2 sum in other orders), and training can carry a last-bit
difference into another answer. This pairs the records of the two folders by their hash (same
data set, method, parameters, seed and candidates) and says, for each, whether the metrics and the
per-sample ranks are identical, how many test samples' ranks moved, and on which processor each
side ran. Records only in the second folder are listed as unpaired; those only in the first (the
committed seeds and profiles you did not rerun) are only counted. `--strict` exits 1 when any pair
differs (for a CI that runs on the same hardware as the committed records).

`--by-method` pairs by data set, method and seed instead, for an ablation run into a folder of its
own (one parameter changed, so every hash did): e.g. `python bench/compare_records.py
results/gpu/NVIDIA-H200 results/gpu/NVIDIA-H200/history-loss --by-method`. Either way the last column is
the paired Wilcoxon p of per-sample test HR@1 for each scoring mode (1 where no sample's hit differs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import UserError  # noqa: E402
from harness.records import RecordStore  # noqa: E402
from harness.report.stats import paired_test  # noqa: E402

IDENTICAL, SAME_METRICS, DIFFER = "identical", "same metrics", "differ"  # the verdicts of a pair


def _key(record: dict[str, Any], by_method: bool) -> tuple[str, str, str]:
    return record["dataset"]["name"], record["method"], str(record.get("seed")) if by_method else record["hash"]


def _modes(record: dict[str, Any]) -> list[str]:
    """The scoring modes with a test HR@1 (generate and likelihood for the LLM methods, rank for the rest)."""
    return sorted(m for m, metrics in record["metrics"]["test"].items() if "HR@1" in metrics)


def _hr1(record: dict[str, Any]) -> str:
    """Test HR@1 of each scoring mode, e.g. '0.053 / 0.021' for generate / likelihood."""
    return " / ".join(f"{record['metrics']['test'][m]['HR@1']:.3f}" for m in _modes(record))


def _paired_p(record: dict[str, Any], ranks_a: list[Any], ranks_b: list[Any]) -> str:
    """Per mode, the paired Wilcoxon p of the two sides' per-sample hits at 1 (rank 1 is the top), e.g. '0.32 / 1'."""
    if len(ranks_a) != len(ranks_b):
        return "(not the same samples)"
    return " / ".join(f"{paired_test([r[m] == 1 for r in ranks_a], [r[m] == 1 for r in ranks_b]):.2g}" for m in _modes(record))


def _processor(record: dict[str, Any]) -> str:
    return str(record.get("hardware", {}).get("processor") or "?")


def compare(a: Path, b: Path, by_method: bool = False) -> tuple[list[list[Any]], int, int]:
    """Rows for the table (one per record of the second folder), how many pairs differ and how many
    records only the first folder has."""
    records: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for side, root in (("a", a), ("b", b)):
        if not (root / "runs").is_dir():
            raise UserError(f"{root}: no runs/ folder (not a results folder)")
        for record in RecordStore(root).load_all():
            pair = records.setdefault(_key(record, by_method), {})
            if side in pair:  # only by method: one hash is one record
                raise UserError(f"{root}: two {record['method']} records of seed {record.get('seed')} "
                                f"({pair[side]['hash']}, {record['hash']}); --by-method needs one per method and seed")
            pair[side] = record
    rows, differing = [], 0
    only_a = sum("b" not in pair for pair in records.values())
    for key in sorted(k for k, pair in records.items() if "b" in pair):
        pair = records[key]
        dataset, method, _ = key
        row = [dataset, method, pair["b"].get("seed"), " / ".join(dict.fromkeys(r["hash"][:8] for r in pair.values()))]  # a's / b's where they differ
        if "a" not in pair:
            rows.append(row + ["", _hr1(pair["b"]), f"only in {b}", "", _processor(pair["b"]), ""])
            continue
        ranks_a = [s.get("rank") for s in RecordStore.samples_at(Path(pair["a"]["_path"]))]
        ranks_b = [s.get("rank") for s in RecordStore.samples_at(Path(pair["b"]["_path"]))]
        moved = sum(x != y for x, y in zip(ranks_a, ranks_b)) + abs(len(ranks_a) - len(ranks_b))
        same_metrics = pair["a"]["metrics"] == pair["b"]["metrics"]
        differing += not (same_metrics and moved == 0)
        verdict = IDENTICAL if same_metrics and moved == 0 else (SAME_METRICS if same_metrics else DIFFER)
        rows.append(row + [_hr1(pair["a"]), _hr1(pair["b"]), verdict, f"{moved}/{max(len(ranks_a), len(ranks_b))}",
                           f"{_processor(pair['a'])} / {_processor(pair['b'])}", _paired_p(pair["b"], ranks_a, ranks_b)])
    return rows, differing, only_a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="a results folder, e.g. results")
    parser.add_argument("b", type=Path, help="another, e.g. the --out of the same command run here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any pair of records differs")
    parser.add_argument("--by-method", action="store_true",
                        help="pair by data set, method and seed (an ablation's folder) instead of by hash")
    args = parser.parse_args()
    try:
        rows, differing, only_a = compare(args.a, args.b, args.by_method)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(tabulate(rows, headers=["data set", "method", "seed", "hash", f"test HR@1 in {args.a}",
                                  f"test HR@1 in {args.b}", "metrics and ranks", "samples whose rank moved",
                                  "processor", "paired p of test HR@1"], tablefmt="github", disable_numparse=True))
    paired = sum(r[6] in (IDENTICAL, SAME_METRICS, DIFFER) for r in rows)
    print(f"\n{paired - differing} of {paired} paired records identical (metrics and every sample's ranks); "
          f"{len(rows) - paired} only in {args.b}, {only_a} only in {args.a}")
    if args.strict and differing:
        sys.exit(1)


if __name__ == "__main__":
    main()
