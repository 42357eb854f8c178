"""Killed runs resume, concurrent runs do not corrupt each other, failures are recorded, seeds repeat."""

import json
import signal
import subprocess
import sys
import time

import pytest

from harness.protocol import read_candidates
from harness.records import RecordStore
from tests.conftest import ROOT

RUN = [sys.executable, str(ROOT / "run_bench.py"), "--methods", "random,pop", "--dataset", "ml-100k"]


def assert_consistent(out):
    """Whatever moment a run died at, every file it left is whole."""
    for path in out.glob("runs/*/*/*.json"):
        record = json.loads(path.read_text())
        if record["status"] == "ok":
            lines = path.with_suffix(".samples.jsonl").read_text().splitlines()
            assert len(lines) == record["split"]["test"]
            [json.loads(line) for line in lines]
    for path in out.glob("candidates/*.tsv"):
        read_candidates(path)
    board = out / "leaderboard.md"
    if board.exists():
        assert board.read_text().startswith("# ilora-bench leaderboard")


def test_sigkill_at_several_points_then_resume(tmp_path):
    out = tmp_path / "results"
    cmd = RUN + ["--seeds", "0", "1", "2", "3", "--out", str(out)]
    for delay in (0.5, 0.9, 1.3, 1.7, 2.1):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_consistent(out)
    before = len(list(out.glob("runs/*/*/*.json")))
    final = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert f"{8 - before} run(s) written, {before} skipped" in final.stdout
    records = RecordStore(out).load_all()
    assert sorted((r["method"], r["seed"]) for r in records) == sorted((m, s) for m in ("random", "pop") for s in range(4))
    assert_consistent(out)
    assert "| pop" in (out / "leaderboard.md").read_text()


