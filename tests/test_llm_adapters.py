"""iLoRA's gated experts, LLaRA's projector and the shared scoring paths, on a tiny random LLaMA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import kill_training_on_call
from llm_tiny import TITLES, FakeSASRec

N_ITEMS = len(TITLES)


def _rec(tiny_llm: Path, experts: int = 0, hybrid: bool = False, gate_input: str = "sequence", lora: bool = True, seed: int = 0):
    from methods.llm.adapters import LoraSpec
    from methods.llm.recommender import Design, LLMRecommender

    design = Design(lora=LoraSpec(experts=experts) if lora else None, hybrid=hybrid, gate_input=gate_input)
    return LLMRecommender(str(tiny_llm), "cpu", TITLES, "movie", design, FakeSASRec(N_ITEMS), seed=seed)


def _perturb_b(rec, seed: int = 1) -> None:
    """LoRA's B starts at zero (adapter = identity); give it values so adapters matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in rec.trainable().items():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _samples(n: int = 4, c: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    hist = [tuple(rng.choice(N_ITEMS, 5, replace=False).tolist()) for _ in range(n)]
    cands = np.stack([rng.choice(N_ITEMS, c, replace=False) for _ in range(n)])
    return hist, cands


def test_one_expert_is_plain_lora_exactly(tiny_llm):
    from methods.llm.scoring import likelihood

    lora, moe = _rec(tiny_llm, experts=0), _rec(tiny_llm, experts=1)
    _perturb_b(lora)
    lora_params = {k: v for k, v in lora.trainable().items()}
    with torch.no_grad():
        for k, p in moe.trainable().items():
            if not k.startswith("extra.router"):
                p.copy_(lora_params[k])
    hist, cands = _samples()
    a, _ = likelihood(lora, hist, cands, 2)
    b, gates = likelihood(moe, hist, cands, 2)
    assert np.array_equal(gates, np.ones_like(gates))
    np.testing.assert_array_equal(a, b)
    assert moe.trainable_count() - lora.trainable_count() == sum(p.numel() for p in moe.extra.parameters())


@pytest.mark.parametrize("experts", [0, 4])
def test_attaching_lora_shows_no_peft_deprecation_warning(tiny_llm, experts):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _rec(tiny_llm, experts=experts)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_uniform_gate_equals_lora_and_parameters_match(tiny_llm):
    lora, moe = _rec(tiny_llm, experts=0), _rec(tiny_llm, experts=4)
    lora_n = sum(p.numel() for k, p in lora.trainable().items())
    moe_adapter_n = sum(p.numel() for k, p in moe.trainable().items() if not k.startswith("extra."))
    assert lora_n == moe_adapter_n  # K experts of rank r/K: exactly rank-r LoRA's parameters


def test_gate_differs_per_sample_and_changes_outputs(tiny_llm):
    from methods.llm.scoring import likelihood

    rec = _rec(tiny_llm, experts=4)
    _perturb_b(rec)
    hist, cands = _samples()
    base, gates = likelihood(rec, hist, cands, 4)
    assert gates.shape == (4, 4) and np.allclose(gates.sum(1), 1)
    assert np.ptp(gates, axis=0).max() > 1e-3  # samples get different gates
    with torch.no_grad():  # a different router: same inputs, different gates, different scores
        rec.extra["router"].linear.weight.mul_(-3.0)
    moved, gates2 = likelihood(rec, hist, cands, 4)
    assert not np.allclose(gates, gates2) and np.abs(base - moved).max() > 1e-4


def test_layers_refuse_to_run_without_a_gate(tiny_llm):
    rec = _rec(tiny_llm, experts=2)
    batch = rec.collate([rec.encode((1, 2), [3, 4], False)])
    rec.set_gate(None)
    with pytest.raises(RuntimeError, match="without a gate"):
        rec.model(input_ids=batch.input_ids)


