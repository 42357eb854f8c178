"""The LLM methods end to end through the Method interface (tiny LLaMA, synthetic data), and one
short check on the real default backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llm_tiny import FakeSASRec
from tests.conftest import kill_training_on_call

TINY_RUN = {"train_samples": 12, "epochs": 2, "batch_size": 4, "grad_accum": 2, "max_new_tokens": 6, "score_batch": 5}


def _session(tmp_path: Path):
    from harness.runner import RunPlan, Session

    return Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu"))


def _method(name: str, session, tmp_path: Path, reports: list | None = None, **params):
    from methods.base import METHODS

    fake = FakeSASRec(session.data.n_items)
    ctx = session.context(name, 0, tmp_path / name)
    ctx.require = lambda other: fake if other == "sasrec" else pytest.fail(f"unexpected require({other!r})")
    if reports is not None:
        ctx.report = lambda epoch, value: reports.append((epoch, value))
    return METHODS.get(name).obj(ctx, **params)


@pytest.mark.parametrize("name,extra", [
    ("tallrec", {}),
    ("llara", {"validate": True}),
    ("ilora", {}),
    ("ilora", {"hybrid": False, "experts": 2, "gate_input": "token_mean"}),
])
def test_method_fits_and_answers_both_ways(tiny_llm, tmp_path, name, extra):
    from harness.runner import evaluate_method

    session = _session(tmp_path)
    split, cands = session.prepare(0)
    test = cands.test
    test_small = type(test)(test.part, test.users[:10], test.histories[:10], test.targets[:10], test.candidates[:10], test.seen[:10])
    reports: list = []
    method = _method(name, session, tmp_path, reports, llm=str(tiny_llm), **TINY_RUN, **extra)
    method.fit(split.train, cands.valid)
    metrics, rows = evaluate_method(method, test_small)
    assert set(metrics) == {"generate", "likelihood"}
    assert metrics["likelihood"]["ValidRatio"] == 1.0
    assert all("answer" in r for r in rows)
    record = method.record_extra()
    assert record["train_samples"] == 12 and record["train_steps"] == 4  # 12 / 4 = 3 micro-batches -> 2 steps x 2 epochs
    assert "llara_hr1" in record and (Path(record["adapter"]) / "adapter.safetensors").exists()
    # trained in one go: nothing resumed, and the training checkpoint is gone from the work folder
    assert record["resumed_at_step"] is None and not list(Path(record["adapter"]).parent.glob("train_checkpoint*"))
    assert method.trainable_parameters() > 0
    if method.design().hybrid:  # 4 steps: the first is always text-only (probability 0)
        assert len(record["hybrid_steps"]) == 4 and record["hybrid_steps"][0] == "t"
    if name == "ilora":
        gates = np.array(record["test_gates"])
        assert gates.shape == (10, extra.get("experts", 4)) and np.allclose(gates.sum(1), 1, atol=1e-4)
        if extra.get("gate_input", "sequence") == "sequence":  # the router before and after training, same users
            mi0, mi1 = record["valid_gate_mi_init"], record["valid_gate_mi"]
            assert 0 <= mi0 <= np.log(4) and 0 <= mi1 <= np.log(4) and mi0 != mi1
            assert mi1 == round(method.router_mi(cands.valid), 5)
        else:  # token_mean reads the prompt: no LLM-free measurement
            assert "valid_gate_mi_init" not in record
    if extra.get("validate"):
        assert [e for e, _ in reports] == [0, 1] and record["best_epoch"] in (0, 1)


def test_a_method_killed_in_training_resumes_in_the_next_run(tiny_llm, tmp_path, monkeypatch):
    """The run's work folder keeps the training checkpoint, so the method a rerun builds picks it up
    (methods.llm.training tests that the resumed steps are the uninterrupted ones)."""
    import methods.llm.training as training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)
    session = _session(tmp_path)
    split, cands = session.prepare(0)
    revive = kill_training_on_call(monkeypatch, 7)  # calls 1-2 time the estimate; steps are 2 + 1 micro-batches per epoch
    with pytest.raises(KeyboardInterrupt):
        _method("tallrec", session, tmp_path, llm=str(tiny_llm), **TINY_RUN).fit(split.train, cands.valid)
    revive()
    assert (tmp_path / "tallrec" / "train_checkpoint.pt").exists()
    again = _method("tallrec", session, tmp_path, llm=str(tiny_llm), **TINY_RUN)
    again.fit(split.train, cands.valid)
    record = again.record_extra()
    assert record["resumed_at_step"] == 2 and len(record["losses"]) == 4
    assert not (tmp_path / "tallrec" / "train_checkpoint.pt").exists()


def test_training_estimate_leaves_out_the_first_calls_warm_up(tiny_llm, tmp_path, monkeypatch, caplog):
    """The first forward + backward carries one-off costs (on Gemma it read ~60 min for a 31-min
    training), so the up-front estimate times a second micro-batch."""
    import logging

    import methods.llm.training as training

    calls: list[int] = []

    def fake_estimate(rec, items, batch_size, **kw):
        calls.append(batch_size)
        return 60.0 if len(calls) == 1 else 3.0

    monkeypatch.setattr(training, "estimate_step_seconds", fake_estimate)
    session = _session(tmp_path)
    split, cands = session.prepare(0)
    method = _method("tallrec", session, tmp_path, llm=str(tiny_llm), **TINY_RUN)
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        method.fit(split.train, cands.valid)
    assert calls == [4, 4]
    assert "one micro-batch takes ~3.0 s here, so ~0.3 min of training" in caplog.text  # 3 s x 6 micro-batches


def test_zeroshot_trains_nothing_and_profiles_resolve(tiny_llm, tmp_path):
    session = _session(tmp_path)
    method = _method("llm-zeroshot", session, tmp_path, llm=str(tiny_llm))
    assert method.trainable_parameters() == 0
    assert method.settings["max_new_tokens"] == 32  # the cpu profile
    paper = _method("tallrec", session, tmp_path, llm=str(tiny_llm), profile="paper", lr=1e-4)
    assert paper.settings["epochs"] == 5 and paper.settings["batch_size"] * paper.settings["grad_accum"] == 128
    assert paper.settings["lr"] == 1e-4  # an explicit value beats the profile


def test_unknown_profile_and_bad_gate_input_are_user_errors(tiny_llm, tmp_path):
    from harness.errors import UserError

    session = _session(tmp_path)
    with pytest.raises(UserError, match="profile"):
        _method("tallrec", session, tmp_path, profile="fast")
    with pytest.raises(UserError, match="gate_input"):
        _method("ilora", session, tmp_path, llm=str(tiny_llm), gate_input="user").design()


def test_history_loss_is_an_option_recorded_only_when_on(tiny_llm, tmp_path, monkeypatch):
    """Off, it is the papers' objective and the resolved parameters (hence every earlier record's hash)
    are what they were before the option; on, it is in the record and training labels the history titles."""
    import methods.llm.training as training
    from harness.errors import UserError
    from harness.runner import RunPlan, Session

    def params(**ilora):
        plan = RunPlan(dataset="synthetic", out=tmp_path, device="cpu", shared={"llm": str(tiny_llm)}, params={"ilora": ilora})
        return Session(plan).params_for("ilora")

    assert "history_loss" not in params() and "history_loss" not in params(history_loss=False)
    assert params(history_loss=True)["history_loss"] is True
    with pytest.raises(UserError, match="history_loss='yes' must be true or false"):
        params(history_loss="yes")
    from methods.base import METHODS
    from methods.llm.methods import CPU_COST

    ilora = METHODS.get("ilora").obj
    long_run = {**ilora.defaults, "profile": "cpu-long"}
    assert "loss on the history titles too" in ilora.plan(long_run | {"history_loss": True})
    assert "history titles" not in ilora.plan(long_run)
    scoring = CPU_COST["smollm2"][1]  # minutes; the training part of the estimate costs 1.4x with the option
    train_minutes = ilora.estimate_minutes(long_run) - scoring
    assert ilora.estimate_minutes(long_run | {"history_loss": True}) - scoring == pytest.approx(1.4 * train_minutes)
    seen: list[bool] = []
    real = training.answer_loss

    def spy(*args, history=False, **kw):
        seen.append(history)
        return real(*args, history=history, **kw)

    monkeypatch.setattr(training, "answer_loss", spy)
    session = _session(tmp_path)
    split, cands = session.prepare(0)
    for on in (False, True):
        seen.clear()
        _method("tallrec", session, tmp_path / str(on), llm=str(tiny_llm), **TINY_RUN, history_loss=on).fit(split.train, cands.valid)
        assert (True in seen) == on and seen[-1] == on  # the first call, timing a warm-up step, is always answer-only


def test_candidate_loss_is_an_option_recorded_only_when_on_and_not_with_history_loss(tiny_llm, tmp_path, monkeypatch):
    import methods.llm.training as training
    from harness.errors import UserError
    from harness.runner import RunPlan, Session
    from methods.base import METHODS

    def params(**llara):
        plan = RunPlan(dataset="synthetic", out=tmp_path, device="cpu", shared={"llm": str(tiny_llm)}, params={"llara": llara})
        return Session(plan).params_for("llara")

    assert "candidate_loss" not in params(candidate_loss=False) and params(candidate_loss=True)["candidate_loss"] is True
    with pytest.raises(UserError, match="history_loss and candidate_loss are separate ablations"):
        params(candidate_loss=True, history_loss=True)
    with pytest.raises(UserError, match="candidate_loss=1 must be true or false"):
        params(candidate_loss=1)
    from methods.llm.methods import CPU_COST

    llara = METHODS.get("llara").obj
    assert "listwise loss over the candidates too" in llara.plan({**llara.defaults, "candidate_loss": True})
    long_run = {**llara.defaults, "profile": "cpu-long"}
    train_minutes = llara.estimate_minutes(long_run) - CPU_COST["smollm2"][1]
    assert llara.estimate_minutes(long_run | {"candidate_loss": True}) - CPU_COST["smollm2"][1] == pytest.approx(1.6 * train_minutes)
    calls: list[int] = []
    real = training.candidate_loss
    monkeypatch.setattr(training, "candidate_loss", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    session = _session(tmp_path)
    split, cands = session.prepare(0)
    _method("llara", session, tmp_path / "on", llm=str(tiny_llm), **TINY_RUN, candidate_loss=True).fit(split.train, cands.valid)
    assert len(calls) > 1  # the timing step, then every training step


def test_training_items_are_deterministic_with_target_among_candidates(synthetic):
    from harness.protocol import SplitSpec, make_split
    from methods.llm.training import training_items

    train = make_split(synthetic, SplitSpec(), 0).train
    a = training_items(train, synthetic.n_items, 20, 50, seed=3)
    assert a == training_items(train, synthetic.n_items, 20, 50, seed=3)
    assert a != training_items(train, synthetic.n_items, 20, 50, seed=4)
    for it in a:
        assert len(set(it.candidates)) == 20 and it.target in it.candidates
        assert not set(it.history) & (set(it.candidates) - {it.target})


def test_curriculum_moves_from_text_to_hybrid_prompts():
    from methods.llm.training import hybrid_probability

    assert hybrid_probability(0, 100) == 0 and hybrid_probability(50, 100) == 0.5 and hybrid_probability(99, 100) < 1


def test_lr_schedule_warms_up_then_decays_to_a_hundredth():
    from methods.llm.training import lr_factor

    f = [lr_factor(s, 100, 0.05, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.2) and f[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[4:], f[5:])) and f[-1] == pytest.approx(0.01, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("llm, hidden", [("smollm2", 576), ("gemma3-270m", 640)])
def test_real_shipped_backbones_load_offline_and_train(tmp_path, monkeypatch, llm, hidden):
    """The shipped backbones from their wheels (converted once into the user cache); `make test`
    installs Gemma's chunk wheels too, so this runs in CI."""
    import torch

    from methods.llm.adapters import LoraSpec
    from methods.llm.recommender import Design, LLMRecommender
    from methods.llm.scoring import generate, likelihood
    from methods.llm.training import TrainConfig, TrainItem, train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    titles = ["Toy Story", "Heat", "Jumanji", "Casino", "Babe", "Se7en", "Clueless", "Balto"]
    rec = LLMRecommender(llm, "cpu", titles, "movie", Design(lora=LoraSpec()))
    assert rec.model.get_base_model().config.hidden_size == hidden
    items = [TrainItem((0, 1, 2), (3, 4, 5, 6), 4), TrainItem((1, 2, 3), (4, 5, 6, 7), 7)]
    before = {k: v.detach().clone() for k, v in rec.trainable().items()}
    losses = train(rec, items, TrainConfig(epochs=1, batch_size=2, grad_accum=1, lr=1e-3)).losses
    assert len(losses) == 1 and np.isfinite(losses[0])
    assert any(not torch.equal(before[k], v) for k, v in rec.trainable().items())
    scores, _ = likelihood(rec, [(0, 1, 2)], np.array([[3, 4, 5, 6]]), 1)
    assert np.isfinite(scores).all() and scores.shape == (1, 4)
    assert len(generate(rec, [(0, 1, 2)], np.array([[3, 4, 5, 6]]), 1, 4)) == 1


