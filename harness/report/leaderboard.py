"""results/leaderboard.md (and .csv / .tex), rebuilt from the run records alone.

Rebuilding from the same records gives the same bytes: rows are sorted, bootstrap draws are
seeded, and nothing time-dependent is written. Significance uses the per-sample outcomes kept
beside each record, paired on the frozen candidate files (see report/stats.py).
"""

from __future__ import annotations

import fcntl
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tabulate import tabulate

from harness.evaluate import FULL_METRICS, METRICS
from harness.records import RecordStore, atomic_write_text, config_hash
from harness.report import stats

FORMATS = ("md", "csv", "latex")
# The comparisons the mission is about, when both sides have rows: (challenger, baseline). The
# trained LLM methods also face the untuned LLM and popularity: issue 8 asks that each beat both.
NAMED_PAIRS = (
    ("ilora", "tallrec"), ("ilora", "llara"), ("llara", "sasrec"), ("ilora", "sasrec"),
    *((m, floor) for floor in ("llm-zeroshot", "pop") for m in ("tallrec", "llara", "ilora")),
)

HEADER = """# ilora-bench leaderboard

Rebuilt by `python run_bench.py leaderboard` from the run records in `runs/` beside this file
(do not edit by hand). Each metric cell is the mean ± sample standard deviation over seeds; every
seed has its own user split and its own frozen candidate file (1 target + negatives), which all
methods of that seed score. HR@1 is the papers' HitRatio@1 (correct / all test samples);
ValidRatio is the share of answers that named exactly one candidate (1 for rankers). LLM methods
have one row per scoring mode: (generate) parses a greedy answer, (likelihood) ranks the
candidates by the log-probability of their titles. The "full" columns rank the target among all
items (the user's earlier items masked) for methods that score the whole catalogue.

"HR@1 95% CI" is a percentile bootstrap over all test samples of all seeds. "vs best" is the
paired Wilcoxon signed-rank test of per-sample HR@1 against the top row, on the same candidates,
Holm-corrected over every comparison of the section; `*` marks p < 0.05 (significantly worse
than the best), `=` a difference within noise.
"""


@dataclass
class Row:
    label: str
    method: str
    mode: str
    runs: list[dict[str, Any]]
    outcomes: dict[tuple[str, int], int] = field(default_factory=dict)  # (candidate sha, sample) -> rank
    samples: list[list[dict[str, Any]]] = field(default_factory=list)  # per run, the per-sample outcomes
    short: str = ""  # the label without budget and ablation words, for tables that give those in a column

    def hr1(self) -> float:
        return float(np.mean([r["metrics"]["test"][self.mode]["HR@1"] for r in self.runs]))

    def hits(self, keys: list[tuple[str, int]]) -> np.ndarray:
        return np.array([1.0 if self.outcomes[k] == 1 else 0.0 for k in keys])


@dataclass
class Comparison:
    a: Row
    b: Row
    keys: list[tuple[str, int]]
    p: float
    p_holm: float = 1.0

    @property
    def delta(self) -> float:
        return float(self.a.hits(self.keys).mean() - self.b.hits(self.keys).mean())


@dataclass
class Section:
    label: str
    dataset: str
    rows: list[Row]
    failed: list[tuple[str, int, str]]
    commands: list[str]
    seeds: list[int]
    tagged: list[tuple[str, dict[str, Any]]]
    vs_best: dict[str, Comparison] = field(default_factory=dict)
    named: list[Comparison] = field(default_factory=list)


