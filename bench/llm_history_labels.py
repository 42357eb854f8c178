#!/usr/bin/env python
"""Does the history-loss ablation label what it means to, on the real backbones?

    python bench/llm_history_labels.py [--windows 300] [--dataset ml-100k] [--llm smollm2 gemma3-270m]

`history_loss` (the trained LLM methods' option, off by default) labels each history title's tokens in the prompt, found by
searching for the title's answer tokens (`methods/llm/batches.py: title_positions`); a title whose tokens
merged with their neighbours in the whole-prompt tokenisation is partly or wholly left out. The loss then
runs the backbone's LM head on the gathered hidden states (`LLMRecommender.lm_logits`). Prints one table
per run: for each backbone and prompt (the paper's, and the history-only ablation), the share of
history-title tokens labelled over the first --windows training windows of seed 0, and the largest
difference between lm_logits on the gathered hidden states and the model's own logits at the same positions
(0 when the final norm and any soft cap are applied as the model applies them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.runner import RunPlan, Session  # noqa: E402
from methods.llm.adapters import LoraSpec  # noqa: E402
from methods.llm.batches import IGNORE  # noqa: E402
from methods.llm.prompts import domain_for  # noqa: E402
from methods.llm.recommender import Design, LLMRecommender  # noqa: E402
from methods.llm.training import training_items  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--llm", nargs="+", default=["smollm2", "gemma3-270m"])
    args = parser.parse_args()
    session = Session(RunPlan(dataset=args.dataset, out=Path("/tmp/ilora-bench-history-labels"), device="cpu"))
    split, cands = session.prepare(0)
    items = training_items(split.train, session.data.n_items, cands.valid.candidates.shape[1], args.windows, 0)
    rows = []
    for llm in args.llm:
        rec = LLMRecommender(llm, "cpu", session.data.titles, domain_for(args.dataset), Design(lora=LoraSpec()), None)
        rec.train(False)
        for prompt, listed in (("paper", True), ("history-only", False)):
            rec.list_candidates = listed
            encoded = [rec.encode(it.history, it.candidates, False, it.target, history_labels=True) for it in items]
            wanted = sum(len(rec.piece_ids(" " + session.data.titles[i], False)) for it in items for i in it.history)
            labelled = sum(len(e.extra_labels) for e in encoded)
            batch = rec.collate(encoded[:2])
            with torch.no_grad():
                out, _ = rec.forward(batch, [it.history for it in items[:2]], output_hidden_states=True)
                r, c = (batch.labels != IGNORE).nonzero(as_tuple=True)
                gap = (rec.lm_logits(out.hidden_states[-1][r, c - 1]) - out.logits[r, c - 1]).abs().max()
            rows.append([llm, prompt, len(items), f"{labelled}/{wanted}", f"{labelled / wanted:.3f}", f"{float(gap):.2g}"])
    print(tabulate(rows, headers=["backbone", "prompt", "windows", "title tokens labelled", "share",
                                  "max |lm_logits - model logits|"], tablefmt="github"))


if __name__ == "__main__":
    main()