def test_plan_says_what_trains_and_roughly_how_long(caplog, tmp_path):
    import logging

    from harness.runner import RunPlan, run_benchmark
    from methods.base import METHODS
    from methods.llm.methods import CPU_COST

    tallrec, sasrec = METHODS.get("tallrec").obj, METHODS.get("sasrec").obj
    params = tallrec.resolve(dict(tallrec.defaults))
    per_window, scoring = CPU_COST["smollm2"]
    assert tallrec.estimate_minutes(params) == pytest.approx(160 * per_window / 60 + scoring)
    assert tallrec.estimate_minutes({**params, "train_samples": 0}) is None  # every window: no CPU estimate
    assert "160 sampled training windows x 1 epoch(s)" in tallrec.plan(params)
    assert "with smollm2" in tallrec.plan(params)
    # Each shipped backbone is estimated with its own measured cost; a local model has none.
    gemma = {**params, "llm": "gemma3-270m"}
    assert tallrec.estimate_minutes(gemma) == pytest.approx(160 * CPU_COST["gemma3-270m"][0] / 60 + CPU_COST["gemma3-270m"][1])
    assert "with gemma3-270m" in tallrec.plan(gemma)
    local = {**params, "llm": str(tmp_path)}
    assert tallrec.estimate_minutes(local) is None and "no CPU estimate" in tallrec.plan(local)
    assert "at most 20 epochs" in sasrec.plan(sasrec.resolve(dict(sasrec.defaults)))
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        run_benchmark(RunPlan(dataset="synthetic", methods="pop,random", seeds=[0, 1], out=tmp_path, device="cpu"))
    assert "plan: 4 run(s); roughly 0 min in all" in caplog.text


