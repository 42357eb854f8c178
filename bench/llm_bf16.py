#!/usr/bin/env python
"""Does bf16 autocast speed up LLM training on this CPU, and what does it do to the gradients? (issue 8's
throughput lever)

    python bench/llm_bf16.py [--llm gemma3-270m] [--batches 6] [--batch 4] [--repeats 2]

CPUs with bf16 dot-product instructions (avx512_bf16 on AMD Zen 4 and Intel Cooper Lake on, AMX on
Sapphire Rapids) run bf16 matmuls at up to twice fp32's rate; `torch.autocast("cpu", bfloat16)` uses
them for the linear layers while weights, LoRA parameters and the optimiser state stay fp32 (the
context the `cpu_bf16` knob trains in, `training.cpu_bf16_autocast`). On the
same real micro-batches as bench/llm_compile.py (tallrec's LoRA on ml-100k training windows), each
batch's forward + backward is timed in fp32 and under autocast, alternating (fp32, bf16, fp32, ...)
`--repeats` times so that drift in the machine's speed falls on both alike. Then, with dropout off, each
batch's loss and LoRA gradient are computed both ways: the loss difference and the cosine between the two
gradients say how far bf16 moves a training step. Prints one table; `bench/llm_levers.py`'s `cpu_bf16`
rows say what it does to a whole training's ranking.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_compile import add_micro_batch_args, real_micro_batches  # noqa: E402  (bench/ is the script's own folder)
from methods.llm.recommender import LLMRecommender  # noqa: E402
from methods.llm.training import answer_loss, cpu_bf16_autocast as autocast, estimate_step_seconds  # noqa: E402


def loss_and_grad(rec: LLMRecommender, items: list, bf16: bool) -> tuple[float, torch.Tensor]:
    """One micro-batch's answer loss and its gradient over every LoRA parameter (flattened), dropout off."""
    rec.train(False)
    with autocast(bf16):
        loss = answer_loss(rec, items, False)
    loss.backward()
    params = list(rec.trainable().values())
    grad = torch.cat([p.grad.detach().flatten().clone() for p in params])
    for p in params:
        p.grad = None
    return float(loss), grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_micro_batch_args(parser, llm="gemma3-270m")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the batches, each way")
    args = parser.parse_args()
    rec, groups, tokens = real_micro_batches(args.llm, args.dataset, args.batches, args.batch)
    for bf16 in (False, True):  # warm-up: first calls pay for allocation and kernel selection
        with autocast(bf16):
            estimate_step_seconds(rec, groups[0], len(groups[0]))
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for items in groups:
            for bf16 in (False, True):
                with autocast(bf16):
                    times[bf16].append(estimate_step_seconds(rec, items, len(items)))
    loss_gaps, cosines, norm_ratios = [], [], []
    for items in groups:
        loss32, grad32 = loss_and_grad(rec, items, False)
        loss16, grad16 = loss_and_grad(rec, items, True)
        loss_gaps.append(abs(loss16 - loss32))
        cosines.append(float(torch.nn.functional.cosine_similarity(grad32, grad16, dim=0)))
        norm_ratios.append(float(grad16.norm() / grad32.norm()))
    m32, m16 = statistics.median(times[False]), statistics.median(times[True])
    rows = [
        ["fp32 step (median)", f"{m32:.2f} s", f"{len(times[False])} forward + backward passes: {len(groups)} micro-batches of "
                                                f"{args.batch}, ~{min(tokens)}-{max(tokens)} tokens, x {args.repeats}"],
        ["bf16 autocast step (median)", f"{m16:.2f} s", "the same passes, alternating with fp32's"],
        ["bf16 / fp32", f"{m16 / m32:.3f}", "< 1: bf16 is faster"],
        ["|loss bf16 - loss fp32| (max)", f"{max(loss_gaps):.4f}", f"answer loss, dropout off; fp32 losses ~{loss32:.2f}"],
        ["gradient cosine (min)", f"{min(cosines):.4f}", "LoRA gradient under bf16 against fp32's, per micro-batch"],
        ["gradient norm ratio (range)", f"{min(norm_ratios):.3f}-{max(norm_ratios):.3f}", "bf16's norm / fp32's"],
    ]
    print(tabulate(rows, headers=["measure", "value", "detail"], tablefmt="github"))
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    isa = [f for f in ("avx512_bf16", "amx_bf16") if f in flags] or ["no bf16 instructions listed"]
    print(f"\nbackbone {args.llm}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads; {', '.join(isa)}")


if __name__ == "__main__":
    main()
