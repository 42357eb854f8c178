#!/usr/bin/env python
"""Time to train GRU4Rec, Caser and SASRec to early stop, with their defaults, and peak memory.

    python bench/recbole_train_time.py                    # ml-100k, seed 0
    python bench/recbole_train_time.py --seeds 0 1 2

Each (model, seed) runs as `python run_bench.py --methods NAME --seeds SEED` in a process of its
own (so one model's memory cannot show in another's peak), into a temporary results folder; the
table is read from the run records: epochs trained (early stopping included), best epoch, seconds
per epoch, fit seconds, the process's peak resident memory during the run, and HR@1.
On a machine shared with other torch processes, pass `--threads 1` (see bench/recbole_overhead.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def record_of(folder: Path, seed: int) -> dict:
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return next(r for r in records if r["seed"] == seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="gru4rec,caser,sasrec")
    parser.add_argument("--seeds", nargs="+", default=["0"])
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the runs (0: torch's default)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    threads = args.threads or os.cpu_count()

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="recbole-train-time-") as tmp:
        for name in args.models.split(","):
            for seed in args.seeds:
                command = [sys.executable, str(ROOT / "run_bench.py"), "--methods", name, "--dataset", args.dataset,
                           "--seeds", seed, "--out", tmp]
                t0 = time.perf_counter()
                done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - t0
                if done.returncode != 0:
                    sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
                r = record_of(Path(tmp) / "runs" / args.dataset / name, int(seed))
                curve = r["extra"]["valid_curve"]
                rows.append((
                    name, seed, len(curve), r["extra"]["best_epoch"], sum(c["seconds"] for c in curve) / len(curve),
                    r["fit_seconds"], wall, r["peak_rss_mb"], curve[r["extra"]["best_epoch"]]["HR@1"],
                    r["metrics"]["test"]["rank"]["HR@1"],
                ))
                print(f"  {name} seed {seed}: {r['fit_seconds']:.0f} s", flush=True)
    load_after = os.getloadavg()[0]
    print(f"\n{args.dataset}; {os.cpu_count()} cores, {threads} torch thread(s); "
          f"load average {load_before:.2f} before, {load_after:.2f} after\n")
    print("| model | seed | epochs | best epoch | s/epoch | fit s | process wall s | peak RSS MB "
          "| valid HR@1 | test HR@1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, seed, epochs, best, per_epoch, fit, wall, rss, valid_hr, test_hr in rows:
        print(f"| {name} | {seed} | {epochs} | {best} | {per_epoch:.1f} | {fit:.0f} | {wall:.0f} | {rss:.0f} | "
              f"{valid_hr:.4f} | {test_hr:.4f} |")
    total = sum(r[5] for r in rows)
    print(f"\nTotal fit time: {total:.0f} s ({total / 60:.1f} min) for {len(rows)} run(s).")


if __name__ == "__main__":
    main()