def _setting_label(record: dict[str, Any]) -> str:
    split, cands = record["split"], record["candidates"]
    return (
        f"{record['dataset']['name']} · split {split['scheme']} (history ≤ {split['max_history']}, "
        f"held-out history ≥ {split['min_history']}) · 1 + {cands['n_negatives']} candidates, "
        f"negatives exclude {cands['exclude']} items · data {record['dataset']['fingerprint'][:12]}"
    )


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _one_per_seed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (method, parameters, seed): runs that differ only in --orders share those,
    and counting both would weigh that seed twice. The one with more position orders wins, then
    the later one."""
    def preference(r: dict[str, Any]) -> tuple[int, str]:
        return len((r.get("position") or {}).get("orders", [])), r.get("started_at", "")

    best: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in records:
        key = (r["method"], config_hash(r["params"]), r["seed"])
        if key not in best or preference(r) > preference(best[key]):
            best[key] = r
    return list(best.values())


def collect(records: list[dict[str, Any]], load_samples: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> list[Section]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        grouped[_setting_label(r)].append(r)
    sections = []
    for label in sorted(grouped):
        group = grouped[label]
        ok = [r for r in group if r["status"] == "ok"]
        by_params: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in _one_per_seed(ok):
            by_params[(r["method"], config_hash(r["params"]))].append(r)
        # LLM rows are named by their profile and backbone where the section holds more than one; a hash
        # tag tells apart what those names leave alike (a --set override, say).
        show_budget = len({_budget(r["params"]) for r in ok if any(k in r["params"] for k in PAIRING_KEYS)}) > 1
        names = {key: _row_name(key[0], runs[0]["params"], show_budget) for key, runs in by_params.items()}
        clashes = Counter(names.values())
        rows, tagged = [], []
        for (method, phash), runs in sorted(by_params.items()):
            runs.sort(key=lambda r: r["seed"])
            suffix = f" [{phash[:6]}]" if clashes[names[(method, phash)]] > 1 else ""
            name = names[(method, phash)] + suffix
            if name != method:
                tagged.append((name, runs[0]["params"]))
            tuning = runs[0].get("tuning")
            if tuning:
                suffix += f" · tuned ({tuning['complete'] + tuning['pruned'] + tuning['failed']} trials)"
                name = names[(method, phash)] + suffix
            skip = {"full", *_moot_modes(runs[0]["params"])}
            modes = [m for m in runs[0]["metrics"]["test"] if m not in skip]
            samples = {id(r): load_samples(r) for r in runs}
            for mode in modes:
                mode_words = "" if len(modes) == 1 else f" ({mode})"
                row = Row(name + mode_words, method, mode, runs, samples=[samples[id(r)] for r in runs],
                          short=method + suffix + mode_words)
                for r in runs:
                    for s in samples[id(r)]:
                        row.outcomes[(r["candidates"]["sha256"], s["i"])] = s["rank"][mode]
                rows.append(row)
        rows.sort(key=lambda row: (-row.hr1(), row.label))
        section = Section(
            label, group[0]["dataset"]["name"], rows,
            failed=sorted((r["method"], r["seed"], r["error"]) for r in group if r["status"] != "ok"),
            commands=sorted({r["command"] for r in ok}), seeds=sorted({r["seed"] for r in ok}), tagged=tagged,
        )
        _compare(section)
        sections.append(section)
    return sections


def _compare(section: Section) -> None:
    """Every row against the best, plus the named pairs; one Holm correction over all of them."""
    comparisons: list[Comparison] = []
    rows = section.rows
    if not rows:
        return

    def compare(a: Row, b: Row) -> Comparison | None:
        keys = sorted(set(a.outcomes) & set(b.outcomes))
        if not keys:
            return None
        c = Comparison(a, b, keys, stats.paired_test(a.hits(keys), b.hits(keys)))
        comparisons.append(c)
        return c

    best = rows[0]
    for row in rows[1:]:
        c = compare(best, row)
        if c is not None:
            section.vs_best[row.label] = c
    for challenger, baseline in NAMED_PAIRS:
        for a in (r for r in rows if r.method == challenger):
            for b in (r for r in rows if r.method == baseline):
                if (a.mode == b.mode or "rank" in (a.mode, b.mode)) and _same_budget(a, b):
                    c = compare(a, b)
                    if c is not None:
                        section.named.append(c)
    for c, adjusted in zip(comparisons, stats.holm([c.p for c in comparisons])):
        c.p_holm = adjusted


PAIRING_KEYS = ("profile", "llm")
# The LLM methods' labelled ablations, with the papers' setting each departs from. The methods record
# them only when they depart (`LLMMethod.resolve`), so a missing key means the papers' setting.
ABLATIONS: dict[str, tuple[Any, str]] = {
    "prompt": ("paper", "{} prompt"), "history_loss": (False, "history loss"), "candidate_loss": (False, "candidate loss"),
}


def ablations(params: dict[str, Any]) -> list[str]:
    """Words for each ablation a run's parameters carry; empty for the papers' settings."""
    return [words.format(params[k]) for k, (paper, words) in ABLATIONS.items() if params.get(k, paper) != paper]


def _budget(params: dict[str, Any]) -> str:
    """Profile and backbone: what an LLM row is paired within (`_same_budget`), as words."""
    return " · ".join(str(params[k]) for k in PAIRING_KEYS if k in params)


def _setting(params: dict[str, Any]) -> str:
    return " · ".join(filter(None, [_budget(params), *ablations(params)]))


def _row_name(method: str, params: dict[str, Any], show_budget: bool) -> str:
    """"ilora · cpu-long · gemma3-270m · ablation: history-only prompt, history loss": a reader should
    not need the parameter list to tell which row is which."""
    name = f"{method} · {_budget(params)}" if show_budget and _budget(params) else method
    return f"{name} · ablation: {', '.join(ablations(params))}" if ablations(params) else name


# A prompt without the candidate list leaves greedy generation nothing to name: it scores 0 with ValidRatio
# ~0.02 (the records keep it), and its rows would only crowd the tables and the Holm corrections.
NO_LIST_PROMPTS = ("history-only",)


def _moot_modes(params: dict[str, Any]) -> tuple[str, ...]:
    return ("generate",) if params.get("prompt") in NO_LIST_PROMPTS else ()


def _same_budget(a: Row, b: Row) -> bool:
    """LLM rows are paired only within one budget profile and one backbone (a cpu-long model
    against a cpu one, or Gemma against SmolLM2, says nothing about the method), and with the
    same ablations; rows without these parameters (ID models, pop) pair with any. Tuned rows
    still pair: their lr and rank differ by design."""
    pa, pb = (r.runs[0]["params"] for r in (a, b))
    if "llm" in pa and "llm" in pb:
        # An untrained row (llm-zeroshot) has no objective: a history-loss row's zero-shot bar is the
        # backbone with the same prompt, as bench/llm_levers.py pairs them.
        trained = all(r.runs[0].get("trainable_parameters", 0) > 0 for r in (a, b))
        keys = ABLATIONS if trained else ("prompt",)
        if any(pa.get(k, ABLATIONS[k][0]) != pb.get(k, ABLATIONS[k][0]) for k in keys):
            return False
    return all(k not in pa or k not in pb or pa[k] == pb[k] for k in PAIRING_KEYS)


MAIN_HEADERS = ["method", "seeds", "samples", *METRICS[:1], "HR@1 95% CI", *METRICS[1:],
                *(f"{m} full" for m in FULL_METRICS), "trainable params", "fit s (mean)", "vs best (p Holm)"]


def _main_rows(section: Section) -> list[list[str]]:
    table = []
    for row in section.rows:
        runs = row.runs
        cells = [row.label, str(len(runs)), str(len(row.outcomes))]
        for m in METRICS:
            cells.append(_cell([r["metrics"]["test"][row.mode][m] for r in runs]))
            if m == "HR@1":
                low, high = stats.mean_ci(np.array([1.0 if v == 1 else 0.0 for v in row.outcomes.values()]))
                cells.append(f"[{low:.3f}, {high:.3f}]")
        full = [r["metrics"]["test"].get("full") for r in runs]
        cells += [_cell([f[m] for f in full]) if all(full) else "" for m in FULL_METRICS]
        cells += [f"{runs[0]['trainable_parameters']:,}", f"{np.mean([r['fit_seconds'] for r in runs]):.1f}"]
        c = section.vs_best.get(row.label)
        cells.append("best" if row is section.rows[0] else "" if c is None else
                     f"{c.p_holm:.3g} {'*' if c.p_holm < stats.ALPHA else '='}")
        table.append(cells)
    return table


def _comparison_rows(comparisons: list[Comparison]) -> list[list[str]]:
    out = []
    for c in comparisons:
        low, high = stats.diff_ci(c.a.hits(c.keys), c.b.hits(c.keys))
        out.append([
            f"{c.a.short or c.a.label} vs {c.b.short or c.b.label}", _setting(c.a.runs[0]["params"]), str(len(c.keys)), f"{c.delta:+.4f}",
            f"[{low:+.3f}, {high:+.3f}]",
            f"{c.p:.3g}", f"{c.p_holm:.3g}", "yes" if c.p_holm < stats.ALPHA else "no",
        ])
    return out


def _relative_rows(sections: list[Section]) -> list[list[str]]:
    """iLoRA over plain LoRA (tallrec), as the iLoRA paper states its claim (+11.4% on average).

    This is the question the benchmark exists for, so these pairs are also tested as a family of
    their own (Holm over this table's rows), beside the section-wide correction of the comparison
    table above, which also counts every row against the best and every LLM row against the floors.
    """
    # The named ilora-vs-tallrec comparisons: same mode, same profile and backbone (`_compare`).
    pairs = [(s, c) for s in sections for c in s.named if (c.a.method, c.b.method) == ("ilora", "tallrec")]
    out, rels = [], []
    for (s, c), p_holm in zip(pairs, stats.holm([c.p for _, c in pairs])):
        a, b = c.a.hits(c.keys), c.b.hits(c.keys)
        point, low, high = stats.relative_improvement(a, b)
        ratio = c.a.runs[0]["trainable_parameters"] / max(1, c.b.runs[0]["trainable_parameters"])
        params = c.a.runs[0]["params"]
        budget = _setting(params)
        rels.append(point)
        out.append([s.dataset, f"{c.a.short or c.a.label} vs {c.b.short or c.b.label}", budget, str(len(c.keys)), f"{b.mean():.4f}",
                    f"{a.mean():.4f}", _pct(point), f"[{_pct(low)}, {_pct(high)}]", _delta_by_seed(c, a, b),
                    f"{c.p:.3g}", f"{p_holm:.3g}", f"{ratio:.4f}"])
    finite = [r for r in rels if math.isfinite(r)]
    if len(out) > 1 and finite:
        out.append(["average", "", "", "", "", "", _pct(float(np.mean(finite))), "", "", "", "", ""])
    return out


def _delta_by_seed(c: Comparison, a: np.ndarray, b: np.ndarray) -> str:
    """Δ HR@1 on each seed's own users (a, b: the pair's hits over c.keys): a pooled p can come from
    one lucky seed, and whether the sign holds seed after seed is what a reader of a multi-seed claim
    asks first."""
    seed_of = {r["candidates"]["sha256"]: r["seed"] for r in c.a.runs}
    seeds = np.array([seed_of[sha] for sha, _ in c.keys])
    return ", ".join(f"{a[seeds == s].mean() - b[seeds == s].mean():+.3f} (seed {s})" for s in np.unique(seeds))


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:+.1f}%"


POSITION_BUCKET = 5


def expert_usage(section: Section) -> tuple[list[str], list[list[str]], list[tuple[str, np.ndarray]]]:
    """Mean gate weight per expert, gate entropy, and mean gates per cluster of users.

    The entropy alone cannot tell an even mixture every user shares from users routed apart; the
    user-expert mutual information (0 when all users get the same mixture) can.

    Clusters are k-means groups of the test users' SASRec representations, per seed (cluster ids
    are not comparable across seeds). Returns table headers, rows, and (row label, gate vector)
    pairs for the heat-map.
    """
    seen, headers, table, heat = set(), [], [], []
    for row in section.rows:
        if row.method != "ilora" or row.label.split(" (")[0] in seen:
            continue
        runs = [r for r in row.runs if r.get("extra", {}).get("test_gates")]
        if not runs:
            continue
        seen.add(row.label.split(" (")[0])
        name = row.label.split(" (")[0]
        k = len(runs[0]["extra"]["test_gates"][0])
        headers = ["iLoRA", "users", "entropy (max %.2f)" % math.log(k), "user-expert MI",
                   *(f"expert {e + 1}" for e in range(k))]

        def line(label: str, gates: np.ndarray) -> list[str]:
            entropy, mi = stats.gate_spread(gates)
            heat.append((label, gates.mean(0)))
            return [label, str(len(gates)), f"{entropy:.3f}", f"{mi:.4f}", *(f"{w:.3f}" for w in gates.mean(0))]

        table.append(line(f"{name}: all test users", np.concatenate([np.array(r["extra"]["test_gates"]) for r in runs])))
        for r in runs:
            clusters = r["extra"].get("test_clusters")
            if not clusters:
                continue
            gates, labels = np.array(r["extra"]["test_gates"]), np.array(clusters)
            for c in sorted(set(labels.tolist())):
                table.append(line(f"{name}: seed {r['seed']}, user cluster {c + 1}", gates[labels == c]))
    return headers, table, heat



def _position_rows(section: Section) -> tuple[list[str], list[list[str]]]:
    """HR@1 across reshuffled candidate orders and by where the target stood in the prompt."""
    rows = [r for r in section.rows if all("position" in run for run in r.runs)]
    if not rows:
        return [], []
    width = max(run["candidates"]["n_negatives"] + 1 for r in rows for run in r.runs)
    buckets = [(lo, min(lo + POSITION_BUCKET, width)) for lo in range(0, width, POSITION_BUCKET)]
    headers = ["method", "orders", "HR@1 given order", "HR@1 over orders (mean ± std)",
               *(f"HR@1 target at {lo + 1}-{hi}" for lo, hi in buckets)]
    table = []
    for row in rows:
        per_order = [[r["metrics"]["test"][row.mode]["HR@1"] for r in row.runs]]
        n_orders = min(len(r["position"]["orders"]) for r in row.runs)
        per_order += [[r["position"]["orders"][o][row.mode]["HR@1"] for r in row.runs] for o in range(n_orders)]
        order_means = [float(np.mean(v)) for v in per_order]
        hits_by_bucket: list[list[float]] = [[] for _ in buckets]
        for per_run in row.samples:
            for s in per_run:
                for o in s.get("orders", [])[: n_orders + 1]:
                    hits_by_bucket[o["pos"] // POSITION_BUCKET].append(1.0 if o["rank"][row.mode] == 1 else 0.0)
        table.append([
            row.label, str(n_orders + 1), f"{order_means[0]:.4f}",
            f"{np.mean(order_means):.4f} ± {np.std(order_means, ddof=1) if len(order_means) > 1 else 0.0:.4f}",
            *(f"{np.mean(h):.4f} (n={len(h)})" if h else "" for h in hits_by_bucket),
        ])
    return headers, table


Usage = tuple[list[str], list[list[str]], list[tuple[str, np.ndarray]]]


def render_markdown(sections: list[Section], figures: dict[str, str] | None = None,
                    usage: dict[str, Usage] | None = None) -> str:
    figures = figures or {}
    usage = usage if usage is not None else {s.label: expert_usage(s) for s in sections}
    out = [HEADER]
    if not sections:
        out.append("\nNo run records yet: run `python run_bench.py --methods all`.\n")
    for s in sections:
        out.append(f"\n## {s.label}\n\n")
        out.append(tabulate(_main_rows(s), headers=MAIN_HEADERS, tablefmt="github", disable_numparse=True) + "\n")
        if s.named:
            out.append("\nThe comparisons the benchmark exists for (paired on the same candidates; Δ = first − second):\n\n")
            out.append(tabulate(
                _comparison_rows(s.named),
                headers=["comparison", "profile · backbone · ablations (first row)", "samples", "Δ HR@1", "95% CI of Δ",
                         "p (Wilcoxon)", "p (Holm)", "significant"],
                tablefmt="github", disable_numparse=True,
            ) + "\n")
        headers, position = _position_rows(s)
        if position:
            out.append("\nPosition bias: the same test sets scored again with the candidates in other frozen orders; "
                       "HR@1 by the target's position in the prompt pools all orders and seeds:\n\n")
            out.append(tabulate(position, headers=headers, tablefmt="github", disable_numparse=True) + "\n")
        if s.label in figures:
            out.append(f"\n![test HR@1 with 95% intervals]({figures[s.label]})\n")
        headers, table, _ = usage[s.label]
        if table:
            out.append("\nExpert usage (iLoRA's gate on the test users; clusters: k-means on their SASRec representation; "
                       "user-expert MI in nats, 0 when every user gets the same mixture):\n\n")
            out.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True) + "\n")
            if f"experts:{s.label}" in figures:
                out.append(f"\n![expert usage]({figures[f'experts:{s.label}']})\n")
        out.append(f"\nSeeds: {', '.join(map(str, s.seeds))}. Commands that produced these records:\n")
        out.extend(f"\n    {cmd}\n" for cmd in s.commands)
        if s.failed:
            out.append("\nFailed runs (rerun the command to retry them):\n\n")
            out.extend(f"- {m} seed {seed}: {err}\n" for m, seed, err in s.failed)
        if s.tagged:
            marked = any(" · ablation: " in name for name, _ in s.tagged)
            out.append("\nWhere a section holds LLM rows of more than one budget profile or backbone, their names say which"
                       " (`profile`, `llm`); a tag [xxxxxx] (hash of the parameters) tells apart parameter sets of one method"
                       " that the name leaves alike"
                       + ("; rows marked · ablation depart from the papers' prompt or objective (`prompt`, `history_loss`, "
                          "`candidate_loss` below) and are paired only with rows that depart the same way; a history-only prompt "
                          "lists no candidates to name, so its (generate) rows are left out (the records keep them)"
                          if marked else "")
                       + ". Their parameters:\n\n")
            out.extend(f"- {name}: `{json.dumps(params, sort_keys=True)}`\n" for name, params in s.tagged)
    relative = _relative_rows(sections)
    if relative:
        out.append("\n## iLoRA over plain LoRA (the paper's claim: +11.4% HR@1 on average)\n\n"
                   "Paired on the same test samples, one row per budget profile, backbone, ablation and scoring mode. These "
                   "pairs are the benchmark's headline question, so their Wilcoxon p-values are Holm-corrected "
                   "over this table's rows only; the section tables above correct the same pairs together with "
                   "all their other comparisons, hence a larger p there.\n\n")
        out.append(tabulate(
            relative, headers=["data set", "rows (same profile and backbone)", "profile · backbone · ablations", "samples",
                               "tallrec HR@1", "ilora HR@1", "relative", "95% CI", "Δ HR@1 by seed", "p (Wilcoxon)",
                               "p (Holm, this table)", "params ratio"],
            tablefmt="github", disable_numparse=True,
        ) + "\n")
    if "tuning" in figures:
        out.append(f"\n## Tuning\n\nBest validation value per trial, per study (details in `tuning.md`):\n\n![tuning curves]({figures['tuning']})\n")
    return "".join(out)


def render_table(sections: list[Section], fmt: str) -> str:
    """One flat table (data set, method, metrics) for spreadsheets (csv) or papers (latex)."""
    headers = ["setting", *MAIN_HEADERS]
    rows = [[s.label, *cells] for s in sections for cells in _main_rows(s)]
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buf.getvalue()
    return tabulate(rows, headers=headers, tablefmt="latex_booktabs", disable_numparse=True) + "\n"


def write_figures(sections: list[Section], root: Path, usage: dict[str, Usage]) -> dict[str, str]:
    """PNGs under <root>/plots, returned as section label (or "tuning") -> path relative to root."""
    from harness.report import plots

    figures = {}
    for s in sections:
        path = plots.plot_hr1(s, root / "plots")
        if path is not None:
            figures[s.label] = path.relative_to(root).as_posix()
        path = plots.plot_experts(s, usage[s.label][2], root / "plots")
        if path is not None:
            figures[f"experts:{s.label}"] = path.relative_to(root).as_posix()
    tuning = plots.plot_tuning(_tuning_curves(root), root / "plots" / "tuning.png")
    if tuning is not None:
        figures["tuning"] = tuning.relative_to(root).as_posix()
    return figures


def _tuning_curves(root: Path) -> list[tuple[str, list[float]]]:
    """Completed trials' values per study in the default storage (results/optuna.db), if any."""
    db = root / "optuna.db"
    if not db.exists():
        return []
    import optuna
    from optuna.trial import TrialState

    from harness.tuning import studies

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return [(study.study_name, [t.value for t in study.trials if t.state == TrialState.COMPLETE])
            for study in studies(f"sqlite:///{db}")]


def write_leaderboard(store: RecordStore, fmt: str = "md") -> Path:
    """Rebuild under a lock: two runs sharing a results folder must not publish a stale view last."""
    if fmt not in FORMATS:
        from harness.errors import UserError
        from harness.registry import unknown_name_message

        raise UserError(unknown_name_message("leaderboard format", fmt, list(FORMATS)))
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / ".leaderboard.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        sections = collect(store.load_all(), store.samples)
        usage = {s.label: expert_usage(s) for s in sections}  # once: the table and the heat-map share it
        figures = write_figures(sections, store.root, usage)
        path = store.root / "leaderboard.md"
        atomic_write_text(path, render_markdown(sections, figures, usage))
        if fmt != "md":
            path = store.root / f"leaderboard.{'tex' if fmt == 'latex' else 'csv'}"
            atomic_write_text(path, render_table(sections, fmt))
    return path
