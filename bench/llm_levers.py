#!/usr/bin/env python
"""Which settings make the LLM methods learn on a CPU? (issue 8's levers table)

    python bench/llm_levers.py [--only NAME ...] [--log results/levers/ml-100k.jsonl]

Each named setting below is one (method, parameter overrides) pair: it is trained exactly as
`run_bench.py` would train it (same Session, split, frozen candidates, SASRec artifact), then
scored by likelihood on the frozen VALIDATION and TEST candidates of seed 0. Generation is
skipped (it costs as much again and ranks no better here). For hybrid methods the table also shows
the projector's output norm next to the backbone's mean token-embedding norm, and HR@1 with the
item tokens zeroed, which says whether the model uses them at all.

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

from harness.evaluate import metrics, ranks_from_scores  # noqa: E402
from harness.records import atomic_write_text  # noqa: E402
from methods.base import METHODS  # noqa: E402
from harness.runner import RunPlan, Session  # noqa: E402

ATTENTION = "q_proj,k_proj,v_proj,o_proj"

# name -> (method, overrides, note). The cpu profile is 160 windows, 1 epoch, 4 x 2, lr 5e-4.
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
}


def hr1(scores: np.ndarray, target_index: np.ndarray) -> float:
    return metrics(ranks_from_scores(scores, target_index))["HR@1"]


def projector_norms(rec: Any) -> dict[str, float]:
    """Mean L2 norm of the projected item embeddings vs the backbone's token embeddings."""
    with torch.no_grad():
        projected = rec.extra["projector"](rec.item_table).norm(dim=-1).mean().item()
        tokens = rec.model.get_input_embeddings().weight.float().norm(dim=-1).mean().item()
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


def run_setting(session: Session, name: str, seed: int) -> dict[str, Any]:
    method_name, overrides, note = SETTINGS[name]
    cls = METHODS.get(method_name).obj
    params = cls.resolve({**cls.defaults, **overrides})
    split, cands = session.prepare(seed)
    work_dir = session.plan.out / "work" / "levers" / name
    method = cls(session.context(method_name, seed, work_dir), **params)
    session.require("sasrec", seed)  # trained (or loaded) before the clock starts, as in a real run
    t0 = time.perf_counter()
    method.fit(split.train, cands.valid)
    train_minutes = (time.perf_counter() - t0) / 60
    t1 = time.perf_counter()
    extra = method.record_extra()
    row: dict[str, Any] = {
        "setting": name, "method": method_name, "overrides": overrides, "note": note, "seed": seed,
        "train_samples": extra.get("train_samples"), "steps": extra.get("train_steps"), "train_min": round(train_minutes, 1),
        "loss_first": extra.get("loss_first"), "loss_last": extra.get("loss_last"),
        "valid_hr1": hr1(method.score(cands.valid), cands.valid.target_index),
        "test_hr1": hr1(method.score(cands.test), cands.test.target_index),
    }
    row["score_min"] = round((time.perf_counter() - t1) / 60, 1)
    if method.design().hybrid:
        row.update(projector_norms(method.recommender()))
        row["test_hr1_zeroed_slots"] = zeroed_slots_hr1(method, cands.test)
    return row


def print_table(rows: list[dict[str, Any]], reference: dict[str, float]) -> None:
    order = {name: i for i, name in enumerate(SETTINGS)}
    rows = sorted(rows, key=lambda r: order.get(r["setting"], len(order)))
    cols = ["setting", "train_samples", "steps", "train_min", "score_min", "loss_first", "loss_last", "valid_hr1",
            "test_hr1", "test_hr1_zeroed_slots", "projected_norm", "token_norm", "note"]
    table = [[r.get(c, "") if r.get(c) is not None else "" for c in cols] for r in rows]
    table += [[f"({k})", "", "", "", "", "", "", round(v[0], 3), round(v[1], 3), "", "", "", "reference, same candidates"]
              for k, v in reference.items()]
    print(tabulate(table, headers=cols, tablefmt="github", floatfmt=".3f"))


def reference_rows(session: Session, seed: int) -> dict[str, tuple[float, float]]:
    """pop and random on the same validation and test candidates, for scale."""
    split, cands = session.prepare(seed)
    out = {}
    for name in ("pop", "random"):
        cls = METHODS.get(name).obj
        m = cls(session.context(name, seed, session.plan.out / "work" / "levers" / name), **cls.resolve(dict(cls.defaults)))
        m.fit(split.train, cands.valid)
        out[name] = (hr1(m.score(cands.valid), cands.valid.target_index), hr1(m.score(cands.test), cands.test.target_index))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), help="run these settings (default: all)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (candidates, SASRec artifact)")
    parser.add_argument("--log", type=Path, default=None, help="JSON lines of finished settings (default results/levers/<dataset>.jsonl)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    log_path = args.log or args.out / "levers" / f"{args.dataset}.jsonl"
    done = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    session = Session(RunPlan(dataset=args.dataset, out=args.out, seeds=[args.seed], command="bench/llm_levers.py"))
    if not args.table_only:
        for name in args.only or list(SETTINGS):
            if any(r["setting"] == name and r["seed"] == args.seed for r in done):
                print(f"{name}: done, in {log_path}")
                continue
            print(f"{name}: {SETTINGS[name][2]}", flush=True)
            done.append(run_setting(session, name, args.seed))
            log_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in done))
            print(json.dumps(done[-1]), flush=True)
    print_table([r for r in done if r["seed"] == args.seed], reference_rows(session, args.seed))


if __name__ == "__main__":
    main()
