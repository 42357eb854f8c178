"""Optuna studies with the same budget for every method, selected on validation only.

Baselines often lose only because nobody tuned them (Dacrema et al., RecSys 2019). Here each
(data set, protocol, method) gets one study, named predictably so that rerunning the command, or
starting more workers against the same storage, continues it. `--trials N` is the study's total
budget: a killed tuning run resumes up to N, and every method gets the same N. Test candidates
are never read: trials fit on the training windows and score the frozen validation candidates.
"""

from __future__ import annotations

import logging
import math
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.errors import UserError
from harness.records import atomic_write_text
from harness.registry import unknown_name_message
from harness.runner import RunPlan, Session
from methods.base import METHODS

log = logging.getLogger("ilora_bench")

OBJECTIVES = ("HR@1", "NDCG@5")
# Trials that use up budget: finished ones and those other workers are running (not queued ones).
COUNTED = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
PRUNERS = ("median", "hyperband", "none")


@dataclass
class TunePlan:
    run: RunPlan
    trials: int = 20
    timeout_minutes: float | None = None
    storage: str | None = None  # default: sqlite:///<out>/optuna.db
    objective: str = "HR@1"
    pruner: str = "median"
    tuning_seed: int = 0  # the split/candidates that trials are validated on

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(unknown_name_message("objective metric", self.objective, list(OBJECTIVES)))
        if self.pruner not in PRUNERS:
            raise UserError(unknown_name_message("pruner", self.pruner, list(PRUNERS)))
        if not 1 <= self.trials <= 100_000:
            raise UserError(f"--trials must be within 1..100000, got {self.trials}")
        if self.timeout_minutes is not None and not 0 < self.timeout_minutes <= 7 * 24 * 60:
            raise UserError(f"--timeout must be a positive number of minutes (at most a week), got {self.timeout_minutes}")


def storage_url(plan: TunePlan) -> Any:
    """SQLite by default; 'journal:PATH' for several processes on one machine; any RDB URL for several machines."""
    import optuna

    url = plan.storage or f"sqlite:///{plan.run.out / 'optuna.db'}"
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def study_name(session: Session, method: str) -> str:
    split = session.split_spec
    cands = session.cand_spec
    return (
        f"{session.data.name}.{session.data.fingerprint()[:8]}.{split.scheme}-h{split.max_history}-m{split.min_history}"
        f".c{cands.n_negatives}-{cands.exclude}.{method}"
    )


def _pruner(name: str) -> Any:
    import optuna

    return {
        "median": optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        "hyperband": optuna.pruners.HyperbandPruner(),
        "none": optuna.pruners.NopPruner(),
    }[name]


def open_study(plan: TunePlan, session: Session, method: str) -> Any:
    import optuna

    name = study_name(session, method)
    storage = storage_url(plan)
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
        n_before = len(existing.trials)
    except KeyError:
        n_before = 0
    # Seeded, yet a resumed study must not replay the first session's random start-up draws.
    sampler = optuna.samplers.TPESampler(seed=plan.tuning_seed * 100_003 + n_before)
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, pruner=_pruner(plan.pruner),
        direction="maximize", load_if_exists=True,
    )
    if n_before == 0:  # trial 0 is the defaults, so a study never ends worse than not tuning
        defaults = METHODS.get(method).obj.defaults
        space = _space_names(method)
        if space:
            study.enqueue_trial({k: v for k, v in defaults.items() if k in space}, skip_if_exists=True)
    return study


def _space_names(method: str) -> set[str]:
    """The parameter names a method's search space suggests, from a throw-away in-memory trial."""
    import optuna

    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    METHODS.get(method).obj.search_space(trial)
    return set(trial.params)


