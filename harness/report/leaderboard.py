"""results/leaderboard.md, rebuilt from the run records alone.

Rebuilding from the same records gives the same bytes: rows are sorted, and nothing
time-dependent (dates, durations of the rebuild) is written.
"""

from __future__ import annotations

import fcntl
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from harness.evaluate import FULL_METRICS, METRICS
from harness.records import RecordStore, atomic_write_text, config_hash

HEADER = """# ilora-bench leaderboard

Rebuilt by `python run_bench.py leaderboard` from the run records in `runs/` beside this file
(do not edit by hand). Each cell is the mean ± sample standard deviation over seeds; every seed has its own
user split and its own frozen candidate file (1 target + negatives), which all methods of that
seed score. HR@1 is the papers' HitRatio@1 (correct / all test samples); ValidRatio is the share
of answers that named exactly one candidate (1 for rankers). LLM methods have one row per
scoring mode: (generate) parses a greedy answer, (likelihood) ranks the candidates by the
log-probability of their titles. The "full" columns rank the target among all items (the user's
earlier items masked) for methods that score the whole catalogue.
"""


def _group_key(record: dict[str, Any]) -> tuple[str, str]:
    setting = {k: record["split"][k] for k in ("scheme", "max_history", "min_history")}
    setting.update({k: record["candidates"][k] for k in ("n_negatives", "exclude")})
    label = (
        f"{record['dataset']['name']} · split {setting['scheme']} (history ≤ {setting['max_history']}, "
        f"held-out history ≥ {setting['min_history']}) · 1 + {setting['n_negatives']} candidates, "
        f"negatives exclude {setting['exclude']} items · data {record['dataset']['fingerprint'][:12]}"
    )
    return label, json.dumps(setting, sort_keys=True)


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def build_leaderboard(records: list[dict[str, Any]]) -> str:
    sections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        sections[_group_key(r)[0]].append(r)
    out = [HEADER]
    if not records:
        out.append("\nNo run records yet: run `python run_bench.py --methods all`.\n")
    for label in sorted(sections):
        out.append(f"\n## {label}\n")
        group = sections[label]
        ok = [r for r in group if r["status"] == "ok"]
        rows_by_method: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in ok:
            rows_by_method[(r["method"], config_hash(r["params"]))].append(r)
        params_per_method = defaultdict(set)
        for method, phash in rows_by_method:
            params_per_method[method].add(phash)
        table = []
        for (method, phash), runs in rows_by_method.items():
            runs.sort(key=lambda r: r["seed"])
            name = method if len(params_per_method[method]) == 1 else f"{method} [{phash[:6]}]"
            tuning = runs[0].get("tuning")
            if tuning:
                name += f" · tuned ({tuning['complete'] + tuning['pruned'] + tuning['failed']} trials)"
            modes = [m for m in runs[0]["metrics"]["test"] if m != "full"]
            for mode in modes:
                label = name if len(modes) == 1 else f"{name} ({mode})"
                row = [label, len(runs)]
                row += [_cell([r["metrics"]["test"][mode][m] for r in runs]) for m in METRICS]
                full = [r["metrics"]["test"].get("full") for r in runs]
                row += [_cell([f[m] for f in full]) if all(full) else "" for m in FULL_METRICS]
                row += [f"{runs[0]['trainable_parameters']:,}", f"{np.mean([r['fit_seconds'] for r in runs]):.1f}"]
                table.append((-np.mean([r["metrics"]["test"][mode]["HR@1"] for r in runs]), label, row))
        table.sort(key=lambda t: (t[0], t[1]))
        headers = ["method", "seeds", *METRICS, *(f"{m} full" for m in FULL_METRICS), "trainable params", "fit s (mean)"]
        out.append(tabulate([t[2] for t in table], headers=headers, tablefmt="github", disable_numparse=True) + "\n")
        seeds = sorted({r["seed"] for r in ok})
        out.append(f"\nSeeds: {', '.join(map(str, seeds))}. Commands that produced these records:\n")
        for cmd in sorted({r["command"] for r in ok}):
            out.append(f"\n    {cmd}\n")
        failed = sorted((r["method"], r["seed"], r["error"]) for r in group if r["status"] != "ok")
        if failed:
            out.append("\nFailed runs (rerun the command to retry them):\n\n")
            out.extend(f"- {m} seed {s}: {err}\n" for m, s, err in failed)
        multi = {m for m, p in params_per_method.items() if len(p) > 1}
        if multi:
            out.append("\nRows tagged [xxxxxx] are different parameter sets of the same method (hash of the parameters):\n\n")
            for (method, phash), runs in sorted(rows_by_method.items()):
                if method in multi:
                    out.append(f"- {method} [{phash[:6]}]: `{json.dumps(runs[0]['params'], sort_keys=True)}`\n")
    return "".join(out)


def write_leaderboard(store: RecordStore) -> Path:
    """Rebuild under a lock: two runs sharing a results folder must not publish a stale view last."""
    path = store.root / "leaderboard.md"
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / ".leaderboard.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        atomic_write_text(path, build_leaderboard(store.load_all()))
    return path

