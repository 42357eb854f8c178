"""data set -> split -> frozen candidates -> method.fit -> method.score -> metrics -> run record.

One function, `run_benchmark`, walks that path for every (seed, method) and then rebuilds the
leaderboard from the records on disk. A method that raises is recorded as failed and the others
still run; the caller's exit status says something failed.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from harness import __version__
from harness.data import DataSet, load_dataset
from harness.errors import UserError
from harness.evaluate import metrics, ranks_from_choices, ranks_from_scores
from harness.protocol import CandidateSpec, EvalSet, FrozenCandidates, SplitSpec, freeze_candidates, make_split
from harness.records import RECORD_FORMAT, RecordStore, config_hash, hardware, package_versions
from methods.base import METHODS, Method, RunContext

log = logging.getLogger("ilora_bench")


@dataclass
class RunPlan:
    dataset: str = "ml-100k"
    methods: str = "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    out: Path = Path("results")
    device: str = "auto"
    split: str | None = None  # None: the data set's own default (llara, or given for published splits)
    max_history: int = 10
    min_history: int = 3
    negatives: int = 19
    exclude: str = "seen"
    force: bool = False
    trust_pickle: bool = False
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> parameter overrides
    command: str = field(default_factory=lambda: shlex.join(["python", *sys.argv]))


@dataclass
class RunSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    leaderboard: Path | None = None


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if device == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise UserError(f"--device {device}: no CUDA device is available here (use --device cpu or auto)")
    return device


class PeakMemory:
    """Peak resident memory of this process while the block runs, sampled from /proc every 20 ms.

    ru_maxrss only ever grows over the whole process, which would charge one method for another's
    peak when several run in one process.
    """

    def __enter__(self) -> "PeakMemory":
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def evaluate_method(method: Method, samples: EvalSet) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score or let choose, then metrics and per-sample outcomes (kept for paired tests)."""
    target_index = samples.target_index
    rows: list[dict[str, Any]] = []
    if method.kind == "ranker":
        scores = method.score(samples)
        ranks = ranks_from_scores(scores, target_index)
        result = metrics(ranks)
        for i in range(len(samples)):
            rows.append({"i": i, "user": int(samples.users[i]), "target": int(samples.targets[i]), "rank": int(ranks[i])})
    else:
        choices, answers = method.choose(samples)
        choices = np.asarray(choices)
        ranks = ranks_from_choices(choices, target_index)
        valid = choices >= 0
        result = metrics(ranks, valid)
        for i in range(len(samples)):
            rows.append({
                "i": i, "user": int(samples.users[i]), "target": int(samples.targets[i]), "rank": int(ranks[i]),
                "choice": int(choices[i]), "answer": answers[i],
            })
    return result, rows


