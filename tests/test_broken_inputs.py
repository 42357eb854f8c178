"""Every broken input gets a one-line error naming what is wrong, exit 2, and writes nothing."""

import json
from pathlib import Path

import pytest

import run_bench

CORPUS = Path(__file__).parent / "broken_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.json").exists())


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", CASES)
def test_broken_input(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = json.loads((CORPUS / name / "case.json").read_text())
    args = [a.replace("{dir}", str(CORPUS / name)) for a in case["args"]]
    if "--methods" not in args:
        args += ["--methods", "pop"]
    out = tmp_path / "results"
    try:
        code = run_bench.main(["run", *args, "--out", str(out)])
    except SystemExit as e:  # argparse's own exit
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    assert case["expect"] in err, err
    if "{dir}" in " ".join(case["args"]):
        assert str(CORPUS / name) in err, err  # names the file (or folder) at fault
    assert not (out / "runs").exists() and not (out / "leaderboard.md").exists()
    assert list(tmp_path.iterdir()) in ([], [out]) and not list(out.glob("candidates/*.tsv"))
