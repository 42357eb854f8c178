#!/usr/bin/env python
"""What does turning a training window into token ids cost, with and without the piece cache?

    python bench/llm_encode.py [--llm smollm2] [--windows 2000] [--dataset ml-100k]

A prompt is the paper's template around ~30 titles (10 history items, 20 candidates), and every
piece is tokenised on its own (`methods/llm/batches.py: encode`). Before the cache, every piece was
one tokenizer call; `piece_tokenizer` calls the tokenizer once per distinct piece. Both ways run
here side by side on the same real training windows (text and hybrid prompts, with the answer),
from a cold cache, and must give identical ids. The training loop encodes every window in each
epoch's batches, plus once up front as text to bucket them by length. Prints one table: ms per
window each way, the speed-up, and the time for all the seed's training windows at that rate (an
extrapolation from --windows, labelled as such).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.runner import RunPlan, Session  # noqa: E402
from methods.llm.backbone import resolve_llm  # noqa: E402
from methods.llm.batches import encode, piece_tokenizer  # noqa: E402
from methods.llm.prompts import answer_text, build_prompt, domain_for  # noqa: E402
from methods.llm.training import training_items  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--dataset", default="ml-100k")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_llm(args.llm))
    session = Session(RunPlan(dataset=args.dataset, out=Path("/tmp/ilora-bench-llm-encode"), device="cpu"))
    split, cands = session.prepare(0)
    data = session.data
    domain = domain_for(data.name)
    items = training_items(split.train, data.n_items, cands.valid.candidates.shape[1], args.windows, 0)
    per_call = lambda text, special: tokenizer(text, add_special_tokens=special)["input_ids"]  # noqa: E731  (before the cache)

    rows = []
    for hybrid in (False, True):
        prompts = [(build_prompt(tuple(it.history), tuple(it.candidates), data.titles, domain, hybrid),
                    answer_text(data.titles[it.target])) for it in items]
        timings, encoded = {}, {}
        for name, piece_ids in (("per call", per_call), ("cached", piece_tokenizer(tokenizer))):
            t0 = time.perf_counter()
            encoded[name] = [encode(piece_ids, tokenizer.pad_token_id, pieces, answer) for pieces, answer in prompts]
            timings[name] = (time.perf_counter() - t0) / len(prompts)
        if encoded["per call"] != encoded["cached"]:
            raise SystemExit("llm_encode: error: the cached ids differ from the tokenizer's")
        rows.append(["hybrid" if hybrid else "text", len(prompts), f"{timings['per call'] * 1e3:.2f}",
                     f"{timings['cached'] * 1e3:.3f}", f"{timings['per call'] / timings['cached']:.1f}x",
                     f"{timings['per call'] * len(split.train):.0f}", f"{timings['cached'] * len(split.train):.1f}"])
    print(f"{args.llm} tokenizer, {args.dataset} seed 0, {args.windows} training windows (ids identical both ways)")
    print(tabulate(rows, headers=["prompt", "windows", "ms/window per call", "ms/window cached", "speed-up",
                                  f"s for all {len(split.train)} (per call, extrap.)", "s for all (cached, extrap.)"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