def run_benchmark(plan: RunPlan) -> RunSummary:
    from harness.report.leaderboard import write_leaderboard

    entries = METHODS.resolve_list(plan.methods)
    for name in plan.params:
        if name not in [e.name for e in entries]:
            raise UserError(f"--set names method {name!r}, which is not among --methods {plan.methods}")
    for e in entries:  # check parameter names before any work starts
        unknown = sorted(set(plan.params.get(e.name, {})) - set(e.obj.defaults))
        if unknown:
            raise UserError(f"method {e.name!r} has no parameter {unknown[0]!r}; known: {', '.join(sorted(e.obj.defaults)) or 'none'}")
    if not plan.seeds:
        raise UserError("--seeds needs at least one seed")
    for s in plan.seeds:
        if s < 0 or s >= 2**32:
            raise UserError(f"--seeds: seed {s} outside 0..2^32-1")
    device = resolve_device(plan.device)
    data = load_dataset(plan.dataset, trust_pickle=plan.trust_pickle)
    split_spec = SplitSpec(plan.split or data.default_split, plan.max_history, plan.min_history)
    cand_spec = CandidateSpec(plan.negatives, plan.exclude)
    store = RecordStore(plan.out)
    summary = RunSummary()
    log.info("data set %s: %s", data.name, data.statistics())
    log.info("writing run records under %s", store.runs)

    jobs = [(seed, e) for seed in plan.seeds for e in entries]
    progress = tqdm(jobs, desc="runs", unit="run", disable=None)
    frozen: dict[int, tuple[Any, FrozenCandidates]] = {}
    for seed, entry in progress:
        progress.set_postfix_str(f"{entry.name} seed {seed}")
        if seed not in frozen:
            split = make_split(data, split_spec, seed)
            cands = freeze_candidates(data, split, split_spec, cand_spec, seed, plan.out / "candidates")
            log.info(
                "seed %d: %d training samples, %d valid, %d test; candidates %s",
                seed, len(split.train), len(cands.valid), len(cands.test), cands.path,
            )
            frozen = {seed: (split, cands)}  # one seed's split in memory at a time
        split, cands = frozen[seed]
        params = {**entry.obj.defaults, **plan.params.get(entry.name, {})}
        config = {
            "data": data.fingerprint(), "split": asdict(split_spec), "candidates": cands.key,
            "method": entry.name, "params": params, "seed": seed,
        }
        run_hash = config_hash(config)
        path = store.path(data.name, entry.name, run_hash)
        if not plan.force and store.finished(data.name, entry.name, run_hash):
            log.info("%s seed %d: record exists, skipped (%s)", entry.name, seed, path)
            summary.skipped.append(path)
            continue
        record, samples = _run_one(entry.name, entry.obj, params, seed, device, data, split, split_spec, cand_spec, cands, plan)
        record.update(hash=run_hash, config=config)
        path = store.write(record, samples)
        (summary.written if record["status"] == "ok" else summary.failed).append(path)
        if record["status"] == "ok":
            log.info("%s seed %d: test HR@1 %.4f -> %s", entry.name, seed, record["metrics"]["test"]["HR@1"], path)
        else:
            log.error("%s seed %d failed: %s (recorded in %s)", entry.name, seed, record["error"], path)
        summary.leaderboard = write_leaderboard(store)
    if summary.leaderboard is None:
        summary.leaderboard = write_leaderboard(store)
    return summary


def _run_one(
    name: str, cls: type[Method], params: dict[str, Any], seed: int, device: str, data: DataSet, split: Any,
    split_spec: SplitSpec, cand_spec: CandidateSpec, cands: FrozenCandidates, plan: RunPlan,
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    work_dir = plan.out / "work" / data.name / name / f"seed{seed}"
    ctx = RunContext(seed=seed, device=device, work_dir=work_dir, n_items=data.n_items, titles=data.titles, dataset=data.name)
    record: dict[str, Any] = {
        "format": RECORD_FORMAT, "method": name, "kind": cls.kind, "params": params, "seed": seed,
        "dataset": {"name": data.name, "source": data.source, "fingerprint": data.fingerprint()},
        "split": {**asdict(split_spec), "train": len(split.train), "valid": len(cands.valid), "test": len(cands.test),
                  "dropped_short_history": split.dropped},
        "candidates": {"file": cands.path.name, "sha256": cands.sha256, "key": cands.key, **asdict(cand_spec)},
        "command": plan.command, "harness_version": __version__, "git_commit": git_commit(),
        "versions": package_versions(), "hardware": hardware(device),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    samples = None
    try:
        with PeakMemory() as mem:
            method = cls(ctx, **params)
            t0 = time.perf_counter()
            method.fit(split.train, cands.valid)
            t1 = time.perf_counter()
            test_metrics, samples = evaluate_method(method, cands.test)
            t2 = time.perf_counter()
        record.update(
            status="ok", metrics={"test": test_metrics}, fit_seconds=round(t1 - t0, 3), score_seconds=round(t2 - t1, 3),
            peak_rss_mb=round(mem.peak / 2**20, 1), trainable_parameters=int(method.trainable_parameters()),
            extra=method.record_extra(),
        )
    except KeyboardInterrupt:
        raise
    except Exception as e:  # recorded, not swallowed: the run's exit status reports it
        log.debug("traceback of %s seed %d:\n%s", name, seed, traceback.format_exc())
        record.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    return record, samples
