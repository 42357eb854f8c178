import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

import tests.toy_methods  # noqa: F401  (registers toy-markov)
from harness.errors import UserError
from harness.runner import RunPlan, Session
from harness.tuning import TunePlan, open_study, study_name, tune
from tests.conftest import ROOT


def plan(tmp_path, trials=6, **kw):
    return TunePlan(run=RunPlan(dataset="synthetic", methods="toy-markov", seeds=[0], out=tmp_path), trials=trials, **kw)


def load(p):
    session = Session(p.run)
    return optuna.load_study(study_name=study_name(session, "toy-markov"), storage=f"sqlite:///{p.run.out / 'optuna.db'}")


def test_study_is_at_least_as_good_as_defaults(tmp_path):
    p = plan(tmp_path, trials=6)
    [summary] = tune(p)
    session = Session(p.run)
    default_value = session.validate("toy-markov", session.params_for("toy-markov"), 0)["rank"]["HR@1"]
    assert summary["best_value"] >= default_value
    study = load(p)
    assert study.trials[0].params == {"smoothing": 30.0, "invert": False}  # trial 0 = defaults
    assert (tmp_path / "tuning.md").read_text().count("toy-markov") == 1
    from harness.records import RecordStore
    from harness.report.leaderboard import write_leaderboard

    board = write_leaderboard(RecordStore(tmp_path)).read_text()  # the same studies feed the tuning plot
    assert "## Tuning" in board and (tmp_path / "plots" / "tuning.png").stat().st_size > 1000


def test_pruner_prunes_a_planted_bad_configuration(tmp_path):
    p = plan(tmp_path, trials=5)
    session = Session(p.run)
    study = open_study(p, session, "toy-markov")
    for smoothing in (1.0, 3.0, 10.0):
        study.enqueue_trial({"smoothing": smoothing, "invert": False})
    study.enqueue_trial({"smoothing": 5.0, "invert": True})
    tune(p)
    trials = load(p).trials
    bad = [t for t in trials if t.params.get("invert")]
    assert bad and all(t.state == TrialState.PRUNED for t in bad[:1])
    assert all(t.state == TrialState.COMPLETE for t in trials if not t.params.get("invert"))


def test_resume_adds_trials_instead_of_restarting(tmp_path):
    tune(plan(tmp_path, trials=3))
    first = [(t.number, t.params) for t in load(plan(tmp_path)).trials]
    tune(plan(tmp_path, trials=5))
    trials = load(plan(tmp_path)).trials
    assert len(trials) == 5 and [(t.number, t.params) for t in trials[:3]] == first
    tune(plan(tmp_path, trials=5))  # budget reached: nothing more
    assert len(load(plan(tmp_path)).trials) == 5


def test_raising_trial_is_marked_failed(tmp_path):
    p = plan(tmp_path, trials=2)
    p.run.params = {"toy-markov": {"explode": True}}
    [summary] = tune(p)
    assert summary["failed"] == 2 and summary["complete"] == 0
    assert summary["errors"] == ["RuntimeError: planted failure"]


WORKER = """
import sys
sys.path.insert(0, {root!r})
import tests.toy_methods
import run_bench
sys.exit(run_bench.main(["tune", "--methods", "toy-markov", "--dataset", "synthetic", "--trials", "8",
                         "--out", {out!r}, "--storage", {storage!r}, "--pruner", "none"]))
"""


def test_two_worker_processes_share_one_study(tmp_path):
    storage = f"journal:{tmp_path / 'optuna.journal'}"
    code = WORKER.format(root=str(ROOT), out=str(tmp_path), storage=storage)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    session = Session(RunPlan(dataset="synthetic", out=tmp_path))
    study = optuna.load_study(
        study_name=study_name(session, "toy-markov"), storage=JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    )
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(len(numbers))) and 8 <= len(numbers) <= 9  # none lost; at most one over by a race
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_tuned_run_uses_best_parameters(tmp_path):
    p = plan(tmp_path, trials=4)
    [summary] = tune(p)
    from harness.runner import run_benchmark
    from harness.records import RecordStore

    run_benchmark(RunPlan(dataset="synthetic", methods="toy-markov", seeds=[0], out=tmp_path, tuned=True))
    [record] = RecordStore(tmp_path).load_all()
    assert record["tuning"]["complete"] + record["tuning"]["pruned"] == 4
    assert {k: record["params"][k] for k in summary["best_params"]} == summary["best_params"]
    assert "tuned (4 trials)" in (tmp_path / "leaderboard.md").read_text()


def test_bad_tuning_options():
    with pytest.raises(UserError, match="unknown objective metric 'HR@2'"):
        TunePlan(run=RunPlan(), objective="HR@2")
    with pytest.raises(UserError, match="unknown pruner"):
        TunePlan(run=RunPlan(), pruner="mean")
    with pytest.raises(UserError, match="--trials"):
        TunePlan(run=RunPlan(), trials=0)
