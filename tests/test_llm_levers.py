"""bench/llm_levers.py's diagnostics must measure what they say: the train probe scores the very
windows (and candidates) the model trained on, a saved adapter reloads to the same test HR@1, and
the bench-only knobs (curriculum, schedule) really reach training. Tiny LLaMA, synthetic data."""

from __future__ import annotations

import pytest

from tests.conftest import load_bench_script

TINY = {"train_samples": 12, "epochs": 1, "batch_size": 4, "grad_accum": 1, "max_new_tokens": 6, "score_batch": 6}


@pytest.fixture()
def levers(tiny_llm, monkeypatch):
    module = load_bench_script("llm_levers")
    monkeypatch.setattr(module, "SETTINGS", {
        "tiny-llara": ("llara", {"llm": str(tiny_llm), **TINY, "curriculum": False}, "no curriculum"),
    })
    monkeypatch.setattr(module, "TRAIN_PROBE", 5)
    return module


def test_train_probe_reload_and_knobs(levers, tmp_path, monkeypatch):
    from harness.runner import RunPlan, Session
    from methods.llm.training import training_items

    session = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu"))
    split, cands = session.prepare(0)
    row = levers.run_setting(session, "tiny-llara", 0)
    assert 0 <= row["train_hr1"] <= 1 and row["steps"] == 3
    assert len(row["test_hits"]) == len(cands.test.targets) and row["test_hits"].count("1") / len(row["test_hits"]) == row["test_hr1"]
    # An older row's hits come back from its saved adapter; a wrong recorded HR@1 means a foreign adapter.
    folder = tmp_path / "work" / "levers" / "tiny-llara" / "adapter"
    assert len(row["test_top1"].split()) == len(cands.test.targets)
    older = {k: v for k, v in row.items() if k not in ("test_hits", "test_top1")}
    assert levers.saved_hits(session, older, folder) == {"test_hits": row["test_hits"], "test_top1": row["test_top1"]}
    with pytest.raises(levers.UserError, match="not the recorded"):
        levers.saved_hits(session, {**row, "test_hr1": row["test_hr1"] + 0.5}, folder)

    params = {"train_samples": TINY["train_samples"]}
    probe = levers.train_probe(split.train, cands.test, params, 0, session)
    items = training_items(split.train, session.data.n_items, cands.test.candidates.shape[1], 12, 0)[:5]
    assert probe.histories == [it.history for it in items]
    assert probe.candidates.tolist() == [list(it.candidates) for it in items]
    assert (probe.candidates[range(5), probe.target_index] == probe.targets).all()

    method_name, overrides, _ = levers.SETTINGS["tiny-llara"]
    again = levers.probe_saved(session, method_name, overrides, 0, tmp_path / "work" / "levers" / "tiny-llara" / "adapter")
    assert again == {"train_hr1": row["train_hr1"], "test_hr1_reloaded": row["test_hr1"]}

    # The bench-only curriculum knob (same session: SASRec is trained once).
    method, params = levers.build(session, method_name, overrides, 0, tmp_path / "m")
    assert "curriculum" not in params  # not a method parameter: record hashes stay as they were
    method.fit(split.train, cands.valid)
    assert method.record_extra()["hybrid_steps"] == "hhh"  # with the curriculum the first step is always text-only

    # The schedule knobs reach the training loop, and are not method parameters either.
    import methods.llm.training as training

    seen = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda rec, items, cfg, *a, **kw: seen.append(cfg) or real_train(rec, items, cfg, *a, **kw))
    method, params = levers.build(session, method_name, {**overrides, "final_lr_fraction": 1.0, "warmup_fraction": 0.2},
                                  0, tmp_path / "m2")
    method.fit(split.train, cands.valid)
    assert "final_lr_fraction" not in params and "warmup_fraction" not in params
    assert (seen[0].final_lr_fraction, seen[0].warmup_fraction) == (1.0, 0.2)

    # The item-token scale knob is set on the recommender (the tiny Llama's embedding does not scale).
    method, params = levers.build(session, method_name, {**overrides, "projector_scale": "embedding"}, 0, tmp_path / "m3")
    assert "projector_scale" not in params
    assert method.recommender().item_scale == pytest.approx(1.0) and method.record_extra()["item_scale"] == pytest.approx(1.0)

    # The history-only prompt (a method parameter since session 22, an ablation) reaches every prompt it builds.
    method, params = levers.build(session, method_name, {**overrides, "prompt": "history-only"}, 0, tmp_path / "m4")
    assert params["prompt"] == "history-only"
    rec = method.recommender()
    short = rec.encode(split.train[0].history, cands.test.candidates[0], False, 1)
    rec.list_candidates = True
    assert len(short.ids) < len(rec.encode(split.train[0].history, cands.test.candidates[0], False, 1).ids)
    assert method.record_extra()["prompt"] == "history-only"


