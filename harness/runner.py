"""data set -> split -> frozen candidates -> method.fit -> method.score -> metrics -> run record.

One function, `run_benchmark`, walks that path for every (seed, method) and then rebuilds the
leaderboard from the records on disk. A method that raises is recorded as failed and the others
still run; the caller's exit status says something failed.
"""

from __future__ import annotations

import functools
import hashlib
import json
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
from harness.data import load_dataset
from harness.errors import UserError
from harness.evaluate import full_metrics, full_ranks, metrics, ranks_from_choices, ranks_from_scores
from harness.protocol import (
    CandidateSpec, EvalSet, FrozenCandidates, Split, SplitSpec, freeze_candidates, make_split, reordered_test,
)
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
    # Extra reshuffled candidate orders for order-sensitive methods (position bias). None: 3 on a GPU,
    # 0 on a CPU, where each order costs an LLM method another ~4 minutes of scoring.
    orders: int | None = None
    tuned: bool = False  # use each method's best parameters from its Optuna study
    threads: int = 0  # torch intra-op CPU threads; 0 leaves torch's default (one per core)
    # Parameters for every method that has them (--profile, --llm: the LLM family); --set METHOD.P wins.
    shared: dict[str, Any] = field(default_factory=dict)
    storage: str | None = None  # Optuna storage for --tuned (default sqlite:///<out>/optuna.db)
    command: str = field(default_factory=lambda: shlex.join(["python", *sys.argv]))
    # False for side scripts (bench/) that read the committed records: a required model retrained there
    # that scores differently from its record is used and warned about, but never rewrites the record.
    replace_records: bool = True


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


