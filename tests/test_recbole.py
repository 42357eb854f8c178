"""GRU4Rec, Caser and SASRec through RecBole, on the synthetic data set (planted next-item rule).

The three models are trained once per test module, in a working folder of their own, through the
runner (as `run_bench.py` does); the tests below read that run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.evaluate import ranks_from_scores
from harness.records import RecordStore
from harness.runner import RunPlan, Session, run_benchmark

MODELS = ("gru4rec", "caser", "sasrec")
# Short training for tests: a higher learning rate than the ml-100k defaults, a few epochs.
FAST = {"learning_rate": 0.01, "train_batch_size": 128, "epochs": 4, "stopping_step": 4}


def plan(out: Path, **kw) -> RunPlan:
    return RunPlan(dataset="synthetic", methods="pop," + ",".join(MODELS), seeds=[0], out=out, device="cpu",
                   params={m: dict(FAST) for m in MODELS}, **kw)


def recorded_ranks(record: dict) -> list[int]:
    lines = Path(record["_path"]).with_suffix(".samples.jsonl").read_text().splitlines()
    return [json.loads(line)["rank"]["rank"] for line in lines]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train pop and the three models with the current folder set to an empty one."""
    out = tmp_path_factory.mktemp("out")
    cwd = tmp_path_factory.mktemp("cwd")
    before = os.getcwd()
    os.chdir(cwd)
    try:
        summary = run_benchmark(plan(out))
        session = Session(plan(out))
        methods = {m: session.require(m, 0) for m in MODELS}  # loaded from the saved artifacts
    finally:
        os.chdir(before)
    assert not summary.failed, [json.loads(p.read_text())["error"] for p in summary.failed]
    records = {r["method"]: r for r in RecordStore(out).load_all()}
    return {"out": out, "cwd": cwd, "session": session, "methods": methods, "records": records}


def test_each_model_beats_pop_on_synthetic(trained):
    hr = {m: r["metrics"]["test"]["rank"]["HR@1"] for m, r in trained["records"].items()}
    for m in MODELS:
        assert hr[m] > hr["pop"] + 0.2, hr


def test_records_hold_full_ranking_and_validation_curve(trained):
    for m in MODELS:
        r = trained["records"][m]
        assert set(r["metrics"]["test"]["full"]) == {"HR@10", "NDCG@10"}
        extra = r["extra"]
        assert 0 <= extra["best_epoch"] < extra["epochs_trained"] == len(extra["valid_curve"]) <= FAST["epochs"]
        assert extra["user_ids"] == "shared"  # split llara: held-out users are new
        assert r["trainable_parameters"] > 0


def test_nothing_written_to_the_working_folder(trained):
    assert list(trained["cwd"].iterdir()) == []
    work = trained["out"] / "work" / "synthetic" / "sasrec" / "seed0"
    assert {p.name for p in work.iterdir()} >= {"recbole", "log_tensorboard", "saved"}