def tune(plan: TunePlan) -> list[dict[str, Any]]:
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    counted = tuple(TrialState[name] for name in COUNTED)
    entries = METHODS.resolve_list(plan.run.methods)
    session = Session(plan.run)
    summaries = []
    for entry in entries:
        study = open_study(plan, session, entry.name)
        study.set_user_attr("objective", f"valid {plan.objective}")
        budget = plan.trials if _space_names(entry.name) else 1  # nothing to search: one trial says it all
        done = len([t for t in study.trials if t.state in counted])
        remaining = max(0, budget - done)
        log.info("study %r: %d finished trials, running up to %d more", study.study_name, done, remaining)
        if remaining:
            objective = _objective(session, entry.name, plan)
            study.optimize(
                objective, n_trials=remaining, timeout=None if plan.timeout_minutes is None else plan.timeout_minutes * 60,
                catch=(Exception,), callbacks=[MaxTrialsCallback(budget, states=counted)],
                show_progress_bar=False,
            )
        summaries.append(summarise(study, entry.name))
    write_summary(plan.run.out, storage_url(plan), storage_label(plan))
    return summaries


def _objective(session: Session, name: str, plan: TunePlan) -> Any:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        params = {**session.params_for(name), **METHODS.get(name).obj.search_space(trial)}

        def report(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (valid {plan.objective} {value:.4f})")

        try:
            results = session.validate(name, params, plan.tuning_seed, report=report, trial=trial.number)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # kept on the trial, then marked failed by optimize(catch=...)
            trial.set_user_attr("error", f"{type(e).__name__}: {e}")
            log.debug("trial %d of %s failed:\n%s", trial.number, name, traceback.format_exc())
            raise
        primary = next(iter(results.values()))
        value = primary[plan.objective]
        if not math.isfinite(value):
            raise ValueError(f"objective is {value}")
        for mode, metrics in results.items():
            trial.set_user_attr(f"valid_{mode}", metrics)
        return value

    return objective


def summarise(study: Any, method: str) -> dict[str, Any]:
    from optuna.trial import TrialState

    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {
        "study": study.study_name, "method": method,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else best.params,
        "complete": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
        "errors": sorted({t.user_attrs.get("error", "") for t in study.trials if t.state == TrialState.FAIL}),
    }


def storage_label(plan: TunePlan) -> str:
    return plan.storage or f"sqlite:///{plan.run.out / 'optuna.db'}"


def best_params(plan: TunePlan, session: Session, method: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The best trial's parameters, and what to record about the study, or None if none completed."""
    import optuna

    try:
        study = optuna.load_study(study_name=study_name(session, method), storage=storage_url(plan))
    except KeyError:
        return None
    summary = summarise(study, method)
    if summary["best_params"] is None:
        return None
    params = {**session.params_for(method), **summary["best_params"]}
    info = {k: summary[k] for k in ("study", "best_value", "complete", "pruned", "failed")}
    return params, info


def studies(storage: Any) -> Iterator[Any]:
    """Every study in the storage, by name: what tuning.md and the leaderboard's tuning plot show."""
    import optuna

    for s in sorted(optuna.get_all_study_summaries(storage=storage), key=lambda s: s.study_name):
        yield optuna.load_study(study_name=s.study_name, storage=storage)


def write_summary(out: Path, storage: Any, label: str) -> Path:
    """results/tuning.md: every study in the storage, for the leaderboard folder."""
    from tabulate import tabulate

    rows = []
    for study in studies(storage):
        info = summarise(study, study.study_name.rsplit(".", 1)[-1])
        best = "" if info["best_value"] is None else f"{info['best_value']:.4f}"
        params = "" if info["best_params"] is None else ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(info["best_params"].items()))
        rows.append([info["study"], best, params, info["complete"], info["pruned"], info["failed"]])
    text = (
        "# Tuning summary\n\nRebuilt after every `python run_bench.py tune ...` from the Optuna storage "
        f"`{label}`. Objective: validation metric of the method's primary scoring mode (never test).\n"
        f"Browse the trials with `optuna-dashboard {label.removeprefix('journal:')}` (pip install optuna-dashboard).\n\n"
        + tabulate(rows, headers=["study", "best valid", "best parameters", "complete", "pruned", "failed"],
                   tablefmt="github", disable_numparse=True)
        + "\n"
    )
    path = out / "tuning.md"
    atomic_write_text(path, text)
    return path


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
