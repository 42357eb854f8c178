#!/usr/bin/env python
"""Does torch.compile speed up LLM training on this CPU? (issue 8's throughput lever)

    python bench/llm_compile.py [--llm smollm2] [--batches 6] [--batch 4] [--mode default]

Trains tallrec's LoRA (rank 8, all seven projections) on real ml-100k training windows, micro-batches
of --batch, each a different length as the length-bucketed training loop makes them. Eager first:
one warm-up step, then every batch timed (forward + backward, `answer_loss` as in training). Then the
same model compiled in place (`nn.Module.compile`, dynamic shapes) runs the batches twice: the first
pass pays the compilation, the second is the steady state. Prints one table: eager and compiled
median step, their ratio, the one-off compile seconds and the number of steps after which compiling
has paid for itself (none when compiled is not faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.runner import RunPlan, Session  # noqa: E402
from methods.llm.adapters import LoraSpec  # noqa: E402
from methods.llm.batches import length_buckets  # noqa: E402
from methods.llm.prompts import domain_for  # noqa: E402
from methods.llm.recommender import Design, LLMRecommender  # noqa: E402
from methods.llm.training import estimate_step_seconds, training_items  # noqa: E402


def timed_pass(rec: LLMRecommender, groups: list[list]) -> list[float]:
    """Seconds of forward + backward for each micro-batch, timed as the training loop's estimate is."""
    return [estimate_step_seconds(rec, items, len(items)) for items in groups]


def real_micro_batches(llm: str, dataset: str, n: int, batch: int) -> tuple[LLMRecommender, list[list], list[int]]:
    """tallrec's LoRA recommender and `n` real training micro-batches of `batch` windows, length-bucketed as
    the training loop makes them and spread over the length range as an epoch sees it; and each one's
    padded token count. Shared with bench/llm_bf16.py, so both time the same batches."""
    torch.manual_seed(0)
    session = Session(RunPlan(dataset=dataset, out=Path("/tmp/ilora-bench-compile"), device="cpu"))
    split, cands = session.prepare(0)
    items = training_items(split.train, session.data.n_items, cands.valid.candidates.shape[1], batch * n * 4, 0)
    rec = LLMRecommender(llm, "cpu", session.data.titles, domain_for(session.data.name), Design(lora=LoraSpec()), seed=0)
    lengths = [len(rec.encode(it.history, it.candidates, False, it.target).ids) for it in items]
    buckets = sorted(length_buckets(lengths, batch, np.random.default_rng(0)), key=lambda b: lengths[b[0]])
    chosen = buckets[:: max(1, len(buckets) // n)][:n]
    return rec, [[items[i] for i in b] for b in chosen], [max(lengths[i] for i in b) for b in chosen]


def add_micro_batch_args(parser: argparse.ArgumentParser, llm: str) -> None:
    """The options `real_micro_batches` takes, for each script that times its batches."""
    parser.add_argument("--llm", default=llm)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--batches", type=int, default=6, help="distinct micro-batches timed")
    parser.add_argument("--batch", type=int, default=4, help="training micro-batch (the cpu profiles use 4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_micro_batch_args(parser, llm="smollm2")
    parser.add_argument("--mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune)")
    args = parser.parse_args()
    rec, groups, tokens = real_micro_batches(args.llm, args.dataset, args.batches, args.batch)
    timed_pass(rec, groups[:1])  # warm-up
    eager = timed_pass(rec, groups)
    rec.model.compile(dynamic=True, mode=args.mode)
    first = timed_pass(rec, groups)
    steady = timed_pass(rec, groups)
    m_eager, m_steady = statistics.median(eager), statistics.median(steady)
    compile_seconds = sum(first) - sum(steady)
    gain = m_eager - m_steady
    rows = [
        ["eager step (median)", f"{m_eager:.2f} s", f"{len(groups)} micro-batches of {args.batch}, ~{min(tokens)}-{max(tokens)} tokens"],
        ["compiled step (median, 2nd pass)", f"{m_steady:.2f} s", f"torch.compile(dynamic=True, mode={args.mode!r})"],
        ["compiled / eager", f"{m_steady / m_eager:.3f}", "< 1: compiled is faster"],
        ["one-off compile cost", f"{compile_seconds:.0f} s", "first compiled pass minus the second"],
        ["break-even", f"{compile_seconds / gain:.0f} micro-batches" if gain > 0 else "never", "micro-batches before compiling pays"],
    ]
    print(tabulate(rows, headers=["measure", "value", "detail"], tablefmt="github"))
    print(f"\nbackbone {args.llm}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