@pytest.mark.parametrize("name", MODELS)
def test_encode_times_item_embeddings_gives_the_scores(trained, name):
    method = trained["methods"][name]
    test = trained["session"].prepare(0)[1].test
    via_embeddings = (method.encode(test.histories) @ method.item_embeddings().T).double().numpy()
    scores = method.score_all(test)
    assert via_embeddings.shape == scores.shape == (len(test), trained["session"].data.n_items)
    np.testing.assert_allclose(via_embeddings, scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(method.score(test), np.take_along_axis(scores, test.candidates, axis=1))


@pytest.mark.parametrize("name", MODELS)
def test_reused_model_is_loaded_not_retrained_and_scores_identically(trained, name):
    import torch

    record = trained["records"][name]
    folder = Path(record["artifacts"])
    weights = torch.load(folder / "model.pt", weights_only=True)
    assert weights and all(isinstance(v, torch.Tensor) for v in weights.values())
    # the record on disk is the first run's: require() loaded the artifacts instead of training again
    assert json.loads(Path(record["_path"]).read_text())["started_at"] == record["started_at"]
    method = trained["methods"][name]
    test = trained["session"].prepare(0)[1].test
    ranks = ranks_from_scores(method.score(test), test.target_index)
    assert ranks.tolist() == recorded_ranks(record)


def test_seeded_run_repeats_exactly(trained, tmp_path):
    session = Session(plan(tmp_path))
    session.run("sasrec", 0)
    again = session.require("sasrec", 0)  # the in-memory model of this new run
    first = trained["methods"]["sasrec"]
    test = session.prepare(0)[1].test
    np.testing.assert_array_equal(again.score_all(test), first.score_all(test))
    strip = lambda curve: [{k: v for k, v in c.items() if k != "seconds"} for c in curve]  # noqa: E731
    assert strip(again.curve) == strip(first.curve)
    ranks = ranks_from_scores(again.score(test), test.target_index)
    assert ranks.tolist() == recorded_ranks(trained["records"]["sasrec"])


def test_validation_reports_every_epoch_and_pruning_propagates(trained, tmp_path):
    from methods.base import METHODS

    class Pruned(Exception):
        pass

    seen = []

    def report(epoch: int, value: float) -> None:
        seen.append((epoch, value))
        if epoch == 1:
            raise Pruned

    session = trained["session"]
    split, cands = session.prepare(0)
    ctx = session.context("gru4rec", 0, tmp_path / "work", report=report)
    method = METHODS.get("gru4rec").obj(ctx, **{**session.params_for("gru4rec"), **FAST})
    with pytest.raises(Pruned):
        method.fit(split.train, cands.valid)
    assert [e for e, _ in seen] == [0, 1] and all(0 <= v <= 1 for _, v in seen)


def test_recbole_config_ignores_argv_and_keeps_cuda_visible_devices(monkeypatch, tmp_path):
    import torch

    from harness import compat

    compat.import_recbole()
    assert not torch.is_anomaly_enabled()  # RecBole's sine.py switches it on at import
    from recbole.model.sequential_recommender import SASRec

    monkeypatch.setattr("sys.argv", ["run_bench.py", "--learning_rate=0.5", "--epochs=1"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    settings = {"data_path": str(tmp_path), "train_neg_sample_args": None, "gpu_id": ""}
    config = compat.make_config(SASRec, "windows", settings)
    assert config["learning_rate"] == 0.001 and config["epochs"] != 1
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def fit_directly(name: str, data, split_spec, tmp_path: Path, edit_train=None, edit_valid=None):
    """One epoch of `name` on a split of `data`, without the runner; returns (method, test set)."""
    from harness.protocol import CandidateSpec, freeze_candidates, make_split
    from methods.base import METHODS, RunContext

    split = make_split(data, split_spec, 0)
    cands = freeze_candidates(data, split, split_spec, CandidateSpec(), 0, tmp_path / "candidates")
    ctx = RunContext(seed=0, device="cpu", work_dir=tmp_path / "work", n_items=data.n_items, titles=data.titles,
                     dataset=data.name)
    cls = METHODS.get(name).obj
    method = cls(ctx, **{**cls.defaults, **FAST, "epochs": 1})
    train, valid = split.train, cands.valid
    method.fit(edit_train(train) if edit_train else train, edit_valid(valid) if edit_valid else valid)
    return method, cands.test


def test_published_split_user_ids_and_windows_without_history(synthetic, tmp_path):
    """Published splits (LLaRA's LastFM) come as windows with user -1, some with an empty history."""
    from dataclasses import replace

    from harness.data import Sample
    from harness.protocol import SplitSpec

    def as_published(train):
        return [Sample(-1, s.history, s.target) for s in train] + [Sample(-1, (), s.target) for s in train[:50]]

    method, test = fit_directly(
        "gru4rec", synthetic, SplitSpec("llara"), tmp_path, as_published,
        lambda valid: replace(valid, users=np.full(len(valid), -1)),
    )
    extra = method.record_extra()
    assert extra["dropped_empty_history_windows"] == 50 and extra["user_ids"] == "shared"
    empty = replace(test, histories=[()] * len(test))
    assert np.isfinite(method.score(empty)).all()  # an empty history is encoded as one padding item


def test_caser_uses_user_ids_when_held_out_users_have_training_windows(synthetic, tmp_path):
    from harness.protocol import SplitSpec

    method, test = fit_directly("caser", synthetic, SplitSpec("loo"), tmp_path)
    assert method.record_extra()["user_ids"] == "per user"
    via_embeddings = (method.encode(test.histories, test.users) @ method.item_embeddings().T).double().numpy()
    np.testing.assert_allclose(via_embeddings, method.score_all(test), rtol=1e-5, atol=1e-5)