@pytest.mark.parametrize("gate_input", ["sequence", "random", "token_mean"])
def test_gradients_reach_router_experts_and_projector(tiny_llm, gate_input):
    rec = _rec(tiny_llm, experts=4, hybrid=True, gate_input=gate_input)
    _perturb_b(rec)
    rec.train(True)
    hist, cands = _samples(2)
    batch = rec.collate([rec.encode(h, c, True, int(c[0])) for h, c in zip(hist, cands)])
    out, _ = rec.forward(batch, hist)
    logits = out.logits[:, :-1]
    torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1)).backward()
    grads = {k: (p.grad is not None and p.grad.abs().sum().item() > 0) for k, p in rec.trainable().items()}
    assert all(v for k, v in grads.items() if "router" in k), grads
    assert all(v for k, v in grads.items() if "projector" in k), grads
    assert all(v for k, v in grads.items() if "lora_A" in k or "lora_B" in k), grads


def test_save_and_reload_give_identical_scores(tiny_llm, tmp_path):
    from methods.llm.scoring import generate, likelihood

    rec = _rec(tiny_llm, experts=4, hybrid=True)
    _perturb_b(rec)
    with torch.no_grad():
        rec.extra["router"].norm.weight.mul_(1.7)  # normalisation parameters must travel too
    hist, cands = _samples()
    before, gates = likelihood(rec, hist, cands, 2)
    rec.save(tmp_path / "adapter")
    again = _rec(tiny_llm, experts=4, hybrid=True, seed=123)  # different initialisation
    again.load(tmp_path / "adapter")
    after, gates_after = likelihood(again, hist, cands, 2)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(gates, gates_after)
    assert generate(rec, hist, cands, 2, 5) == generate(again, hist, cands, 2, 5)
    with pytest.raises(ValueError, match="design"):
        _rec(tiny_llm, experts=2, hybrid=True).load(tmp_path / "adapter")


@pytest.mark.parametrize("experts,hybrid,segment", [(0, False, 6), (4, True, 6), (0, False, 1), (4, True, 2)])
def test_cached_prefix_scores_equal_full_prompts(tiny_llm, monkeypatch, experts, hybrid, segment):
    """Short segments make rows leave the batch (and the cache, and the gate) mid-way."""
    from methods.llm import scoring
    from methods.llm.scoring import likelihood, likelihood_uncached

    monkeypatch.setattr(scoring, "SEGMENT", segment)
    rec = _rec(tiny_llm, experts=experts, hybrid=hybrid)
    lengths = [len(rec.tokenizer(" " + t + "\n")["input_ids"]) for t in TITLES]
    assert max(lengths) > segment and len(set(lengths)) > 1  # several segments; rows leave at different ones
    _perturb_b(rec)
    hist, cands = _samples(5, 7)
    cached, _ = likelihood(rec, hist, cands, 2)  # batches of 2 and 1: left padding in play
    full = likelihood_uncached(rec, hist, cands, 8)
    np.testing.assert_allclose(cached, full, atol=1e-4)


def test_batched_generation_equals_one_by_one(tiny_llm):
    from methods.llm.scoring import generate

    rec = _rec(tiny_llm, experts=2, hybrid=True)
    _perturb_b(rec)
    hist, cands = _samples(3)
    assert generate(rec, hist, cands, 3, 6) == generate(rec, hist, cands, 1, 6)


def _items(n: int, seed: int = 0):
    from methods.llm.training import TrainItem

    hist, cands = _samples(n, 6, seed)
    return [TrainItem(h, tuple(int(x) for x in c), int(c[0])) for h, c in zip(hist, cands)]


def _nan_on_calls(rec, monkeypatch, calls: set[int]) -> None:
    """Make rec.forward return NaN logits on the given (0-based) calls."""
    forward, count = rec.forward, [0]

    def patched(*args, **kwargs):
        out, gate = forward(*args, **kwargs)
        if count[0] in calls:
            out.logits = out.logits * float("nan")
        count[0] += 1
        return out, gate

    monkeypatch.setattr(rec, "forward", patched)


