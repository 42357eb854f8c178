"""The prepared GPU script must fail clearly on a machine that lacks what it needs, and its whole
path (sizing, records, leaderboard) must run; here on CPU with a tiny model and synthetic data."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_protocol.py"), *args], capture_output=True, text=True)


def test_gpu_protocol_without_cuda_is_one_line_error():
    out = run_script("--dataset", "synthetic")
    assert out.returncode == 2
    assert out.stderr.strip() == "gpu_protocol: error: no CUDA device visible (torch.cuda.is_available() is False)"


def test_gpu_protocol_missing_model_or_wheels_is_one_line_error(tmp_path):
    out = run_script("--device", "cpu", "--llm", str(tmp_path / "no-model"), "--dataset", "synthetic")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no-model" in out.stderr and "config.json" in out.stderr
    out = run_script("--wheels", str(tmp_path))
    assert out.returncode == 2 and f"--wheels {tmp_path}: no .whl files there" in out.stderr


def test_gpu_protocol_runs_end_to_end_on_cpu_with_a_tiny_model(tiny_llm, tmp_path):
    out = run_script("--device", "cpu", "--llm", str(tiny_llm), "--dataset", "synthetic", "--minutes", "0.05",
                     "--epochs", "1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ms per training window" in out.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "synthetic").glob("*/*.json")]
    assert sorted(r["method"] for r in records) == ["ilora", "llara", "sasrec", "tallrec"]
    for r in records:
        assert r["status"] == "ok"
        if r["method"] != "sasrec":
            assert r["params"]["profile"] == "paper" and r["params"]["batch_size"] * r["params"]["grad_accum"] == 128
            assert len(r["position"]["orders"]) == 3
    assert (tmp_path / "leaderboard.md").exists()
