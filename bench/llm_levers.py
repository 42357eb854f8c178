#!/usr/bin/env python
"""Which settings make the LLM methods learn on a CPU? (issue 8's levers table)

    python bench/llm_levers.py [--only NAME ...] [--log results/levers/ml-100k.jsonl]
    python bench/llm_levers.py --probe-saved --probe-runs cpu-long    # train_hr1 of saved adapters
    python bench/llm_levers.py --hits NAME ...                        # paired p (and gate) columns for older rows
    python bench/llm_levers.py --table-only --pair A B                # paired p of setting A against B

Each named setting below is one (method, parameter overrides) pair: it is trained exactly as
`run_bench.py` would train it (same Session, split, frozen candidates, SASRec artifact), then
scored by likelihood on the frozen VALIDATION and TEST candidates of seed 0. Generation is
skipped (it costs as much again and ranks no better here). For hybrid methods the table also shows
the projector's output norm next to the backbone's mean token-embedding norm, and HR@1 with the
item tokens zeroed, which says whether the model uses them at all. `train_hr1` is HR@1 on the first
TRAIN_PROBE of the windows the model was trained on, with their training candidates, printed beside
popularity's HR@1 on the same windows: a model below popularity on the very windows it trained on
has not even fitted what it saw, while one near 1 there and at chance on test has memorised them
(too few distinct windows, not too little optimisation).

`p_vs_zeroshot` and `p_vs_pop` are issue 8's bars as the leaderboard tests them: two-sided paired
Wilcoxon p of the row's per-user test hits against the untrained backbone's with the same prompt and
against popularity's, on the same candidates (no correction for the many rows). Rows from before the
column get their hits with `--hits NAME ...`, which rescores their saved adapters. iLoRA rows also
show whether their gate mixes the experts differently per user (`gate_entropy`, `gate_mi`), and
how much of that the random router already did before training (`gate_mi_init`).

Every finished setting is appended to the log as one JSON line, so a killed run resumes where it
stopped and the table can be reprinted (`--table-only`). Rows are printed in the order of SETTINGS.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import UserError  # noqa: E402
from harness.evaluate import metrics, ranks_from_scores  # noqa: E402
from harness.records import atomic_write_text  # noqa: E402
from methods.base import METHODS  # noqa: E402
from harness.report.stats import gate_spread, paired_test  # noqa: E402
from harness.runner import RunPlan, Session  # noqa: E402

ATTENTION = "q_proj,k_proj,v_proj,o_proj"

# name -> (method, overrides, note). The cpu profile is 160 windows, 1 epoch, 4 x 2, lr 5e-4.
# An override named in KNOBS is not a method parameter (adding one would change the hash of every
# committed record); it is set on the method's resolved settings, which `_train` reads.
KNOBS = {"curriculum", "warmup_fraction", "final_lr_fraction", "projector_scale", "cpu_bf16"}
TRAIN_PROBE = 95  # training windows scored for train_hr1 (as many as the test set has)
SETTINGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "tallrec-cpu": ("tallrec", {}, "the cpu profile as shipped"),
    "llara-cpu": ("llara", {}, "the cpu profile as shipped"),
    "llara-lr2e-3": ("llara", {"lr": 2e-3, "grad_accum": 1}, "4x more steps (no accumulation), 4x the learning rate"),
    "llara-480": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1}, "3x the windows, 120 steps"),
    "llara-480-attn": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "lora_targets": ATTENTION},
                       "as llara-480, LoRA on attention only"),
    "tallrec-480": ("tallrec", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1}, "as llara-480 without item tokens"),
    "ilora-480": ("ilora", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1}, "as llara-480 with 4 gated experts"),
    "llara-960": ("llara", {"train_samples": 960, "lr": 1e-3, "grad_accum": 1}, "6x the windows, 240 steps"),
    "llara-160x4": ("llara", {"lr": 1e-3, "grad_accum": 1, "epochs": 4},
                    "the cpu windows seen 4 times, 160 steps: can it fit what it saw?"),
    "llara-480-hybrid": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "curriculum": False},
                         "as llara-480, item tokens in every step (no text-first curriculum)"),
    "llara-480-r32": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "lora_r": 32, "lora_alpha": 64},
                      "as llara-480, LoRA rank 32"),
    "llara-480-lr3e-3": ("llara", {"train_samples": 480, "lr": 3e-3, "grad_accum": 1}, "as llara-480, 3x the learning rate"),
    "llara-480-gemma": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "llm": "gemma3-270m"},
                        "as llara-480 on Gemma-3-270M (base) instead of SmolLM2-135M-Instruct"),
    "llara-cpu-long-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m"},
                             "llara's cpu-long profile (1600 windows, 4 x 2, lr 1e-3) on Gemma-3-270M"),
    "llara-480-constant": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "final_lr_fraction": 1.0},
                           "as llara-480, constant lr after the warm-up (no cosine decay)"),
    "llara-480-warmup20": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "warmup_fraction": 0.2},
                           "as llara-480, warm-up over 1/5 of the steps instead of 1/20"),
    "llara-480-gemma-scaled": ("llara", {"train_samples": 480, "lr": 1e-3, "grad_accum": 1, "llm": "gemma3-270m",
                                         "projector_scale": "embedding"},
                               "as llara-480-gemma, item tokens scaled by Gemma's embedding scale (sqrt 640)"),
    "llara-3200-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "train_samples": 3200},
                         "as llara-cpu-long-gemma with twice the windows (3200, 400 steps)"),
    "llara-800x2-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "train_samples": 800, "epochs": 2},
                          "as llara-cpu-long-gemma with half the windows seen twice (same 200 steps)"),
    "llara-1600-noaccum-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "grad_accum": 1},
                                 "as llara-cpu-long-gemma, batches of 4 not accumulated (400 steps, same windows)"),
    "llara-1600-lr2e-3-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "lr": 2e-3},
                                "as llara-cpu-long-gemma at twice the learning rate (its loss ends at 1.14, SmolLM2's at 0.84)"),
    "llara-1600-lr5e-4-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "lr": 5e-4},
                                "as llara-cpu-long-gemma at half the learning rate (twice it was worse on every column)"),
    # The untrained backbones (issue 8's zero-shot bar), and a labelled ablation, not the paper's prompt:
    # "history-only" (prompts.HISTORY_ONLY) lists no candidates, so the model ranks them by P(title |
    # history) alone and a window costs about half the tokens.
    "zeroshot-gemma": ("llm-zeroshot", {"llm": "gemma3-270m"}, "Gemma-3-270M as is, the paper's prompt"),
    "zeroshot-histonly-gemma": ("llm-zeroshot", {"llm": "gemma3-270m", "prompt": "history-only"},
                                "Gemma-3-270M as is, history-only prompt (ablation): does its title prior track popularity?"),
    "llara-1600-histonly-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only"},
                                  "as llara-cpu-long-gemma with the history-only prompt (ablation: no candidate list)"),
    "ilora-1600-histonly-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only"},
                                  "as llara-1600-histonly-gemma with iLoRA's 4 gated experts"),
    "zeroshot-smollm2": ("llm-zeroshot", {}, "SmolLM2-135M-Instruct as is, the paper's prompt"),
    "zeroshot-histonly-smollm2": ("llm-zeroshot", {"prompt": "history-only"},
                                  "SmolLM2-135M-Instruct as is, history-only prompt (ablation)"),
    "llara-3200-histonly-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "train_samples": 3200,
                                            "prompt": "history-only"},
                                  "as llara-3200-gemma with the history-only prompt: about the minutes of 1600 with the paper's"),
    "tallrec-3200-histonly-gemma": ("tallrec", {"profile": "cpu-long", "llm": "gemma3-270m", "train_samples": 3200,
                                                "prompt": "history-only"},
                                    "as llara-3200-histonly-gemma without item tokens"),
    "ilora-3200-histonly-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "train_samples": 3200,
                                            "prompt": "history-only"},
                                  "as llara-3200-histonly-gemma with iLoRA's 4 gated experts"),
    # Does the windows curve keep rising (ilora-histonly: 1600 -> 0.221, 3200 -> 0.263, pop 0.274)?
    "ilora-6400-histonly-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "train_samples": 6400,
                                            "prompt": "history-only"},
                                  "as ilora-3200-histonly-gemma with twice the windows (800 steps)"),
    # A window trains one next-title prediction (its answer) while its history holds ten more, which
    # SASRec's loss uses at every position: the loss on the history titles' tokens too (an ablation of
    # the papers' objective, not of their prompt or model).
    "ilora-1600-histonly-histloss-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only",
                                                     "history_loss": True},
                                           "as ilora-1600-histonly-gemma with the loss on the history titles too"),
    # Whose lift is it (ilora-1600-histonly-histloss: 0.309 vs pop 0.242 over seeds 0-2): the gated experts'
    # or the objective's? The same double ablation with one LoRA (llara) and without item tokens (tallrec).
    "llara-1600-histonly-histloss-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only",
                                                     "history_loss": True},
                                           "as ilora-1600-histonly-histloss-gemma with one LoRA (no experts, no gate)"),
    "tallrec-1600-histonly-histloss-gemma": ("tallrec", {"profile": "cpu-long", "llm": "gemma3-270m",
                                                         "prompt": "history-only", "history_loss": True},
                                             "as llara-1600-histonly-histloss-gemma without item tokens"),
    # ilora beats llara there (88 vs 61 of 285 users): is it the gate's SASRec input that routes users
    # apart, or any fixed per-user mixture of four experts? The paper's random-gate ablation on this setting.
    "ilora-1600-histonly-histloss-randomgate-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m",
                                                                "prompt": "history-only", "history_loss": True,
                                                                "gate_input": "random"},
                                                      "as ilora-1600-histonly-histloss-gemma, gate from a fixed random "
                                                      "vector per history (the paper's gate ablation)"),
    # Issue 8's default-profile goal asks whether any setting inside 30 minutes puts ilora above pop. The best
    # setting measured, at the windows a default run's ~3.5 training minutes per method buy with it on Gemma.
    "ilora-320-histonly-histloss-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only",
                                                    "history_loss": True, "train_samples": 320},
                                          "as ilora-1600-histonly-histloss-gemma with a fifth of the windows (40 steps)"),
    # The same objective on the paper's prompt (candidate list included): does it lift the rows issue 8 is about?
    "ilora-1600-histloss-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "history_loss": True},
                                  "as ilora, cpu-long, Gemma (the paper's prompt) with the loss on the history titles too"),
    # The paper's prompt, with a listwise loss over the listed candidates as well as the answer's
    # (methods' candidate_loss; an ablation of the objective, not of the prompt): on that prompt the
    # answer-only loss is mostly paid for copying a listed title, and the trained rows' first choice
    # follows popularity no better than pop (bench/llm_choices.py). Does paying for the ranking itself
    # lift them above pop, as issue 8's cpu-long goal needs?
    **{f"{m}-1600-candloss-gemma": (m, {"profile": "cpu-long", "llm": "gemma3-270m", "candidate_loss": True},
                                    f"as {m}, cpu-long, Gemma (the paper's prompt) with a listwise loss over the candidates too")
       for m in ("llara", "ilora", "tallrec")},
    # llara-1600-candloss-gemma's step loss swung between 1.2 and 5.4 to the end at lr 1e-3, and it fitted
    # its own windows worse than pop: the listwise loss at half the learning rate.
    "llara-1600-candloss-lr5e-4-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "candidate_loss": True,
                                                   "lr": 5e-4},
                                         "as llara-1600-candloss-gemma at half the learning rate (5e-4)"),
    # Training throughput: this AMD EPYC has avx512_bf16, and bf16 autocast made a Gemma micro-batch's forward +
    # backward 0.65x fp32's (bench/llm_bf16.py). Does a whole training keep that gain, and cpu-long llara's ranking
    # (test 0.168 in 27.5-29.0 min)? If so, the minutes it frees could buy more windows.
    "llara-1600-bf16-gemma": ("llara", {"profile": "cpu-long", "llm": "gemma3-270m", "cpu_bf16": True},
                              "as llara-cpu-long-gemma, trained under bf16 autocast (scoring fp32)"),
    # Does the gate matter? Its router learns at lr x router_lr_scale (0.3) and ends less instance-wise
    # than it started (gate_mi below gate_mi_init): a router at 10x lr, and the paper's random-gate ablation.
    "ilora-1600-histonly-router10-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only",
                                                     "router_lr_scale": 3.0},
                                           "as ilora-1600-histonly-gemma with the router at 10x its learning rate (3 x lr)"),
    "ilora-1600-histonly-randomgate-gemma": ("ilora", {"profile": "cpu-long", "llm": "gemma3-270m", "prompt": "history-only",
                                                       "gate_input": "random"},
                                             "as ilora-1600-histonly-gemma, gate from a fixed random vector per history"),
}


def hr1(scores: np.ndarray, target_index: np.ndarray) -> float:
    return metrics(ranks_from_scores(scores, target_index))["HR@1"]


def test_outcomes(method: Any, test: Any) -> dict[str, Any]:
    """Test HR@1 and the per-sample HR@1 outcomes behind it, as a string of 0/1 (one JSON field) for
    the paired tests, and the list index each sample ranks first (is that pop's pick?); from one
    scoring pass, which also gives a gated method's gate columns."""
    scores = method.score(test)
    ranks = ranks_from_scores(scores, test.target_index)
    out = {"test_hr1": metrics(ranks)["HR@1"], "test_hits": "".join("1" if r == 1 else "0" for r in ranks),
           "test_top1": " ".join(map(str, np.argmax(scores, axis=1)))}  # the candidate each sample ranks first
    return out | gate_columns(method.record_extra().get("test_gates"))


def gate_columns(gates: Any) -> dict[str, float]:
    """Is iLoRA's mixture instance-wise? `gate_entropy`: the mean entropy of a test user's gate (nats;
    ln K when it mixes the K experts evenly). `gate_mi`: the mutual information between user and
    expert: 0 when every user gets the same mixture, whatever its entropy (harness.report.stats.gate_spread)."""
    if gates is None:
        return {}
    mean_entropy, mi = gate_spread(gates)
    return {"gate_entropy": round(mean_entropy, 4), "gate_mi": round(mi, 4)}


def outcomes(hit_string: str) -> np.ndarray:
    return np.array([int(c) for c in hit_string])


def projector_norms(rec: Any) -> dict[str, float]:
    """Mean L2 norm of the projected item embeddings vs the backbone's token embeddings as the
    model sees them: through the embedding module, which for Gemma multiplies by sqrt(hidden)
    (the weight's own norm would understate Gemma's tokens 25x)."""
    with torch.no_grad():
        projected = (rec.extra["projector"](rec.item_table) * rec.item_scale).norm(dim=-1).mean().item()
        embed = rec.model.get_input_embeddings()
        ids = torch.arange(embed.num_embeddings, device=rec.device)
        tokens = torch.cat([embed(chunk).float().norm(dim=-1) for chunk in ids.split(16384)]).mean().item()
    return {"projected_norm": round(projected, 3), "token_norm": round(tokens, 3)}


def zeroed_slots_hr1(method: Any, test: Any) -> float:
    """Test HR@1 with every item slot's embedding replaced by zeros (the projector switched off)."""
    rec = method.recommender()
    projector = rec.extra["projector"]

    class Zero(torch.nn.Module):
        def forward(self, e: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*e.shape[:-1], rec.d_llm, dtype=e.dtype, device=e.device)

    rec.extra["projector"] = Zero()
    try:
        return hr1(method.score(test), test.target_index)
    finally:
        rec.extra["projector"] = projector


def resolved_params(method_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The method's parameters as `run_bench.py` would resolve them (KNOBS left out)."""
    cls = METHODS.get(method_name).obj
    return cls.resolve({**cls.defaults, **{k: v for k, v in overrides.items() if k not in KNOBS}})


def build(session: Session, method_name: str, overrides: dict[str, Any], seed: int, work_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The method as `run_bench.py` would build it, plus the bench-only KNOBS; and its parameters."""
    params = resolved_params(method_name, overrides)
    method = METHODS.get(method_name).obj(session.context(method_name, seed, work_dir), **params)
    method.settings.update({k: v for k, v in overrides.items() if k in KNOBS})
    return method, params


def work_dir(out: Path, name: str, seed: int) -> Path:
    """Where a setting keeps its adapter: one folder per seed, so that another seed's run does not
    overwrite the adapter `--hits` rescores (seed 0 keeps the folder it had before seeds were run)."""
    return out / "work" / "levers" / (name if seed == 0 else f"{name}-seed{seed}")


def run_setting(session: Session, name: str, seed: int) -> dict[str, Any]:
    method_name, overrides, note = SETTINGS[name]
    split, cands = session.prepare(seed)
    method, params = build(session, method_name, overrides, seed, work_dir(session.plan.out, name, seed))
    session.require("sasrec", seed)  # trained (or loaded) before the clock starts, as in a real run
    t0 = time.perf_counter()
    init = gate_mi_init(method, cands.test)  # builds the recommender fit would build, and reads its router
    method.fit(split.train, cands.valid)
    train_minutes = (time.perf_counter() - t0) / 60
    t1 = time.perf_counter()
    extra = method.record_extra()
    row: dict[str, Any] = {
        "setting": name, "method": method_name, "overrides": overrides, "note": note, "seed": seed,
        "train_samples": extra.get("train_samples"), "steps": extra.get("train_steps"), "train_min": round(train_minutes, 1),
        "loss_first": extra.get("loss_first"), "loss_last": extra.get("loss_last"),
        "valid_hr1": hr1(method.score(cands.valid), cands.valid.target_index),
    }
    row.update(test_outcomes(method, cands.test) | init)
    if method.trains:  # a zero-shot row has no training windows to probe
        probe = train_probe(split.train, cands.test, params, seed, session)
        row["train_hr1"] = hr1(method.score(probe), probe.target_index)
    row["score_min"] = round((time.perf_counter() - t1) / 60, 1)
    if method.design().hybrid:
        row.update(projector_norms(method.recommender()))
        row["test_hr1_zeroed_slots"] = zeroed_slots_hr1(method, cands.test)
    return row


def gate_mi_init(method: Any, test: Any) -> dict[str, float]:
    """`gate_mi_init`: gate_mi of the router as the seed initialised it, read from a method not yet
    trained (or loaded). The router starts random, so its gate already differs between users before it
    has learned anything; only gate_mi above this says training made the mixture instance-wise. Needs
    no LLM pass: the gate is the router on SASRec's sequence representation (or a fixed random vector)."""
    mi = method.router_mi(test) if hasattr(method, "router_mi") else None  # None: no gate, or one that reads the prompt
    return {} if mi is None else {"gate_mi_init": round(mi, 4)}


def saved_hits(session: Session, row: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Test hits (and a gated method's gate columns) of a finished row from before those columns:
    its saved adapter (none for zero-shot) reloaded and rescored; it must reproduce the recorded test
    HR@1, or the adapter is not that row's."""
    _, cands = session.prepare(row["seed"])
    method, _ = build(session, row["method"], row["overrides"], row["seed"], folder.parent)
    init = gate_mi_init(method, cands.test)  # before the adapter is loaded
    load_saved(method, folder)
    again = test_outcomes(method, cands.test)
    if again["test_hr1"] != row["test_hr1"]:
        raise UserError(f"{row['setting']}: rescored test HR@1 {again['test_hr1']:.4f} is not the recorded "
                        f"{row['test_hr1']:.4f}; not adding its hits")
    return {k: v for k, v in (again | init).items() if k != "test_hr1"}


def lacks_outcomes(row: dict[str, Any]) -> bool:
    """A row from before the test-hits (or first-choice) column, or an iLoRA row from before the gate columns."""
    return "test_top1" not in row or (row["method"] == "ilora" and "gate_mi_init" not in row)


def reloaded(session: Session, method_name: str, overrides: dict[str, Any], seed: int, folder: Path) -> tuple[Any, dict[str, Any]]:
    """The method as `build` makes it, with the adapter saved in `folder` (a zero-shot method has none)."""
    method, params = build(session, method_name, overrides, seed, folder.parent)
    load_saved(method, folder)
    return method, params


def load_saved(method: Any, folder: Path) -> None:
    if method.trains:
        if not folder.exists():
            raise UserError(f"no saved adapter at {folder} to rescore")
        method.recommender().load(folder)


def probe_saved(session: Session, method_name: str, overrides: dict[str, Any], seed: int, folder: Path) -> dict[str, float]:
    """train_hr1 of an adapter trained earlier (a lever row from before the column, or a
    run_bench.py run), and its test HR@1 again, which must match the recorded one."""
    split, cands = session.prepare(seed)
    method, params = reloaded(session, method_name, overrides, seed, folder)
    probe = train_probe(split.train, cands.test, params, seed, session)
    return {"train_hr1": hr1(method.score(probe), probe.target_index),
            "test_hr1_reloaded": hr1(method.score(cands.test), cands.test.target_index)}


def train_probe(train: list[Any], like: Any, params: dict[str, Any], seed: int, session: Session) -> Any:
    """The first TRAIN_PROBE windows the method trained on, with the candidates it trained them with."""
    from dataclasses import replace

    from methods.llm.training import training_items

    items = training_items(train, session.data.n_items, like.candidates.shape[1], params["train_samples"], seed)[:TRAIN_PROBE]
    return replace(
        like, part="train", users=np.zeros(len(items), dtype=np.int64), histories=[it.history for it in items],
        targets=np.array([it.target for it in items]), candidates=np.array([it.candidates for it in items]),
        seen=[it.history for it in items],
    )


def paired_columns(rows: list[dict[str, Any]], pop_hits: str) -> dict[str, dict[str, float]]:
    """Two-sided paired Wilcoxon p of each row's test hits against pop's and against the untrained
    backbone's with the same prompt (issue 8's two bars), where both sides have hits."""
    zero = {prompt_key(r): r["test_hits"] for r in rows if r["method"] == "llm-zeroshot" and r.get("test_hits")}
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if not r.get("test_hits"):
            continue
        mine = outcomes(r["test_hits"])
        out[r["setting"]] = {"p_vs_pop": round(paired_test(mine, outcomes(pop_hits)), 4)}
        if r["method"] != "llm-zeroshot" and prompt_key(r) in zero:
            out[r["setting"]]["p_vs_zeroshot"] = round(paired_test(mine, outcomes(zero[prompt_key(r)])), 4)
    return out


def pair_lines(rows: list[dict[str, Any]], pairs: list[list[str]], seeds: list[int]) -> list[str]:
    """Paired Wilcoxon p between two rows' test hits: iLoRA against LoRA at one setting, say, which
    the table's columns (each row against pop and against its untrained backbone) do not give. Over
    several seeds each seed's users are paired with themselves and the seeds pooled, as --pooled does."""
    by_key = {(r["setting"], r["seed"]): r for r in rows}
    lines = []
    for a, b in pairs:
        x, y = [], []
        for seed in seeds:
            for name, side in ((a, x), (b, y)):
                if not by_key.get((name, seed), {}).get("test_hits"):
                    raise UserError(f"--pair: {name} has no test hits for seed {seed} (run it with --seed {seed} --only "
                                    f"{name}, or add them with --hits {name})")
                side.append(outcomes(by_key[(name, seed)]["test_hits"]))
            if len(x[-1]) != len(y[-1]):
                raise UserError(f"--pair: {a} has {len(x[-1])} test outcomes and {b} {len(y[-1])} for seed {seed}: "
                                "not the same test set")
        where = f" (seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
        lines.append(pair_line(a + where, np.concatenate(x), b, np.concatenate(y)))
    return lines


def pair_line(a: str, x: np.ndarray, b: str, y: np.ndarray) -> str:
    return (f"{a} vs {b}: test HR@1 {x.mean():.3f} vs {y.mean():.3f} ({int(x.sum())} vs {int(y.sum())} of "
            f"{len(x)} users; {int((x > y).sum())} hit only by the first, {int((y > x).sum())} only by the "
            f"second), two-sided paired Wilcoxon p {paired_test(x, y):.3f}, uncorrected")


def pooled_lines(done: list[dict[str, Any]], names: list[str], seeds: list[int], pop_hits: dict[int, str]) -> list[str]:
    """A setting's test hits over several seeds (each seed its own users and candidates), paired user
    by user with pop's and with the untrained backbone's under the same prompt: one seed's 95 users
    cannot tell a tie from a small win; three seeds' 285 can narrow it."""
    def hits(setting: str | None, seed: int, method: str | None = None, key: tuple[str, str] | None = None) -> str:
        for r in done:
            if r["seed"] == seed and r.get("test_hits") and (r["setting"] == setting or (
                    method and r["method"] == method and prompt_key(r) == key)):
                return r["test_hits"]
        raise UserError(f"--pooled: no {setting or method + ' row with ' + str(key)} with test hits for seed {seed} "
                        f"(run it with --seed {seed} --only ...)")

    lines = []
    for name in names:
        key = prompt_key({"overrides": SETTINGS[name][1]})
        mine = np.concatenate([outcomes(hits(name, s)) for s in seeds])
        pop = np.concatenate([outcomes(pop_hits[s]) for s in seeds])
        where = f" (seeds {', '.join(map(str, seeds))})"
        lines.append(pair_line(name + where, mine, "pop", pop))
        if SETTINGS[name][0] != "llm-zeroshot":
            zero = np.concatenate([outcomes(hits(None, s, "llm-zeroshot", key)) for s in seeds])
            lines.append(pair_line(name + where, mine, "its untrained backbone", zero))
    return lines


def prompt_key(row: dict[str, Any]) -> tuple[str, str]:
    """(backbone, prompt): a trained row's zero-shot counterpart has the same."""
    return str(row["overrides"].get("llm", "smollm2")), str(row["overrides"].get("prompt", "paper"))


def pop_agreement(row: dict[str, Any], pop: dict[str, Any]) -> dict[str, float]:
    """Is a row a noisy popularity ranking? `pops_pick`: the share of test samples whose first-ranked
    candidate is pop's; `hr1_off_pops_pick`: test HR@1 on the others (about 1 / candidates if it knows
    nothing beyond pop's prior). Rows from before `test_top1` have neither."""
    if not row.get("test_top1"):
        return {}
    mine, pops = np.array(row["test_top1"].split(), dtype=int), np.array(pop["test_top1"].split(), dtype=int)
    off = mine != pops
    hits = outcomes(row["test_hits"])
    return {"pops_pick": round(float(np.mean(~off)), 3), "hr1_off_pops_pick": round(float(hits[off].mean()), 3) if off.any() else None}


def print_table(rows: list[dict[str, Any]], reference: dict[str, dict[str, Any]], pop_train: dict[str, float],
                paired: dict[str, dict[str, float]]) -> None:
    order = {name: i for i, name in enumerate(SETTINGS)}
    rows = sorted(rows, key=lambda r: order.get(r["setting"], len(order)))
    rows = [{**r, "pop_train_hr1": pop_train.get(r["setting"]), **paired.get(r["setting"], {}),
             **pop_agreement(r, reference["pop"])} for r in rows]
    cols = ["setting", "train_samples", "steps", "train_min", "score_min", "loss_first", "loss_last", "train_hr1",
            "pop_train_hr1", "valid_hr1", "test_hr1", "p_vs_zeroshot", "p_vs_pop", "pops_pick", "hr1_off_pops_pick",
            "test_hr1_reloaded",
            "test_hr1_zeroed_slots", "projected_norm", "token_norm", "gate_entropy", "gate_mi", "gate_mi_init", "note"]
    table = [[r.get(c, "") if r.get(c) is not None else "" for c in cols] for r in rows]
    for k, v in reference.items():
        line = dict.fromkeys(cols, "") | {"setting": f"({k})", "valid_hr1": round(v["valid_hr1"], 3), "test_hr1": round(v["test_hr1"], 3),
                                          "note": "reference, same candidates"}
        table.append([line[c] for c in cols])
    print(tabulate(table, headers=cols, tablefmt="github", floatfmt=".3f"))


def reference_methods(session: Session, seed: int) -> dict[str, Any]:
    """pop and random fitted on the split, for scale."""
    split, cands = session.prepare(seed)
    out = {}
    for name in ("pop", "random"):
        cls = METHODS.get(name).obj
        m = cls(session.context(name, seed, session.plan.out / "work" / "levers" / name), **cls.resolve(dict(cls.defaults)))
        m.fit(split.train, cands.valid)
        out[name] = m
    return out


def reference_rows(session: Session, seed: int, methods: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """pop and random on the same validation and test candidates (valid_hr1, test_hr1, test_hits)."""
    _, cands = session.prepare(seed)
    return {name: {"valid_hr1": hr1(m.score(cands.valid), cands.valid.target_index), **test_outcomes(m, cands.test)}
            for name, m in methods.items()}


def pop_on_probes(session: Session, seed: int, rows: list[dict[str, Any]], pop: Any) -> dict[str, float]:
    """pop's HR@1 on each row's train probe: the bar for train_hr1 (pop counts the whole training
    split, these windows' targets included, so it is a generous bar)."""
    split, cands = session.prepare(seed)
    by_budget: dict[int, float] = {}  # the probe depends only on the number of windows drawn
    out = {}
    for r in rows:
        if r.get("train_hr1") is None:
            continue
        params = resolved_params(r["method"], r["overrides"])
        if params["train_samples"] not in by_budget:
            probe = train_probe(split.train, cands.test, params, seed, session)
            by_budget[params["train_samples"]] = hr1(pop.score(probe), probe.target_index)
        out[r["setting"]] = by_budget[params["train_samples"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), help="run these settings (default: all)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (candidates, SASRec artifact)")
    parser.add_argument("--log", type=Path, default=None, help="JSON lines of finished settings (default results/levers/<dataset>.jsonl)")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--probe-saved", action="store_true",
                        help="add train_hr1 to finished rows that lack it, from their saved adapters (no training)")
    parser.add_argument("--hits", nargs="+", metavar="NAME", choices=list(SETTINGS),
                        help="add per-user test hits and first choices (for the paired p and pop columns) to these finished rows, from their "
                             "saved adapters (zero-shot rows are rescored); must reproduce the recorded test HR@1")
    parser.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"), choices=list(SETTINGS),
                        help="also print the paired test between two settings' test hits (repeatable)")
    parser.add_argument("--pooled", nargs="+", default=[], metavar="NAME", choices=list(SETTINGS),
                        help="also print these settings' test hits over --seeds pooled, against pop's and the untrained "
                             "backbone's on the same users")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds --pooled and --pair pool (default: --seed)")
    parser.add_argument("--probe-runs", metavar="PROFILE",
                        help="also add rows 'run:METHOD:PROFILE' probing run_bench.py's saved tallrec/llara/ilora "
                             "adapters (results/work/<dataset>/METHOD/seed<seed>/adapter) trained under PROFILE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    log_path = args.log or args.out / "levers" / f"{args.dataset}.jsonl"
    done = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    session = Session(RunPlan(dataset=args.dataset, out=args.out, seeds=[args.seed], command="bench/llm_levers.py",
                              replace_records=False))

    def save() -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in done))

    if args.probe_saved:
        for row in done:
            folder = work_dir(args.out, row["setting"], row["seed"]) / "adapter"
            if row["seed"] == args.seed and "train_hr1" not in row and row["setting"] in SETTINGS and folder.exists():
                row.update(probe_saved(session, row["method"], row["overrides"], args.seed, folder))
                print(json.dumps(row), flush=True)
                save()
    if args.probe_runs:
        for method_name in ("tallrec", "llara", "ilora"):
            name = f"run:{method_name}:{args.probe_runs}"
            folder = args.out / "work" / args.dataset / method_name / f"seed{args.seed}" / "adapter"
            if any(r["setting"] == name and r["seed"] == args.seed for r in done) or not folder.exists():
                continue
            overrides = {"profile": args.probe_runs}
            row = {"setting": name, "method": method_name, "overrides": overrides, "seed": args.seed,
                   "note": f"run_bench.py --profile {args.probe_runs}'s saved adapter (its record has the rest)",
                   **probe_saved(session, method_name, overrides, args.seed, folder)}
            done.append(row)
            print(json.dumps(row), flush=True)
            save()
    for row in done:
        if args.hits and row["setting"] in args.hits and row["seed"] == args.seed and lacks_outcomes(row):
            row.update(saved_hits(session, row, work_dir(args.out, row["setting"], row["seed"]) / "adapter"))
            print(f"{row['setting']}: test hits (and gate columns, if gated) added", flush=True)
            save()
    probing = args.probe_saved or args.probe_runs or args.hits
    if not args.table_only and (args.only or not probing):  # probing alone trains nothing
        for name in args.only or list(SETTINGS):
            if any(r["setting"] == name and r["seed"] == args.seed for r in done):
                print(f"{name}: done, in {log_path}")
                continue
            print(f"{name}: {SETTINGS[name][2]}", flush=True)
            done.append(run_setting(session, name, args.seed))
            save()
            print(json.dumps(done[-1]), flush=True)
    rows = [r for r in done if r["seed"] == args.seed]
    pairs = pair_lines(done, args.pair, args.seeds or [args.seed])  # before the reference scoring: a bad pair fails at once
    refs = reference_methods(session, args.seed)
    reference = reference_rows(session, args.seed, refs)
    print_table(rows, reference, pop_on_probes(session, args.seed, rows, refs["pop"]),
                paired_columns(rows, reference["pop"]["test_hits"]))
    for line in pairs:
        print(line)
    if args.pooled:
        seeds = args.seeds or [args.seed]
        pop_hits = {s: reference["pop"]["test_hits"] if s == args.seed else  # scored above for the table
                    reference_rows(session, s, {"pop": reference_methods(session, s)["pop"]})["pop"]["test_hits"]
                    for s in seeds}
        for line in pooled_lines(done, args.pooled, seeds, pop_hits):
            print(line)


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"llm_levers: {e}")