def test_a_missing_or_corrupt_shipped_backbone_is_a_one_line_error(monkeypatch, tmp_path):
    import sys
    import types

    from harness.errors import UserError
    from methods.llm import backbone

    monkeypatch.setenv("ILORA_BENCH_CACHE", str(tmp_path))
    find_spec = backbone.importlib.util.find_spec
    monkeypatch.setattr(backbone.importlib.util, "find_spec",
                        lambda name, *a: None if name == backbone.GEMMA_PACKAGE else find_spec(name, *a))
    with pytest.raises(UserError, match=r"^--llm gemma3-270m needs its wheel: make install-gemma"):
        backbone.resolve_llm("gemma3-270m")
    from methods.base import METHODS

    cls = METHODS.get("llara").obj  # checked before any run starts, not when the method fits
    with pytest.raises(UserError, match=r"^--llm gemma3-270m needs its wheel"):
        cls.resolve({**cls.defaults, "llm": "gemma3-270m"})

    def assemble(path):  # what the chunk package raises when the joined file's SHA-256 is wrong
        raise ValueError("Assembled file sha256 did not match expected value")

    fake = types.ModuleType(backbone.GEMMA_PACKAGE)
    fake.MODEL_NAME, fake.assemble = "gemma.gguf", assemble
    monkeypatch.setitem(sys.modules, backbone.GEMMA_PACKAGE, fake)
    monkeypatch.setattr(backbone, "package_dir", lambda name: tmp_path)
    with pytest.raises(UserError, match=r"^--llm gemma3-270m: its chunk wheels are incomplete or corrupt \(Assembled"):
        backbone.resolve_llm("gemma3-270m")
    assert list(tmp_path.iterdir()) == []  # no cached copy, no temp folder left behind