def test_a_non_finite_step_is_skipped_and_named(tiny_llm, monkeypatch, caplog):
    import logging

    from methods.llm.training import TrainConfig, train

    rec = _rec(tiny_llm)
    _nan_on_calls(rec, monkeypatch, {2})  # batch size 2, no accumulation: call k is step k + 1
    before = {k: v.detach().clone() for k, v in rec.trainable().items()}
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        log = train(rec, _items(80), TrainConfig(epochs=1, batch_size=2, grad_accum=1, lr=1e-3))
    assert log.skipped == [3] and len(log.losses) == 39 and all(np.isfinite(log.losses))
    assert "non-finite loss nan at optimiser step 3 of 40, epoch 1" in caplog.text
    # no terminal under pytest, so no tqdm bar: a progress line every tenth of the steps instead
    progress = [m.split(",")[0] for m in caplog.messages if m.startswith("train step")]
    assert progress == [f"train step {k}/40" for k in range(4, 41, 4)]
    assert all(torch.isfinite(p).all() for p in rec.trainable().values())
    assert any(not torch.equal(before[k], p) for k, p in rec.trainable().items())


def test_the_time_estimate_times_a_median_length_bucket(tiny_llm):
    """Training pads each length bucket to its own longest prompt; the estimate must time such a
    batch, not the first few items padded to the longest of a random few."""
    from methods.llm.training import prompt_lengths, typical_micro_batch

    rec = _rec(tiny_llm)
    items = _items(40)
    lengths = dict(zip(items, prompt_lengths(rec, items)))
    assert len(set(lengths.values())) > 5, "the test needs prompts of many lengths"
    ranked = sorted(lengths.values())
    buckets_padded = sorted(4 * max(ranked[k : k + 4]) for k in range(0, 40, 4))
    typical = typical_micro_batch(rec, items, 4)
    assert 4 * max(lengths[it] for it in items[:4]) != buckets_padded[5], "the first four must not be typical here"
    assert len(typical) == 4 and 4 * max(lengths[it] for it in typical) == buckets_padded[5]


def test_too_many_non_finite_steps_fail_with_the_steps(tiny_llm, monkeypatch, tmp_path):
    import methods.llm.training as training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint is written after step 1
    rec = _rec(tiny_llm)
    _nan_on_calls(rec, monkeypatch, {0, 1, 2})
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan at optimiser step 2 of 5.*\[1, 2\]\), more than 5%"):
        training.train(rec, _items(10), training.TrainConfig(epochs=1, batch_size=2, grad_accum=1, lr=1e-3),
                       checkpoint=tmp_path / "ckpt.pt")
    assert not (tmp_path / "ckpt.pt").exists()  # a failed training is not resumed: it would fail the same way


def test_likelihood_names_the_samples_with_non_finite_scores(tiny_llm, monkeypatch):
    from methods.llm.scoring import likelihood

    rec = _rec(tiny_llm)
    _nan_on_calls(rec, monkeypatch, {1})
    hist, cands = _samples(4)
    with pytest.raises(FloatingPointError, match=r"after the prompt pass of samples 2\.\.3"):
        likelihood(rec, hist, cands, 2)


def test_scoring_without_a_terminal_logs_progress_in_samples(tiny_llm, caplog):
    """A nohup'd run's log must show scoring advance (tqdm draws nothing there); batches of 3 over 20
    samples cross the tenths unevenly, so a line per tenth crossed, and one at the end."""
    import logging

    from methods.llm.scoring import generate, likelihood

    rec = _rec(tiny_llm)
    hist, cands = _samples(20)
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        likelihood(rec, hist, cands, 3)
        generate(rec, hist, cands, 3, 4)
    for what in ("likelihood", "generate"):
        lines = [m.split(",")[0] for m in caplog.messages if m.startswith(what)]
        assert lines == [f"{what} sample {k}/20" for k in (3, 6, 9, 12, 15, 18, 20)], lines


def test_training_attention_keeps_cuda_off_the_memory_efficient_kernel():
    from harness.compat import training_attention

    before = (torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())
    with training_attention("cpu"):
        assert (torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()) == before
    with training_attention("cuda:0"):
        assert not torch.backends.cuda.mem_efficient_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
    assert (torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()) == before