@functools.cache
def git_commit() -> str | None:
    """The commit this process's code came from, read once (a commit made while a long run goes on
    must not be claimed by its later records); "+dirty" when tracked code differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=root, timeout=5)
        commit = out.stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)results"], cwd=root, timeout=5)
        return commit + ("+dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return None


CODE_FILES = ("run_bench.py", "harness/**/*.py", "methods/**/*.py", "bench/*.py", "bench/*.sh")


@functools.cache
def code_sha256(root: Path = Path(__file__).resolve().parents[1]) -> str:
    """A fingerprint of the code that runs (CODE_FILES' names and bytes), read once like git_commit.
    It needs no git metadata: a copied working tree (a lent GPU's) has carried a stale .git, whose
    records then named an older commit "+dirty". Compute it in a checkout of a commit (`python -c "from
    harness.runner import code_sha256; print(code_sha256())"`) to tell whether a record ran that code."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in CODE_FILES for p in root.glob(pattern)}):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def evaluate_method(method: Method, samples: EvalSet) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Every scoring mode of the method, then metrics and per-sample outcomes (kept for paired tests)."""
    target_index = samples.target_index
    rows: list[dict[str, Any]] = [
        {"i": i, "user": int(samples.users[i]), "target": int(samples.targets[i]), "rank": {}} for i in range(len(samples))
    ]
    results: dict[str, dict[str, float]] = {}
    for mode, how in method.modes.items():
        if how == "score":
            ranks = ranks_from_scores(method.score(samples), target_index)
            results[mode] = metrics(ranks)
        else:
            choices, answers = method.choose(samples)
            choices = np.asarray(choices)
            ranks = ranks_from_choices(choices, target_index)
            results[mode] = metrics(ranks, choices >= 0)
            for row, c, a in zip(rows, choices, answers):
                row.update(choice=int(c), answer=a)
        for row, r in zip(rows, ranks):
            row["rank"][mode] = int(r)
    all_scores = method.score_all(samples)
    if all_scores is not None:
        ranks = full_ranks(all_scores, samples.targets, samples.seen)
        results["full"] = full_metrics(ranks)
        for row, r in zip(rows, ranks):
            row["rank"]["full"] = int(r)
    return results, rows


class Session:
    """One data set under one protocol: prepares each seed's split and candidates once, runs methods.

    It is what `run_benchmark` loops over, what tuning asks for a validation score, and what a
    method's `ctx.require(...)` uses to get another method trained on the same split.
    """

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        git_commit()  # both read now, at the start of the run
        code_sha256()
        if plan.threads:
            import torch

            # Two torch processes each using every core slow each other 5-10x; --threads 1 avoids it.
            torch.set_num_threads(plan.threads)
        self.device = resolve_device(plan.device)
        self.data = load_dataset(plan.dataset, trust_pickle=plan.trust_pickle)
        self.split_spec = SplitSpec(plan.split or self.data.default_split, plan.max_history, plan.min_history)
        self.cand_spec = CandidateSpec(plan.negatives, plan.exclude)
        self.store = RecordStore(plan.out)
        self.orders = plan.orders if plan.orders is not None else (3 if self.device.startswith("cuda") else 0)
        self._prepared: dict[int, tuple[Split, FrozenCandidates]] = {}
        self._loaded: dict[str, Method] = {}
        self.tuned: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # method -> (best params, study info)

    def prepare(self, seed: int) -> tuple[Split, FrozenCandidates]:
        if seed not in self._prepared:
            split = make_split(self.data, self.split_spec, seed)
            cands = freeze_candidates(self.data, split, self.split_spec, self.cand_spec, seed, self.plan.out / "candidates")
            log.info(
                "seed %d: %d training samples, %d valid, %d test; candidates %s",
                seed, len(split.train), len(cands.valid), len(cands.test), cands.path,
            )
            self._prepared = {seed: (split, cands)}  # one seed in memory at a time
        return self._prepared[seed]

    def params_for(self, name: str) -> dict[str, Any]:
        cls = METHODS.get(name).obj
        if name in self.tuned:
            return cls.resolve(dict(self.tuned[name][0]))
        shared = {k: v for k, v in self.plan.shared.items() if k in cls.defaults}
        return cls.resolve({**cls.defaults, **shared, **self.plan.params.get(name, {})})

    def use_tuned(self, names: list[str]) -> None:
        """Take each method's best parameters from its study; methods without one keep their defaults."""
        from harness.tuning import TunePlan, best_params

        tune_plan = TunePlan(run=self.plan, storage=self.plan.storage)
        for name in names:
            best = best_params(tune_plan, self, name)
            if best is None:
                log.warning("%s: no completed Optuna study; running its default parameters", name)
            else:
                self.tuned[name] = best

    def config(self, name: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
        _, cands = self.prepare(seed)
        config = {
            "data": self.data.fingerprint(), "split": asdict(self.split_spec), "candidates": cands.key,
            "method": name, "params": params, "seed": seed,
        }
        if self.orders and METHODS.get(name).obj.order_sensitive:
            # Only where it changes the record (extra orders scored), so records without stay valid.
            config["orders"] = self.orders
        return config

    def context(self, name: str, seed: int, work_dir: Path, report: Any = None) -> RunContext:
        ctx = RunContext(
            seed=seed, device=self.device, work_dir=work_dir, n_items=self.data.n_items, titles=self.data.titles,
            dataset=self.data.name, report=report,
        )

        def require(other: str) -> Method:
            t0 = time.perf_counter()
            try:
                return self.require(other, seed)
            finally:
                ctx.required_seconds += time.perf_counter() - t0

        ctx.require = require
        return ctx

    def run(self, name: str, seed: int, params: dict[str, Any] | None = None, force: bool = False) -> tuple[str, Path]:
        """Run and record one (method, parameters, seed); returns ("ok"|"failed"|"skipped", record path)."""
        params = self.params_for(name) if params is None else params
        config = self.config(name, params, seed)
        run_hash = config_hash(config)
        path = self.store.path(self.data.name, name, run_hash)
        if not force and self.store.finished(self.data.name, name, run_hash):
            log.info("%s seed %d: record exists, skipped (%s)", name, seed, path)
            return "skipped", path
        record, samples, method = self._run_one(name, params, seed, run_hash)
        record.update(hash=run_hash, config=config)
        path = self.store.write(record, samples)
        if record["status"] == "ok":
            log.info("%s seed %d: test %s -> %s", name, seed, _headline(record["metrics"]["test"]), path)
            if method is not None and method.reusable:
                self._loaded[run_hash] = method
        else:
            log.error("%s seed %d failed: %s (recorded in %s)", name, seed, record["error"], path)
        return record["status"], path

    def require(self, name: str, seed: int) -> Method:
        """The named method trained on this seed's split with its run parameters, trained once."""
        params = self.params_for(name)
        run_hash = config_hash(self.config(name, params, seed))
        if run_hash in self._loaded:
            return self._loaded[run_hash]
        cls = METHODS.get(name).obj
        if not cls.reusable:
            raise TypeError(f"method {name!r} does not save its trained state, so it cannot be required")
        folder = self.artifact_dir(name, run_hash)
        if not self.store.finished(self.data.name, name, run_hash):
            status, path = self.run(name, seed, params, force=True)
            if status != "ok":
                raise RuntimeError(f"required method {name!r} (seed {seed}) failed; see {path}")
            if run_hash in self._loaded:
                return self._loaded[run_hash]
        elif not (folder / "COMPLETE").exists():
            return self._rebuild_artifact(name, params, seed, run_hash)
        method = cls(self.context(name, seed, self.work_dir(name, seed)), **params)
        method.load(folder)
        self._loaded[run_hash] = method
        return method

    def _rebuild_artifact(self, name: str, params: dict[str, Any], seed: int, run_hash: str) -> Method:
        """Retrain a recorded method whose saved state is gone (artifacts are not committed; records are).

        The committed record stays as it is when the retrained model scores the same test metrics:
        rewriting it would only swap in this process's command, timings, commit and a peak RSS that
        includes whatever else the process holds (an LLM). A model that scores differently is a
        different run, so then the new record replaces the old one, and the log says so; a side script
        (`replace_records=False`) only warns, as its outputs are not records.
        """
        path = self.store.path(self.data.name, name, run_hash)
        kept = json.loads(path.read_text())
        log.info("%s seed %d: record exists but its saved model does not (%s); training it again", name, seed,
                 self.artifact_dir(name, run_hash))
        record, samples, method = self._run_one(name, params, seed, run_hash)
        if record["status"] != "ok" or method is None:
            raise RuntimeError(f"required method {name!r} (seed {seed}) failed to train again: {record.get('error')}")
        metrics = json.loads(json.dumps(record["metrics"]))  # as the record file holds them (lists, not tuples)
        if metrics == kept["metrics"]:
            log.info("%s seed %d: retrained model scores the recorded test metrics; record kept (%s)", name, seed, path)
        elif not self.plan.replace_records:
            log.warning("%s seed %d: retrained model's metrics differ from the record's (%s); record left as it is, "
                        "as this script never rewrites records (%s)", name, seed,
                        _metric_changes(metrics, kept["metrics"]), path)
        else:
            record.update(hash=run_hash, config=self.config(name, params, seed))
            self.store.write(record, samples)
            log.warning("%s seed %d: retrained model's metrics differ from the record's (%s); record replaced (%s)", name,
                        seed, _metric_changes(metrics, kept["metrics"]), path)
        self._loaded[run_hash] = method
        return method

    def validate(
        self, name: str, params: dict[str, Any], seed: int, report: Any = None, trial: int = 0
    ) -> dict[str, dict[str, float]]:
        """Fit, then score the frozen VALIDATION candidates (tuning never sees test). Writes no record."""
        split, cands = self.prepare(seed)
        work_dir = self.plan.out / "tuning" / "work" / self.data.name / name / f"trial{trial}"
        method = METHODS.get(name).obj(self.context(name, seed, work_dir, report=report), **params)
        method.fit(split.train, cands.valid)
        results, _ = evaluate_method(method, cands.valid)
        return results

    def _position_bias(
        self, method: Method, cands: FrozenCandidates, seed: int, samples: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Score the same test sets in `orders` other frozen orders; outcomes go beside the originals."""
        position = {"orders": [], "files": []}
        for row, idx in zip(samples, cands.test.target_index):
            row["orders"] = [{"pos": int(idx), "rank": dict(row["rank"])}]
        for order in range(1, self.orders + 1):
            shuffled = reordered_test(cands, order, seed)
            order_metrics, order_rows = evaluate_method(method, shuffled)
            position["orders"].append(order_metrics)
            position["files"].append(f"{cands.path.stem}.order{order}.tsv")
            for row, other, idx in zip(samples, order_rows, shuffled.target_index):
                row["orders"].append({"pos": int(idx), "rank": other["rank"]})
        return position

    def artifact_dir(self, name: str, run_hash: str) -> Path:
        return self.plan.out / "artifacts" / self.data.name / name / run_hash

    def work_dir(self, name: str, seed: int) -> Path:
        return self.plan.out / "work" / self.data.name / name / f"seed{seed}"

    def _run_one(
        self, name: str, params: dict[str, Any], seed: int, run_hash: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]] | None, Method | None]:
        cls = METHODS.get(name).obj
        split, cands = self.prepare(seed)
        record: dict[str, Any] = {
            "format": RECORD_FORMAT, "method": name, "modes": list(cls.modes), "params": params, "seed": seed,
            "tuning": self.tuned[name][1] if name in self.tuned else None,
            "dataset": {"name": self.data.name, "source": self.data.source, "fingerprint": self.data.fingerprint()},
            "split": {**asdict(self.split_spec), "train": len(split.train), "valid": len(cands.valid),
                      "test": len(cands.test), "dropped_short_history": split.dropped},
            "candidates": {"file": cands.path.name, "sha256": cands.sha256, "key": cands.key, **asdict(self.cand_spec)},
            "command": self.plan.command, "harness_version": __version__, "git_commit": git_commit(),
            "code_sha256": code_sha256(),
            "versions": package_versions(), "hardware": hardware(self.device),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        samples, method = None, None
        try:
            with PeakMemory() as mem:
                ctx = self.context(name, seed, self.work_dir(name, seed))
                method = cls(ctx, **params)
                t0 = time.perf_counter()
                method.fit(split.train, cands.valid)
                t1 = time.perf_counter()
                required = ctx.required_seconds
                test_metrics, samples = evaluate_method(method, cands.test)
                t2 = time.perf_counter()
                if cls.order_sensitive and self.orders:
                    record["position"] = self._position_bias(method, cands, seed, samples)
            record.update(
                status="ok", metrics={"test": test_metrics}, fit_seconds=round(t1 - t0 - required, 3),
                required_seconds=round(required, 3),
                score_seconds=round(t2 - t1, 3), peak_rss_mb=round(mem.peak / 2**20, 1),
                trainable_parameters=int(method.trainable_parameters()), extra=method.record_extra(),
            )
            if cls.reusable:
                folder = self.artifact_dir(name, run_hash)
                folder.mkdir(parents=True, exist_ok=True)
                method.save(folder)
                (folder / "COMPLETE").write_text(run_hash + "\n")  # marks a whole save, written last
                record["artifacts"] = str(folder)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # recorded, not swallowed: the run's exit status reports it
            log.debug("traceback of %s seed %d:\n%s", name, seed, traceback.format_exc())
            record.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            method = None
        return record, samples, method


def _metric_changes(new: dict[str, Any], old: dict[str, Any], shown: int = 3) -> str:
    """The first few metrics that differ, as 'test rank NDCG@5 0.6809, recorded 0.6795': a headline
    HR@1 is often the same when a retrained model moved a few ranks (another CPU's float sums)."""
    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix.strip(): d}
        return {k: v for key, value in d.items() for k, v in flat(value, f"{prefix} {key}").items()}

    a, b = flat(new), flat(old)
    diff = [f"{k} {a.get(k)}, recorded {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "; ".join(diff[:shown]) + (f"; and {len(diff) - shown} more" if len(diff) > shown else "")


def _headline(test: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{mode} HR@1 {m['HR@1']:.4f}" for mode, m in test.items() if "HR@1" in m)


def run_benchmark(plan: RunPlan) -> RunSummary:
    from harness.report.leaderboard import write_leaderboard

    # Methods that others can require (trained ID models) run first, so that an LLaRA/iLoRA run
    # reuses the SASRec of this very list instead of training it inside its own fit time.
    entries = sorted(METHODS.resolve_list(plan.methods), key=lambda e: not e.obj.reusable)
    names = [e.name for e in entries]
    for name in plan.params:
        if name not in names:
            raise UserError(f"--set names method {name!r}, which is not among --methods {plan.methods}")
    for e in entries:  # check parameter names before any work starts
        unknown = sorted(set(plan.params.get(e.name, {})) - set(e.obj.defaults))
        if unknown:
            raise UserError(
                f"method {e.name!r} has no parameter {unknown[0]!r}; known: {', '.join(sorted(e.obj.defaults)) or 'none'}"
            )
    if not plan.seeds:
        raise UserError("--seeds needs at least one seed")
    for s in plan.seeds:
        if s >= 2**32:
            raise UserError(f"--seeds: seed {s} outside 0..2^32-1")
    for key, value in plan.shared.items():
        if not any(key in e.obj.defaults for e in entries):
            option = f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}")
            raise UserError(f"{option}: none of --methods {plan.methods} takes a {key} (the LLM methods do)")
    session = Session(plan)
    if plan.tuned:
        session.use_tuned(names)
    resolved = {e.name: session.params_for(e.name) for e in entries}  # a bad value fails here, before any output
    log.info("data set %s: %s", session.data.name, session.data.statistics())
    estimates = []
    for e in entries:
        params = resolved[e.name]
        line = e.obj.plan(params)
        if line:
            log.info("plan: %s %s", e.name, line)
        estimates.append(e.obj.estimate_minutes(params))
    if session.device == "cpu" and None not in estimates:
        log.info("plan: %d run(s); roughly %.0f min in all on 2 idle CPU cores at ml-100k's size (runs already "
                 "recorded are skipped; timed on one 2-core AMD EPYC, other CPUs differ: each trained LLM "
                 "method logs this machine's estimate once its model is loaded)",
                 len(entries) * len(plan.seeds), sum(estimates) * len(plan.seeds))
    log.info("writing run records under %s", session.store.runs)
    summary = RunSummary()
    jobs = [(seed, name) for seed in plan.seeds for name in names]
    progress = tqdm(jobs, desc="runs", unit="run", disable=None)
    for seed, name in progress:
        progress.set_postfix_str(f"{name} seed {seed}")
        status, path = session.run(name, seed, force=plan.force)
        {"ok": summary.written, "skipped": summary.skipped, "failed": summary.failed}[status].append(path)
        summary.leaderboard = write_leaderboard(session.store)
    if summary.leaderboard is None:
        summary.leaderboard = write_leaderboard(session.store)
    return summary