@pytest.mark.parametrize("cache", [False, True])
def test_cpu_bf16_training_sees_every_update(tiny_llm, tmp_path, monkeypatch, cache):
    """bench/llm_levers.py's cpu_bf16 knob trains under one bf16 autocast context. Its step losses must
    follow an fp32 training of the same windows; with autocast's weight cache on (the first version),
    every forward after the first step used stale bf16 copies of the LoRA weights (the losses repeat
    the untrained model's, 0.12 off fp32's by the third step), and they did not."""
    import torch

    if cache:  # the bug, put back: the context as it was before cache_enabled=False
        real = torch.autocast
        monkeypatch.setattr(torch, "autocast", lambda *a, cache_enabled=None, **kw: real(*a, **kw))
    session = _session(tmp_path)
    split, cands = session.prepare(0)
    run = {**TINY_RUN, "epochs": 3, "lr": 5e-3, "lora_dropout": 0.0}
    losses = {}
    for bf16 in (False, True):
        method = _method("tallrec", session, tmp_path / str(bf16), llm=str(tiny_llm), **run)
        method.settings["cpu_bf16"] = bf16  # the knob, as bench/llm_levers.py sets it
        method.fit(split.train, cands.valid)
        losses[bf16] = np.array(method.record_extra()["losses"])
        assert ("train_autocast" in method.record_extra()) == bf16
    assert len(losses[True]) == 6  # 3 epochs of 2 optimiser steps
    gap = np.abs(losses[True] - losses[False]).max()
    assert (gap > 0.05) if cache else (gap < 0.05), (losses, gap)
