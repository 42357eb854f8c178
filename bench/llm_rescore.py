#!/usr/bin/env python
"""Does likelihood mode's scoring rule hold the LLM rows back? (issue 8: a lever that costs no training)

    python bench/llm_rescore.py --profile cpu-long --llm gemma3-270m --seed 3

Likelihood mode ranks the candidates by log P(title | prompt), summed over the title's tokens
(`methods/llm/scoring.py`), so every extra token of a long title costs it probability whatever the
user likes; multiple-choice LLM evaluations often divide by the length instead. This script rescores
the adapters a `run_bench.py` run saved (results/work/<dataset>/<method>/seed<seed>/adapter, and
llm-zeroshot's bare backbone) on that seed's frozen validation and test candidates, once, keeping
each candidate's summed log-probability and its token count, and reports HR@1 under both rules,
with popularity on the same candidates. Pick a rule on validation, read it on test.

The summed rule must reproduce the run's recorded likelihood rank of every test sample exactly;
otherwise the saved adapter is not the one its record scored (a later run with other parameters
reuses the folder) and the script stops. Finished methods are appended to
results/levers/rescore-<dataset>.jsonl, so a killed run resumes and `--table-only` reprints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import UserError  # noqa: E402
from harness.evaluate import ranks_from_scores  # noqa: E402
from harness.records import atomic_write_text, config_hash  # noqa: E402
from harness.registry import unknown_name_message  # noqa: E402
from harness.report.stats import paired_test  # noqa: E402
from harness.runner import RunPlan, Session  # noqa: E402
from methods.base import METHODS  # noqa: E402

LLM_METHODS = ("llm-zeroshot", "tallrec", "llara", "ilora")
RULES = ("sum", "mean")  # log-probability of the title, summed over its tokens / divided by their number


def rescore(session: Session, name: str, seed: int) -> dict[str, Any]:
    """Per rule and part, HR@1 and the per-sample hits; checks the sum rule against the record."""
    from methods.llm.prompts import answer_text
    from methods.llm.scoring import likelihood

    params = session.params_for(name)
    run_hash = config_hash(session.config(name, params, seed))
    path = session.store.path(session.data.name, name, run_hash)
    if not session.store.finished(session.data.name, name, run_hash):
        raise UserError(f"{name} seed {seed}: no run record {path}; run run_bench.py with the same options first")
    recorded = [s["rank"]["likelihood"] for s in session.store.samples_at(path)]
    method = METHODS.get(name).obj(session.context(name, seed, session.work_dir(name, seed)), **params)
    rec = method.recommender()
    if method.trains:
        folder = session.work_dir(name, seed) / "adapter"
        if not folder.exists():
            raise UserError(f"{name} seed {seed}: no saved adapter {folder} (results/work is not committed; rerun with --force)")
        rec.load(folder)
    _, cands = session.prepare(seed)
    row: dict[str, Any] = {"method": name, "seed": seed, "params": params, "record": path.name}
    for part, samples in (("valid", cands.valid), ("test", cands.test)):
        logp, _ = likelihood(rec, samples.histories, samples.candidates, method.settings["score_batch"])
        length = {int(i): len(rec.piece_ids(answer_text(rec.titles[int(i)]), False)) for i in np.unique(samples.candidates)}
        tokens = np.vectorize(length.__getitem__)(samples.candidates)
        ranks = {rule: ranks_from_scores(scores, samples.target_index) for rule, scores in zip(RULES, (logp, logp / tokens))}
        if part == "test" and ranks["sum"].tolist() != recorded:
            raise UserError(f"{name} seed {seed}: the saved adapter's test ranks differ from {path}'s; it is "
                            f"not the adapter that record scored (its run_bench.py command with --force retrains it)")
        for rule, r in ranks.items():
            row[f"{part}_{rule}_hits"] = (r == 1).astype(int).tolist()
            row[f"{part}_{rule}_hr1"] = float(np.mean(r == 1))
        row[f"{part}_mean_title_tokens_of_target"] = float(np.mean(tokens[np.arange(len(tokens)), samples.target_index]))
        row[f"{part}_mean_title_tokens"] = float(tokens.mean())
    return row


def pop_hits(session: Session, seed: int) -> dict[str, list[int]]:
    pop = METHODS.get("pop").obj(session.context("pop", seed, session.work_dir("pop", seed)), **session.params_for("pop"))
    split, cands = session.prepare(seed)
    pop.fit(split.train, cands.valid)
    return {part: (ranks_from_scores(pop.score(s), s.target_index) == 1).astype(int).tolist()
            for part, s in (("valid", cands.valid), ("test", cands.test))}


def print_table(rows: list[dict[str, Any]], pop: dict[str, list[int]]) -> None:
    table = []
    for r in rows:
        s, m = (np.array(r[f"test_{rule}_hits"]) for rule in RULES)
        table.append([r["method"], f"{r['valid_sum_hr1']:.3f}", f"{r['valid_mean_hr1']:.3f}", f"{r['test_sum_hr1']:.3f}",
                      f"{r['test_mean_hr1']:.3f}", f"{m.mean() - s.mean():+.3f}", f"{paired_test(m, s):.3g}",
                      f"{m.mean() - np.mean(pop['test']):+.3f}",
                      f"{paired_test(m, np.array(pop['test'])):.3g}"])
    table.append(["(pop)", f"{np.mean(pop['valid']):.3f}", "", f"{np.mean(pop['test']):.3f}", "", "", "", "", ""])
    print(tabulate(table, headers=["method", "valid sum", "valid mean", "test sum (as recorded)", "test mean",
                                   "Δ test mean − sum", "p (Wilcoxon)", "Δ test mean − pop", "p (Wilcoxon)"],
                   tablefmt="github", disable_numparse=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=None, help="as given to run_bench.py")
    parser.add_argument("--llm", default=None, help="as given to run_bench.py")
    parser.add_argument("--methods", default=",".join(LLM_METHODS), help="comma-separated, from " + ", ".join(LLM_METHODS))
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder of the run")
    parser.add_argument("--log", type=Path, default=None, help="default results/levers/rescore-<dataset>.jsonl")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = next((n for n in names if n not in LLM_METHODS), None)
    if unknown is not None:
        sys.exit(f"error: --methods: {unknown_name_message('method', unknown, list(LLM_METHODS))}")
    shared = {k: v for k, v in (("profile", args.profile), ("llm", args.llm)) if v is not None}
    session = Session(RunPlan(dataset=args.dataset, out=args.out, seeds=[args.seed], shared=shared,
                             command="bench/llm_rescore.py", replace_records=False))
    log_path = args.log or args.out / "levers" / f"rescore-{args.dataset}.jsonl"
    done = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []

    def finished(name: str) -> dict[str, Any] | None:
        key = (name, args.seed, config_hash(session.params_for(name)))
        return next((r for r in done if (r["method"], r["seed"], config_hash(r["params"])) == key), None)

    try:
        for name in [] if args.table_only else [n for n in names if finished(n) is None]:
            done.append(rescore(session, name, args.seed))
            log_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in done))
            logging.info("%s rescored -> %s", name, log_path)
    except UserError as e:
        sys.exit(f"error: {e}")
    print_table([r for r in map(finished, names) if r is not None], pop_hits(session, args.seed))


if __name__ == "__main__":
    main()
