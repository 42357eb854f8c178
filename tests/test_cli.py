import json
import subprocess
import sys

from tests.conftest import ROOT


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "run_bench.py"), *args], capture_output=True, text=True, cwd=cwd)


def test_list_does_not_import_torch():
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv=['run_bench.py','--list']; import run_bench;"
        "run_bench.main(['--list']); assert 'torch' not in sys.modules and 'recbole' not in sys.modules, 'heavy import'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pop" in out.stdout and "ml-100k" in out.stdout


def test_unknown_method_is_one_line_error(tmp_path):
    out = run_cli("--methods", "pop,rando", "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "unknown method 'rando' (did you mean 'random'?)" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_set_option(tmp_path):
    out = run_cli("--methods", "pop", "--set", "pop.nope=1", "--out", str(tmp_path))
    assert out.returncode == 2 and "no parameter 'nope'" in out.stderr


def test_run_records_resume_and_leaderboard(tmp_path):
    args = ("--methods", "random,pop", "--dataset", "synthetic", "--seeds", "0", "1", "--out", str(tmp_path))
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    records = sorted((tmp_path / "runs" / "synthetic").glob("*/*.json"))
    assert len(records) == 4
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "ok" and len(rec["candidates"]["sha256"]) == 64
    assert rec["versions"]["numpy"] and rec["command"].startswith("python")
    samples = records[0].with_suffix(".samples.jsonl").read_text().splitlines()
    assert len(samples) == rec["split"]["test"]
    board = (tmp_path / "leaderboard.md").read_text()
    assert "| pop" in board and "| random" in board
    mtimes = [p.stat().st_mtime_ns for p in records]

    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0
    assert "0 run(s) written, 4 skipped" in second.stdout
    assert [p.stat().st_mtime_ns for p in records] == mtimes
    assert (tmp_path / "leaderboard.md").read_text() == board  # rebuilt, byte-identical

    third = run_cli(*args, "--force", cwd=tmp_path)
    assert "4 run(s) written" in third.stdout
    board = (tmp_path / "leaderboard.md").read_text()
    assert "--force" in board  # the records now name the command that rewrote them
    rebuilt = run_cli("leaderboard", "--out", str(tmp_path))
    assert rebuilt.returncode == 0 and (tmp_path / "leaderboard.md").read_text() == board
    # nothing third-party leaked into the working folder
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["candidates", "leaderboard.md", "plots", "runs"]


def test_threads_option_sets_torch_threads_and_is_recorded(tmp_path):
    out = run_cli("--methods", "pop", "--dataset", "synthetic", "--threads", "1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "synthetic").glob("pop/*.json")]
    assert record["hardware"]["torch_threads"] == 1
    bad = run_cli("--methods", "pop", "--threads", "-1", "--out", str(tmp_path))
    assert bad.returncode == 2 and "expected a non-negative integer, got -1" in bad.stderr


def test_profile_option_reaches_llm_methods_and_set_wins(tmp_path):
    from harness.runner import RunPlan, Session

    session = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu", shared={"profile": "cpu-long"},
                              params={"llara": {"profile": "paper"}}))
    assert session.params_for("tallrec")["profile"] == "cpu-long"
    assert session.params_for("tallrec")["train_samples"] == 1600  # the profile's values are filled in
    assert session.params_for("llara")["profile"] == "paper"  # --set METHOD.profile wins
    assert "profile" not in session.params_for("sasrec")
    out = run_cli("--methods", "pop", "--dataset", "synthetic", "--profile", "paper", "--out", str(tmp_path))
    assert out.returncode == 2 and "none of --methods pop takes a profile" in out.stderr
    out = run_cli("--methods", "tallrec", "--dataset", "synthetic", "--profile", "fast", "--out", str(tmp_path))
    assert out.returncode == 2 and "unknown LLM profile 'fast'; known: cpu, cpu-long, paper" in out.stderr


def test_llm_option_takes_a_local_model_folder_and_names_a_bad_one(tiny_llm, tmp_path):
    from harness.runner import RunPlan, Session

    session = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu", shared={"llm": str(tiny_llm)}))
    assert session.params_for("ilora")["llm"] == str(tiny_llm) and session.params_for("llm-zeroshot")["llm"] == str(tiny_llm)
    out = run_cli("--methods", "tallrec", "--dataset", "synthetic", "--llm", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert f"llm='{tmp_path / 'nope'}' is not one of smollm2, gemma3-270m and not a local Hugging Face model folder" in out.stderr


def test_prompt_and_history_loss_options_are_labelled_ablations_that_leave_paper_hashes_alone(tmp_path):
    from harness.records import config_hash
    from harness.runner import RunPlan, Session

    paper = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu", shared={"prompt": "paper"}))
    default = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu"))
    for name in ("tallrec", "llm-zeroshot"):  # the papers' prompt is recorded as before the option existed
        assert "prompt" not in paper.params_for(name)
        assert config_hash(paper.params_for(name)) == config_hash(default.params_for(name))
    ablation = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu",
                               shared={"prompt": "history-only", "history_loss": True}))
    assert ablation.params_for("ilora")["prompt"] == "history-only" and ablation.params_for("ilora")["history_loss"] is True
    assert ablation.params_for("llm-zeroshot")["prompt"] == "history-only"
    assert "history_loss" not in ablation.params_for("llm-zeroshot")  # it does not train
    out = run_cli("--methods", "tallrec", "--dataset", "synthetic", "--set", "tallrec.prompt=short", "--out", str(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "tallrec: prompt='short'; known: paper, history-only" in out.stderr
    out = run_cli("--methods", "pop", "--dataset", "synthetic", "--history-loss", "--out", str(tmp_path))
    assert out.returncode == 2 and "none of --methods pop takes a history_loss" in out.stderr
    out = run_cli("--methods", "tallrec", "--dataset", "synthetic", "--prompt", "short", "--out", str(tmp_path))
    assert out.returncode == 2 and "invalid choice: 'short'" in out.stderr
