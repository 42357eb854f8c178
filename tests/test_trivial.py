from pathlib import Path

from harness.runner import RunPlan, run_benchmark
from harness.records import RecordStore


def test_pop_beats_random_on_ml100k(tmp_path: Path):
    run_benchmark(RunPlan(dataset="ml-100k", methods="random,pop", seeds=[0, 1], out=tmp_path, device="cpu"))
    hr = {}
    for r in RecordStore(tmp_path).load_all():
        hr.setdefault(r["method"], []).append(r["metrics"]["test"]["rank"]["HR@1"])
    assert sum(hr["pop"]) / 2 > 2 * sum(hr["random"]) / 2
    assert sum(hr["pop"]) / 2 > 0.1


def test_registry_lists_methods():
    from methods.base import METHODS

    assert {"random", "pop"} <= set(METHODS.names())