def test_a_zero_shot_row_has_no_train_probe(levers, tmp_path, tiny_llm, monkeypatch):
    from harness.runner import RunPlan, Session

    monkeypatch.setitem(levers.SETTINGS, "tiny-zeroshot", ("llm-zeroshot", {"llm": str(tiny_llm), "score_batch": 6}, ""))
    row = levers.run_setting(Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu")), "tiny-zeroshot", 0)
    assert "train_hr1" not in row and 0 <= row["test_hr1"] <= 1


def test_paired_columns_compare_with_pop_and_the_same_prompts_zero_shot(levers):
    zero = {"setting": "z", "method": "llm-zeroshot", "overrides": {"prompt": "history-only"}, "seed": 0, "test_hits": "0" * 20}
    other = {"setting": "z2", "method": "llm-zeroshot", "overrides": {}, "seed": 0, "test_hits": "1" * 20}
    trained = {"setting": "t", "method": "llara", "overrides": {"prompt": "history-only"}, "seed": 0,
               "test_hits": "1" * 12 + "0" * 8}
    old = {"setting": "o", "method": "llara", "overrides": {}, "seed": 0}  # from before the column: no hits, no p
    out = levers.paired_columns([zero, other, trained, old], pop_hits="0" * 4 + "1" * 16)
    assert out["t"]["p_vs_zeroshot"] < 0.01 < out["t"]["p_vs_pop"]  # paired with z (same prompt), not z2
    assert "p_vs_zeroshot" not in out["z"] and "o" not in out and out["z2"]["p_vs_pop"] < 0.05

    # --pair A B: one row against another (iLoRA against LoRA at one setting); a row without hits is refused.
    (line,) = levers.pair_lines([zero, trained, old], [["t", "z"]], [0])
    assert line.startswith("t vs z: test HR@1 0.600 vs 0.000 (12 vs 0 of 20 users; 12 hit only by the first, 0 only")
    assert float(line.rsplit("p ", 1)[1].split(",")[0]) < 0.01
    with pytest.raises(levers.UserError, match="--pair: o has no test hits"):
        levers.pair_lines([zero, trained, old], [["t", "o"]], [0])
    with pytest.raises(levers.UserError, match="not the same test set"):
        levers.pair_lines([zero, {**trained, "test_hits": "1"}], [["t", "z"]], [0])
    # With --seeds, each seed's users pair with themselves and the seeds pool; a missing seed is named.
    seed1 = [{**zero, "seed": 1, "test_hits": "1" * 4}, {**trained, "seed": 1, "test_hits": "0" * 4}]
    (line,) = levers.pair_lines([zero, trained, *seed1], [["t", "z"]], [0, 1])
    assert line.startswith("t (seeds 0, 1) vs z: test HR@1 0.500 vs 0.167 (12 vs 4 of 24 users; 12 hit only by the first, 4")
    with pytest.raises(levers.UserError, match="--pair: t has no test hits for seed 2"):
        levers.pair_lines([zero, trained, *seed1], [["t", "z"]], [0, 2])


def test_pop_agreement_splits_hits_by_whether_the_first_choice_is_pops(levers):
    pop = {"test_top1": "0 1 2 3"}
    row = {"test_top1": "0 1 5 6", "test_hits": "1001"}  # agrees on two samples; of the other two, one hit
    assert levers.pop_agreement(row, pop) == {"pops_pick": 0.5, "hr1_off_pops_pick": 0.5}
    assert levers.pop_agreement({**row, "test_top1": "0 1 2 3"}, pop) == {"pops_pick": 1.0, "hr1_off_pops_pick": None}
    assert levers.pop_agreement({"test_hits": "1001"}, pop) == {}  # a row from before the column


def test_pooled_lines_pair_a_setting_with_pop_and_its_zero_shot_over_seeds(levers, monkeypatch):
    monkeypatch.setitem(levers.SETTINGS, "t", ("llara", {"prompt": "history-only"}, ""))

    def row(setting, method, seed, hits, prompt="history-only"):
        return {"setting": setting, "method": method, "overrides": {"prompt": prompt}, "seed": seed, "test_hits": hits}

    done = [row("t", "llara", 0, "1100"), row("t", "llara", 1, "1110"), row("z", "llm-zeroshot", 0, "0000"),
            row("z", "llm-zeroshot", 1, "0001"), row("z-paper", "llm-zeroshot", 1, "1111", prompt="paper")]
    pop_line, zero_line = levers.pooled_lines(done, ["t"], [0, 1], {0: "1000", 1: "0110"})
    # seed 0's four users, then seed 1's: 5 of 8 against pop's 3 and the same prompt's zero-shot's 1
    assert pop_line.startswith("t (seeds 0, 1) vs pop: test HR@1 0.625 vs 0.375 (5 vs 3 of 8 users; 2 hit only by the")
    assert zero_line.startswith("t (seeds 0, 1) vs its untrained backbone: test HR@1 0.625 vs 0.125 (5 vs 1 of 8 users")
    with pytest.raises(levers.UserError, match="--pooled: no t with test hits for seed 2"):
        levers.pooled_lines(done, ["t"], [0, 2], {0: "1000", 2: "0000"})


def test_rescore_reproduces_the_record_and_refuses_a_foreign_adapter(tiny_llm, tmp_path):
    """bench/llm_rescore.py: the summed rule is the recorded one, rank for rank; an adapter that is not
    the record's (here: perturbed) stops it instead of reporting numbers about another model."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    from harness.errors import UserError
    from harness.runner import RunPlan, Session

    rescore = load_bench_script("llm_rescore")
    plan = RunPlan(dataset="synthetic", out=tmp_path, device="cpu", shared={"llm": str(tiny_llm)}, params={"tallrec": TINY})
    session = Session(plan)
    with pytest.raises(UserError, match="no run record"):
        rescore.rescore(session, "tallrec", 0)
    status, path = session.run("tallrec", 0)
    assert status == "ok"
    row = rescore.rescore(session, "tallrec", 0)
    recorded = json.loads(path.read_text())["metrics"]["test"]["likelihood"]["HR@1"]
    assert row["test_sum_hr1"] == recorded
    assert len(row["test_mean_hits"]) == len(row["test_sum_hits"]) and 0 <= row["valid_mean_hr1"] <= 1

    adapter = session.work_dir("tallrec", 0) / "adapter" / "adapter.safetensors"
    torch.manual_seed(0)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in load_file(str(adapter)).items()}, str(adapter))
    with pytest.raises(UserError, match="not the adapter that record scored"):
        rescore.rescore(session, "tallrec", 0)


def test_gate_columns_say_whether_the_mixture_differs_per_user(levers, tmp_path, tiny_llm, monkeypatch):
    import math

    import torch

    from harness.runner import RunPlan, Session

    even = levers.gate_columns([[0.25] * 4] * 3)
    assert even["gate_entropy"] == pytest.approx(math.log(4), abs=1e-4) and even["gate_mi"] == pytest.approx(0, abs=1e-4)
    same = levers.gate_columns([[1, 0], [1, 0]])  # one expert, the same for every user
    assert same["gate_entropy"] == pytest.approx(0, abs=1e-4) and same["gate_mi"] == pytest.approx(0, abs=1e-4)
    split = levers.gate_columns([[1, 0], [0, 1]])  # each user its own expert
    assert split["gate_mi"] == pytest.approx(math.log(2), abs=1e-4)
    assert levers.gate_columns(None) == {}

    monkeypatch.setitem(levers.SETTINGS, "tiny-ilora", ("ilora", {"llm": str(tiny_llm), **TINY, "experts": 2}, ""))
    session = Session(RunPlan(dataset="synthetic", out=tmp_path, device="cpu"))
    row = levers.run_setting(session, "tiny-ilora", 0)
    assert 0 <= row["gate_entropy"] <= math.log(2) + 1e-4 and -1e-4 <= row["gate_mi"] <= math.log(2) - row["gate_entropy"] + 1e-4
    assert 0 <= row["gate_mi_init"] <= math.log(2)
    assert not levers.lacks_outcomes(row) and levers.lacks_outcomes({k: v for k, v in row.items() if k != "gate_mi_init"})
    again = levers.saved_hits(session, row, tmp_path / "work" / "levers" / "tiny-ilora" / "adapter")
    assert again == {k: row[k] for k in ("test_hits", "test_top1", "gate_entropy", "gate_mi", "gate_mi_init")}
    # gate_mi_init means something because the seed fixes the router's initialisation (two untrained
    # builds agree), and training moved the router away from it.
    overrides = levers.SETTINGS["tiny-ilora"][1]
    u1, u2 = (levers.build(session, "ilora", overrides, 0, tmp_path / d)[0] for d in ("u1", "u2"))
    trained, _ = levers.reloaded(session, "ilora", overrides, 0, tmp_path / "work" / "levers" / "tiny-ilora" / "adapter")
    w1, w2, w = (m.recommender().extra["router"].linear.weight for m in (u1, u2, trained))
    assert torch.equal(w1, w2) and not torch.equal(w1, w)


def test_another_seed_keeps_its_own_adapter(levers, tmp_path):
    """A second seed must not overwrite the adapter that `--hits` rescores for seed 0's row."""
    from harness.runner import RunPlan, Session

    session = Session(RunPlan(dataset="synthetic", out=tmp_path, seeds=[1], device="cpu"))
    row = levers.run_setting(session, "tiny-llara", 1)
    assert row["seed"] == 1
    assert (tmp_path / "work" / "levers" / "tiny-llara-seed1" / "adapter").is_dir()
    assert not (tmp_path / "work" / "levers" / "tiny-llara").exists()
    assert levers.work_dir(tmp_path, "tiny-llara", 0) == tmp_path / "work" / "levers" / "tiny-llara"