@pytest.mark.parametrize("experts, hybrid", [(0, False), (4, True)])
def test_answer_loss_on_the_answer_logits_only_equals_the_full_loss(tiny_llm, experts, hybrid):
    """Training computes logits only for the answer's columns; loss and gradients must be those of
    the full logits (answers of different lengths, so the labelled columns differ per row)."""
    from methods.llm.training import answer_loss

    rec = _rec(tiny_llm, experts=experts, hybrid=hybrid)
    _perturb_b(rec)
    rec.train(True)
    items = _items(4)
    lengths = {len(rec.encode(it.history, it.candidates, hybrid, it.target).ids)
               - rec.encode(it.history, it.candidates, hybrid).answer_start for it in items}
    assert len(lengths) > 1, "the test needs answers of different token lengths"
    _assert_same_loss_and_grads(rec, lambda: answer_loss(rec, items, hybrid, all_logits=True),
                                lambda: answer_loss(rec, items, hybrid))


def _assert_same_loss_and_grads(rec, reference, candidate) -> torch.Tensor:
    """Both losses (each computed under the same LoRA dropout masks) and their gradients agree;
    returns the candidate's loss."""
    results = []
    for loss_fn in (reference, candidate):
        torch.manual_seed(0)
        loss = loss_fn()
        loss.backward()
        results.append((loss.detach(), {k: p.grad.clone() for k, p in rec.trainable().items()}))
        for p in rec.trainable().values():
            p.grad = None
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want)
    for k in want_grads:
        torch.testing.assert_close(got_grads[k], want_grads[k], msg=k)
    return got


@pytest.mark.parametrize("experts, hybrid", [(0, False), (4, True)])
def test_history_loss_is_the_full_logits_loss_on_answer_and_history_title_tokens(tiny_llm, experts, hybrid):
    """The history-loss ablation picks hidden states at the labelled positions and runs the LM head
    on them alone; loss and gradients must be those of the full logits with the same labels, and
    every history title must be found in the prompt (the tiny tokenizer merges nothing)."""
    from methods.llm.batches import IGNORE
    from methods.llm.training import answer_loss

    rec = _rec(tiny_llm, experts=experts, hybrid=hybrid)
    _perturb_b(rec)
    rec.train(True)
    items = _items(4)
    rows = [rec.encode(it.history, it.candidates, hybrid, it.target, history_labels=True) for it in items]
    for it, row in zip(items, rows):
        titles = sum(len(rec.piece_ids(" " + TITLES[i], False)) for i in it.history)
        assert len(row.extra_labels) == titles and max(row.extra_labels) < row.answer_start
    batch = rec.collate(rows)

    def full_logits_loss():
        out, _ = rec.forward(batch, [it.history for it in items])
        logits = out.logits[:, :-1].float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1),
                                                 ignore_index=IGNORE)

    picked = _assert_same_loss_and_grads(rec, full_logits_loss, lambda: answer_loss(rec, items, hybrid, history=True))
    answer_only = answer_loss(rec, items, hybrid)
    assert not torch.isclose(answer_only, picked)  # the history tokens did change the loss


@pytest.mark.parametrize("experts, hybrid, negatives", [(0, False, None), (4, True, 2)])
def test_candidate_loss_is_the_answer_loss_plus_cross_entropy_over_the_test_time_scores(tiny_llm, experts, hybrid, negatives):
    """The listwise ablation trains on the very scores `likelihood` ranks by at test time: its value is
    the answer-only loss plus the cross-entropy of the target among those scores (the target's and
    the first `negatives` other listed ones'), and the cached prompt pass carries gradients to the
    adapters (and to the router, with experts)."""
    from methods.llm.scoring import likelihood
    from methods.llm.training import TrainItem, answer_loss, candidate_loss

    rec = _rec(tiny_llm, experts=experts, hybrid=hybrid)
    _perturb_b(rec)
    hist, cands = _samples(4, 6)
    items = [TrainItem(h, tuple(int(x) for x in c), int(c[k])) for k, (h, c) in enumerate(zip(hist, cands))]
    scores, _ = likelihood(rec, hist, cands, 2)  # eval mode from here on: no LoRA dropout in either loss
    cols = [[k, *[j for j in range(6) if j != k][:negatives]] for k in range(4)]
    picked = torch.tensor([scores[k, row] for k, row in enumerate(cols)]).float()
    want = answer_loss(rec, items, hybrid) + torch.nn.functional.cross_entropy(picked, torch.zeros(4, dtype=torch.long))
    got = candidate_loss(rec, items, hybrid, negatives=negatives)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    got.backward()
    grads = {k: p.grad for k, p in rec.trainable().items()}
    assert any(g is not None and g.abs().sum() > 0 for k, g in grads.items() if "lora_A" in k)
    if experts:
        assert any(g is not None and g.abs().sum() > 0 for k, g in grads.items() if k.startswith("extra.router."))


