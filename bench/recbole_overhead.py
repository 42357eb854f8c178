#!/usr/bin/env python
"""Seconds per training epoch: our RecBole adapter vs RecBole's own training loop, side by side.

    python bench/recbole_overhead.py                      # ml-100k, gru4rec, caser, sasrec
    python bench/recbole_overhead.py --models sasrec --epochs 3 --rounds 3

Both sides read the identical atomic files (the ones the adapter writes into its work folder),
build the same RecBole model with the same parameters, batch size and seed, and train the same
number of epochs in this one process:
- adapter: `RecBoleMethod.fit` -- RecBole's `Trainer._train_epoch`, then scoring our validation
  candidates and keeping the best weights -- timed per epoch by the adapter itself;
- RecBole: Config -> create_dataset -> data_preparation -> model -> `Trainer.fit(train, valid,
  saved=False)`, which evaluates on the same validation samples (full ranking) after every
  epoch; its wall time divided by the epochs.
Setup (reading the files, building the model) and an untimed warm-up are outside both timings. Both sides run in every
round, in alternating order (adapter first, then RecBole first, ...), so that neither order nor a
change in machine load favours one side; the table shows medians over rounds. The issue's bar: ratio <= 1.05.

On a machine shared with other torch processes, pass `--threads 1`: two processes that each run
one OpenMP thread per core slow each other down by an order of magnitude, far beyond the effect
measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.runner import RunPlan, Session  # noqa: E402
from methods.base import METHODS  # noqa: E402


def adapter_epoch_seconds(session: Session, name: str, params: dict, work_dir: Path) -> tuple[float, object]:
    split, cands = session.prepare(0)
    method = METHODS.get(name).obj(session.context(name, 0, work_dir), **params)
    method.fit(split.train, cands.valid)
    seconds = [c["seconds"] for c in method.curve]
    assert len(seconds) == params["epochs"], "early stopping cut the adapter's run short"
    return sum(seconds) / len(seconds), method


def recbole_epoch_seconds(method, params: dict, work_dir: Path) -> float:
    """RecBole's own fit() on the atomic files the adapter wrote."""
    import contextlib

    import torch
    from recbole.data import create_dataset, data_preparation

    from harness import compat
    from methods.recbole_models import ATOMIC_NAME, recbole_config_dict

    model_cls = method.recbole_class()
    data_dir = method.ctx.work_dir / "recbole"
    config = compat.make_config(
        model_cls, ATOMIC_NAME, recbole_config_dict(params, data_dir, work_dir, method.max_len, method.ctx.seed)
    )
    numerics = compat.flush_denormal() if method.flush_denormals else contextlib.nullcontext()
    with compat.quiet_recbole(), numerics:
        dataset = create_dataset(config)
        train_data, valid_data, _ = data_preparation(config, dataset)
        torch.manual_seed(method.ctx.seed)
        model = model_cls(config, dataset)
        trainer = compat.make_trainer(config, model, work_dir / "log_tensorboard")
        t0 = time.perf_counter()
        trainer.fit(train_data, valid_data, verbose=False, saved=False)
        elapsed = time.perf_counter() - t0
        trainer.tensorboard.close()
    return elapsed / params["epochs"]


def side_by_side(session: Session, name: str, params: dict, rounds: int, tmp: Path) -> tuple[list[float], list[float]]:
    """Seconds per epoch of each side, one value per round; the side that goes first alternates.

    An untimed one-epoch adapter run first writes the atomic files that RecBole reads in every
    round (every adapter run writes the same) and pays the process's one-time costs, which
    would otherwise land on whichever side runs first.
    """
    _, warm_up = adapter_epoch_seconds(session, name, {**params, "epochs": 1}, tmp / f"{name}-warm-up")
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        for side in ("adapter", "recbole") if r % 2 == 0 else ("recbole", "adapter"):
            if side == "adapter":
                ours.append(adapter_epoch_seconds(session, name, params, tmp / f"{name}-adapter-{r}")[0])
            else:
                theirs.append(recbole_epoch_seconds(warm_up, params, tmp / f"{name}-recbole-{r}"))
        print(f"  {name} round {r}: adapter {ours[-1]:.2f} s/epoch, RecBole {theirs[-1]:.2f} s/epoch", flush=True)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="gru4rec,caser,sasrec")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round and side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="recbole-overhead-") as tmp:
        session = Session(RunPlan(dataset=args.dataset, out=Path(tmp), device="cpu"))
        split, _ = session.prepare(0)
        load_before = os.getloadavg()[0]
        rows = []
        for name in args.models.split(","):
            # never stop early: both sides must train exactly `epochs` epochs
            params = {**session.params_for(name), "epochs": args.epochs, "stopping_step": args.epochs + 1}
            ours, theirs = side_by_side(session, name, params, args.rounds, Path(tmp))
            a, b = statistics.median(ours), statistics.median(theirs)
            rows.append((name, params["train_batch_size"], f"{args.epochs} x {args.rounds}", a, b, a / b))
        load_after = os.getloadavg()[0]

    print(
        f"\n{args.dataset}, seed 0: {len(split.train)} training windows; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {load_before:.2f} before, {load_after:.2f} after\n"
    )
    print("| model | batch | epochs x rounds | adapter s/epoch | RecBole fit s/epoch | ratio |")
    print("|---|---|---|---|---|---|")
    for name, batch, runs, a, b, ratio in rows:
        print(f"| {name} | {batch} | {runs} | {a:.2f} | {b:.2f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