def test_two_concurrent_runs_share_a_results_folder(tmp_path):
    out = tmp_path / "results"
    procs = [
        subprocess.Popen(RUN + ["--seeds", *seeds, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        for seeds in (["0", "1", "2"], ["2", "1", "0"])
    ]
    for p in procs:
        p.wait()
        assert p.returncode == 0, p.stderr.read()
    assert len(list(out.glob("runs/*/*/*.json"))) == 6
    assert_consistent(out)
    board = (out / "leaderboard.md").read_text()
    assert board.count("| 3       |") == 2  # both methods with all three seeds


def test_failed_method_is_recorded_and_others_complete(tmp_path, llara_dir):
    # LLaRA's MovieLens files have no training part: pop cannot count, random still runs.
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "run_bench.py"), "--methods", "random,pop", "--out", str(out),
           "--dataset", str(llara_dir / "original" / "movielens")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "1 run(s) written, 0 skipped (already recorded), 1 failed" in proc.stdout
    status = {r["method"]: r for r in RecordStore(out).load_all()}
    assert status["random"]["status"] == "ok"
    assert status["pop"]["status"] == "failed" and "no training samples" in status["pop"]["error"]
    assert "Failed runs" in (out / "leaderboard.md").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert "0 run(s) written, 1 skipped (already recorded), 1 failed" in again.stdout  # failures are retried


@pytest.mark.parametrize("methods, dataset", [("pop,random", "ml-100k"), ("sasrec", "synthetic")])
def test_same_seed_same_bytes_and_metrics_across_processes(tmp_path, methods, dataset):
    runs = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        subprocess.run(RUN[:2] + ["--methods", methods, "--dataset", dataset, "--seeds", "5", "--out", str(out)],
                       check=True, capture_output=True)
        runs.append(out)
    files = [sorted(o.glob("candidates/*.tsv")) for o in runs]
    assert [f.read_bytes() for f in files[0]] == [f.read_bytes() for f in files[1]]
    metrics = [{r["method"]: r["metrics"] for r in RecordStore(o).load_all()} for o in runs]
    assert metrics[0] == metrics[1]
    other = tmp_path / "r-other"
    subprocess.run(RUN[:2] + ["--methods", methods, "--dataset", dataset, "--seeds", "6", "--out", str(other)],
                   check=True, capture_output=True)
    assert next(other.glob("candidates/*.tsv")).read_bytes() != files[0][0].read_bytes()


def test_record_has_what_is_needed_to_repeat_it(tmp_path):
    out = tmp_path / "results"
    subprocess.run(RUN + ["--seeds", "0", "--out", str(out)], check=True, capture_output=True)
    record = RecordStore(out).load_all()[0]
    for key in ("command", "config", "params", "seed", "versions", "hardware", "candidates", "git_commit"):
        assert key in record
    assert "--seeds 0" in record["command"] and record["config"]["split"]["scheme"] == "llara"
    import re

    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", record["git_commit"])  # read once, at the run's start
    from harness.runner import code_sha256

    assert record["code_sha256"] == code_sha256()  # what a checkout of the commit recomputes


def test_code_fingerprint_changes_with_the_code_and_nothing_else(tmp_path):
    from harness.runner import code_sha256

    (tmp_path / "harness" / "data").mkdir(parents=True)
    (tmp_path / "run_bench.py").write_text("print(1)\n")
    (tmp_path / "harness" / "data" / "x.py").write_text("X = 1\n")
    before = code_sha256.__wrapped__(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")  # records are not code
    (tmp_path / "harness" / "data" / "x.pyc").write_bytes(b"\0")
    assert code_sha256.__wrapped__(tmp_path) == before
    (tmp_path / "harness" / "data" / "x.py").write_text("X = 2\n")
    assert code_sha256.__wrapped__(tmp_path) != before


def test_required_methods_run_first_and_their_training_is_not_the_callers_fit_time(tmp_path):
    import tests.toy_methods  # noqa: F401
    from harness.records import RecordStore
    from harness.runner import RunPlan, run_benchmark

    summary = run_benchmark(RunPlan(dataset="synthetic", methods="toy-needs,toy-markov", out=tmp_path / "a", device="cpu"))
    assert [p.parent.name for p in summary.written] == ["toy-markov", "toy-needs"]  # reusable methods first
    alone = run_benchmark(RunPlan(dataset="synthetic", methods="toy-needs", out=tmp_path / "b", device="cpu"))
    assert [p.parent.name for p in alone.written] == ["toy-needs"]
    records = {r["method"]: r for r in RecordStore(tmp_path / "b").load_all()}
    assert records["toy-markov"]["status"] == "ok"  # trained (and recorded) on demand
    needs = records["toy-needs"]
    assert needs["required_seconds"] > 0 and needs["fit_seconds"] < needs["required_seconds"]


def test_a_required_method_whose_saved_model_is_gone_is_retrained_without_rewriting_its_record(tmp_path, caplog):
    """Records are committed, artifacts are not: a fresh clone must not rewrite a committed record."""
    import json
    import shutil
    from dataclasses import replace

    import tests.toy_methods  # noqa: F401
    from harness.runner import RunPlan, run_benchmark

    def plan(methods):
        return RunPlan(dataset="synthetic", methods=methods, out=tmp_path, device="cpu")

    run_benchmark(plan("toy-markov"))
    record = next((tmp_path / "runs" / "synthetic" / "toy-markov").glob("*.json"))
    committed = record.read_text()
    artifacts = tmp_path / "artifacts" / "synthetic" / "toy-markov"
    shutil.rmtree(artifacts)
    run_benchmark(plan("toy-needs"))
    assert record.read_text() == committed  # same test metrics: the record is kept byte for byte
    assert (artifacts / record.stem / "COMPLETE").exists()  # and the saved model is back

    changed = json.loads(committed)  # as if training had been nondeterministic: the record said otherwise
    next(iter(changed["metrics"]["test"].values()))["HR@1"] = 0.0
    record.write_text(json.dumps(changed))
    shutil.rmtree(artifacts)
    shutil.rmtree(tmp_path / "runs" / "synthetic" / "toy-needs")
    with caplog.at_level("WARNING"):
        run_benchmark(plan("toy-needs"))
    rewritten = json.loads(record.read_text())
    assert rewritten["metrics"] == json.loads(committed)["metrics"]  # the model now saved is what it describes
    assert "record replaced" in caplog.text
    mode = next(iter(changed["metrics"]["test"]))  # the warning names the metric that moved, old and new
    new_hr1 = json.loads(committed)["metrics"]["test"][mode]["HR@1"]
    assert f"metrics differ from the record's (test {mode} HR@1 {new_hr1}, recorded 0.0)" in caplog.text

    # A side script (bench/) retraining the same model warns and leaves the committed record alone.
    record.write_text(json.dumps(changed))
    shutil.rmtree(artifacts)
    shutil.rmtree(tmp_path / "runs" / "synthetic" / "toy-needs")
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_benchmark(replace(plan("toy-needs"), replace_records=False))
    assert json.loads(record.read_text()) == changed
    assert "record left as it is" in caplog.text and "record replaced" not in caplog.text
