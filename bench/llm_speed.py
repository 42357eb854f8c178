#!/usr/bin/env python
"""Measured ratios of the LLM methods, side by side in one process (issue 4's speed budget).

    python bench/llm_speed.py [--llm smollm2] [--batch 4] [--repeats 5] [--samples 4]

Prints one table:
- iLoRA / LoRA training-step time at the same rank, batch and prompts (target <= 1.10), measured
  interleaved (LoRA, iLoRA, LoRA, ...) and compared by median;
- LoRA training step with logits computed for the answer's columns only (as training does) vs for
  every position: what skipping the LM head on the prompt saves;
- trainable parameters, exact counts: text-only iLoRA vs tallrec, and iLoRA vs LLaRA (<= 1.01);
- shared-prefix likelihood scoring vs 20 separate full prompts: speed-up (>= 5x) and the largest
  absolute score difference;
- LoRA training throughput as model FLOP/s over this machine's fp32 matmul peak, both measured
  here, on the every-position step. Model FLOPs of a step = 4 x (matmul parameters) x real tokens
  (forward 2N, backward to the activations 2N; the frozen base needs no weight gradients) +
  attention 8 x layers x T^2 x (heads x head dim) per row; the peak is the best of repeated 2048^3 fp32 matmuls, measured before and after.
Uses ml-100k's validation prompts (20 candidates) and a random stand-in for SASRec (d = 64),
which costs the same as the real one inside the LLM.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.runner import RunPlan, Session  # noqa: E402
from methods.llm.adapters import LoraSpec  # noqa: E402
from methods.llm.prompts import domain_for  # noqa: E402
from methods.llm.recommender import Design, LLMRecommender  # noqa: E402
from methods.llm.scoring import likelihood, likelihood_uncached  # noqa: E402
from methods.llm.training import TrainItem, estimate_step_seconds  # noqa: E402
from stand_ins import RandomSequenceModel  # noqa: E402


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def model_flops(rec: LLMRecommender, batch) -> float:
    cfg = rec.model.config
    base = rec.model.get_base_model() if hasattr(rec.model, "get_base_model") else rec.model
    matmul_params = sum(p.numel() for n, p in base.named_parameters() if p.dim() == 2 and "embed_tokens" not in n)
    if cfg.tie_word_embeddings:
        matmul_params += base.get_input_embeddings().weight.numel()  # the LM head reuses them
    tokens = int(batch.attention_mask.sum())
    lengths = batch.attention_mask.sum(1).double()
    # QK^T and AV run at the query heads' width, which is not hidden_size for every model (Gemma-3-270M:
    # 4 heads x 256 = 1024 against hidden 640); head_dim is None or absent where it is hidden / heads.
    width = cfg.num_attention_heads * (getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    attention = 8 * cfg.num_hidden_layers * width * float((lengths**2).sum())
    return 4 * matmul_params * tokens + attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--batch", type=int, default=4, help="training micro-batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model")
    parser.add_argument("--samples", type=int, default=4, help="prompts for the likelihood comparison")
    parser.add_argument("--dataset", default="ml-100k", help="whose validation prompts to use")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    session = Session(RunPlan(dataset=args.dataset, out=Path("/tmp/ilora-bench-speed"), device="cpu"))
    _, cands = session.prepare(0)
    valid = cands.valid
    seq = RandomSequenceModel(session.data.n_items)
    titles = session.data.titles

    def build(design: Design) -> LLMRecommender:
        return LLMRecommender(args.llm, "cpu", titles, domain_for(session.data.name), design, seq, seed=0)

    lora = build(Design(lora=LoraSpec()))
    ilora_text = build(Design(lora=LoraSpec(experts=4), gate_input="sequence"))
    items = [TrainItem(valid.histories[i], tuple(int(c) for c in valid.candidates[i]), int(valid.targets[i]))
             for i in range(args.batch)]
    step = lambda rec, **kw: estimate_step_seconds(rec, items, args.batch, **kw)  # noqa: E731  (training mode inside)
    peak_before = matmul_peak()  # measured before and after the model work; the higher counts
    step(lora), step(ilora_text), step(lora, all_logits=True)  # warm-up
    t_lora, t_ilora, t_all = [], [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits all three alike
        t_lora.append(step(lora))
        t_ilora.append(step(ilora_text))
        t_all.append(step(lora, all_logits=True))
    m_lora, m_ilora, m_all = (statistics.median(t) for t in (t_lora, t_ilora, t_all))

    llara = build(Design(lora=LoraSpec(), hybrid=True))
    ilora = build(Design(lora=LoraSpec(experts=4), hybrid=True))
    n = {k: r.trainable_count() for k, r in
         {"tallrec": lora, "ilora_text": ilora_text, "llara": llara, "ilora": ilora}.items()}
    del llara, ilora

    lora.train(False)
    sub_h = valid.histories[: args.samples]
    sub_c = valid.candidates[: args.samples]
    likelihood(lora, sub_h[:1], sub_c[:1], 1)  # warm-up
    t0 = time.perf_counter()
    cached, _ = likelihood(lora, sub_h, sub_c, args.samples)
    t_cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = likelihood_uncached(lora, sub_h, sub_c, 4)
    t_full = time.perf_counter() - t0

    peak = max(peak_before, matmul_peak())
    batch = lora.collate([lora.encode(it.history, it.candidates, False, it.target) for it in items])
    flops = model_flops(lora, batch)  # counts the LM head on every position: the all-logits step's work
    tokens = int(batch.attention_mask.sum())
    rows_out = [
        ("iLoRA / LoRA training step (text-only, K=4, r=8, batch %d, %d tokens)" % (args.batch, tokens),
         f"{m_ilora / m_lora:.3f}", "<= 1.10", f"{m_lora:.2f} s vs {m_ilora:.2f} s (median of {args.repeats})"),
        ("LoRA training step, logits of the answer only / of every position", f"{m_lora / m_all:.3f}", "(report)",
         f"{m_lora:.2f} s vs {m_all:.2f} s (median of {args.repeats}; vocabulary {lora.model.config.vocab_size:,})"),
        ("trainable params: text-only iLoRA / tallrec", f"{n['ilora_text'] / n['tallrec']:.5f}", "<= 1.01",
         f"{n['ilora_text']:,} vs {n['tallrec']:,}"),
        ("trainable params: ilora / llara", f"{n['ilora'] / n['llara']:.5f}", "<= 1.01", f"{n['ilora']:,} vs {n['llara']:,}"),
        (f"likelihood: 20 separate prompts / shared prefix ({args.samples} samples x 20)", f"{t_full / t_cached:.2f}",
         ">= 5", f"{t_full:.2f} s vs {t_cached:.2f} s; max abs diff {np.abs(cached - full).max():.2e}"),
        ("LoRA training model FLOP/s / fp32 matmul peak (every position's logits)", f"{flops / m_all / peak:.3f}",
         "(report)", f"{flops / m_all / 1e9:.1f} vs {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)"),
    ]
    print(tabulate(rows_out, headers=("measure", "ratio", "target", "detail"), tablefmt="github", disable_numparse=True))
    print(f"\nbackbone {args.llm}; data {session.data.name}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
