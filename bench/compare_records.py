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

IDENTICAL, SAME_METRICS, DIFFER = "identical", "same metrics", "differ"  # the verdicts of a pair


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    return record["dataset"]["name"], record["method"], record["hash"]


def _hr1(record: dict[str, Any]) -> str:
    """Test HR@1 of each scoring mode, e.g. '0.053 / 0.021' for generate / likelihood."""
    modes = record["metrics"]["test"]
    return " / ".join(f"{modes[m]['HR@1']:.3f}" for m in sorted(modes) if "HR@1" in modes[m])


def _processor(record: dict[str, Any]) -> str:
    return str(record.get("hardware", {}).get("processor") or "?")


def compare(a: Path, b: Path) -> tuple[list[list[Any]], int, int]:
    """Rows for the table (one per record of the second folder), how many pairs differ and how many
    records only the first folder has."""
    records = {}
    for side, root in (("a", a), ("b", b)):
        if not (root / "runs").is_dir():
            raise UserError(f"{root}: no runs/ folder (not a results folder)")
        for record in RecordStore(root).load_all():
            records.setdefault(_key(record), {})[side] = record
    rows, differing = [], 0
    only_a = sum("b" not in pair for pair in records.values())
    for key in sorted(k for k, pair in records.items() if "b" in pair):
        pair = records[key]
        dataset, method, run_hash = key
        row = [dataset, method, pair["b"].get("seed"), run_hash[:8]]
        if "a" not in pair:
            rows.append(row + ["", _hr1(pair["b"]), f"only in {b}", "", _processor(pair["b"])])
            continue
        ranks_a = [s.get("rank") for s in RecordStore.samples_at(Path(pair["a"]["_path"]))]
        ranks_b = [s.get("rank") for s in RecordStore.samples_at(Path(pair["b"]["_path"]))]
        moved = sum(x != y for x, y in zip(ranks_a, ranks_b)) + abs(len(ranks_a) - len(ranks_b))
        same_metrics = pair["a"]["metrics"] == pair["b"]["metrics"]
        differing += not (same_metrics and moved == 0)
        verdict = IDENTICAL if same_metrics and moved == 0 else (SAME_METRICS if same_metrics else DIFFER)
        rows.append(row + [_hr1(pair["a"]), _hr1(pair["b"]), verdict, f"{moved}/{max(len(ranks_a), len(ranks_b))}",
                           f"{_processor(pair['a'])} / {_processor(pair['b'])}"])
    return rows, differing, only_a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="a results folder, e.g. results")
    parser.add_argument("b", type=Path, help="another, e.g. the --out of the same command run here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any pair of records differs")
    args = parser.parse_args()
    try:
        rows, differing, only_a = compare(args.a, args.b)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(tabulate(rows, headers=["data set", "method", "seed", "hash", f"test HR@1 in {args.a}",
                                  f"test HR@1 in {args.b}", "metrics and ranks", "samples whose rank moved",
                                  "processor"], tablefmt="github", disable_numparse=True))
    paired = sum(r[6] in (IDENTICAL, SAME_METRICS, DIFFER) for r in rows)
    print(f"\n{paired - differing} of {paired} paired records identical (metrics and every sample's ranks); "
          f"{len(rows) - paired} only in {args.b}, {only_a} only in {args.a}")
    if args.strict and differing:
        sys.exit(1)


if __name__ == "__main__":
    main()