def test_title_positions_find_each_history_title_in_order_and_tolerate_a_merged_last_token():
    from methods.llm.batches import title_positions

    ids = [1, 2, 10, 11, 12, 3, 20, 21, 99, 4, 30, 5, 6]  # 12 never appears merged; 22 is merged into 99
    assert title_positions(ids, [(10, 11, 12), (20, 21, 22), (30,)], len(ids)) == (2, 3, 4, 6, 7, 10)
    assert title_positions(ids, [(10, 11, 12), (77, 78)], len(ids)) == (2, 3, 4)  # not found: skipped
    assert title_positions(ids, [(30,)], 9) == ()  # only before `end` (the answer's start)
    assert title_positions([5, 10, 11, 10, 11], [(10, 11), (10, 11)], 5) == (1, 2, 3, 4)  # in order, no reuse


def test_item_scale_matches_the_embedding_modules_own_scale(tiny_llm, tmp_path):
    """Gemma's embedding module multiplies its weights by sqrt(hidden), which the projected item
    tokens (passed as inputs_embeds) bypass; embedding_scale() measures that factor and item_scale
    applies it to the item slots only."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    from methods.llm.adapters import LoraSpec
    from methods.llm.recommender import Design, LLMRecommender

    assert _rec(tiny_llm, hybrid=True).embedding_scale() == pytest.approx(1.0)  # Llama: no scaling

    tok = AutoTokenizer.from_pretrained(tiny_llm)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(tmp_path / "gemma")
    tok.save_pretrained(tmp_path / "gemma")
    rec = LLMRecommender(str(tmp_path / "gemma"), "cpu", TITLES, "movie", Design(lora=LoraSpec(), hybrid=True),
                         FakeSASRec(N_ITEMS), seed=0)
    assert rec.embedding_scale() == pytest.approx(32 ** 0.5, rel=1e-3)

    hist, cands = _samples(2)
    batch = rec.collate([rec.encode(h, c, hybrid=True) for h, c in zip(hist, cands)])
    plain = rec.embed(batch)
    rec.item_scale = rec.embedding_scale()
    scaled = rec.embed(batch)
    slots = torch.zeros(plain.shape[:2], dtype=torch.bool)
    slots[batch.slot_rows, batch.slot_cols] = True
    assert slots.any()
    torch.testing.assert_close(scaled[slots], plain[slots] * rec.item_scale)
    torch.testing.assert_close(scaled[~slots], plain[~slots])  # text tokens untouched


@pytest.mark.parametrize("hybrid", [False, True])
def test_cached_piece_ids_equal_one_tokenizer_call_per_piece(tiny_llm, hybrid):
    """Prompt pieces are tokenised once each (the tokenizer's per-call overhead dominated encoding);
    the ids must be those of calling the tokenizer on every piece, as before the cache."""
    from methods.llm.batches import encode
    from methods.llm.prompts import answer_text, build_prompt

    rec = _rec(tiny_llm, hybrid=hybrid)
    calls: list[str] = []

    def per_call(text: str, special: bool) -> list[int]:
        calls.append(text)
        return rec.tokenizer(text, add_special_tokens=special)["input_ids"]

    hist, cands = _samples(n=6)
    for h, c in zip(hist, cands):
        pieces = build_prompt(h, tuple(int(x) for x in c), TITLES, "movie", hybrid)
        expected = encode(per_call, rec.tokenizer.pad_token_id, pieces, answer_text(TITLES[int(c[0])]))
        assert rec.encode(h, c, hybrid, int(c[0])) == expected
    rec.piece_ids.cache_clear()
    for h, c in zip(hist, cands):
        rec.encode(h, c, hybrid, int(c[0]))
    first = rec.piece_ids.cache_info()
    assert first.misses == len(set(calls))  # each distinct piece went to the tokenizer once
    for h, c in zip(hist, cands):
        rec.encode(h, c, hybrid, int(c[0]))
    again = rec.piece_ids.cache_info()
    assert again.misses == first.misses and again.hits == first.hits + len(calls)  # the same prompts: every piece a hit


@pytest.mark.parametrize("best", [0, 1])
def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_weights(tiny_llm, monkeypatch, tmp_path, caplog, best):
    """Two epochs of hybrid iLoRA with the curriculum, LoRA dropout and model selection, killed in
    the second epoch: resumed from the checkpoint, it must take the very steps the uninterrupted
    training took (same weights, losses, prompt kinds and validation curve), and then remove it.
    best=1: the weights are those the resumed steps made; best=0: those the checkpoint kept."""
    import logging

    import methods.llm.training as training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save after every step
    cfg = training.TrainConfig(epochs=2, batch_size=2, grad_accum=2, lr=1e-2, curriculum=True)
    items = _items(24)  # 12 micro-batches, 6 steps per epoch

    def validate(epoch: int) -> float:
        return float(epoch == best)

    whole = _rec(tiny_llm, experts=4, hybrid=True)
    expected = training.train(whole, items, cfg, validate)

    killed, path = _rec(tiny_llm, experts=4, hybrid=True), tmp_path / "ckpt.pt"
    revive = kill_training_on_call(monkeypatch, 17)  # the first micro-batch of step 9, the second epoch's third step
    with pytest.raises(KeyboardInterrupt):
        training.train(killed, items, cfg, validate, checkpoint=path)
    revive()
    assert path.exists()

    resumed = _rec(tiny_llm, experts=4, hybrid=True)  # a new process: fresh weights from the seed
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        got = training.train(resumed, items, cfg, validate, checkpoint=path)
    assert "training resumes from" in caplog.text and got.resumed_at == 8
    assert (got.losses, got.hybrid, got.curve, got.best_epoch) == (expected.losses, expected.hybrid, expected.curve,
                                                                    expected.best_epoch)
    assert got.best_epoch == best and "t" in "".join("h" if h else "t" for h in got.hybrid) and any(got.hybrid)
    for k, v in whole.trainable().items():
        assert torch.equal(v, resumed.trainable()[k]), k
    assert not path.exists()


def test_a_checkpoint_of_other_settings_is_not_resumed(tiny_llm, tmp_path, caplog):
    import logging

    import methods.llm.training as training

    path = tmp_path / "ckpt.pt"
    cfg = training.TrainConfig(epochs=2, batch_size=2, grad_accum=1, lr=1e-3)
    saver = training._Checkpoint(path, "another run's fingerprint")
    saver.save({"step": 3})
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        log = training.train(_rec(tiny_llm), _items(4), cfg, checkpoint=path)
    assert "is for other settings or windows: training from the start" in caplog.text
    assert log.resumed_at is None and len(log.losses) == 4 and not path.exists()
    path.write_bytes(b"not a checkpoint")  # a file cut short by a kill mid-write would look like this
    with caplog.at_level(logging.INFO, logger="ilora_bench"):
        log = training.train(_rec(tiny_llm), _items(4), cfg, checkpoint=path)
    assert "unreadable" in caplog.text and log.resumed_at is None and len(log.losses) == 4
    # what tells runs apart in one work folder: the backbone, the prompts (their lengths), the windows
    rec, items = _rec(tiny_llm), _items(4)
    lengths = training.prompt_lengths(rec, items)
    same = training._fingerprint(rec, items, cfg, lengths)
    assert same == training._fingerprint(_rec(tiny_llm), _items(4), cfg, list(lengths))
    assert same != training._fingerprint(rec, items, cfg, [n + 1 for n in lengths])
    assert same != training._fingerprint(rec, items[:3], cfg, lengths[:3])
    rec.llm = "another/backbone"
    assert same != training._fingerprint(rec, items, cfg, lengths)
