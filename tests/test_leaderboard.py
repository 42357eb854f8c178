from pathlib import Path

import tests.toy_methods  # noqa: F401  (registers toy-markov)
from harness.records import RecordStore
from harness.report.leaderboard import collect, write_leaderboard
from harness.runner import RunPlan, run_benchmark


def test_leaderboard_marks_a_real_difference_and_writes_plots(tmp_path: Path):
    run_benchmark(RunPlan(dataset="synthetic", methods="toy-markov,random", seeds=[0, 1], out=tmp_path, device="cpu"))
    store = RecordStore(tmp_path)
    [section] = collect(store.load_all(), store.samples)
    assert [r.method for r in section.rows] == ["toy-markov", "random"]
    assert section.vs_best["random"].p_holm < 0.05
    board = (tmp_path / "leaderboard.md").read_text()
    assert "| random" in board and " *" in board
    plots = list((tmp_path / "plots").glob("hr1-*.png"))
    assert len(plots) == 1 and plots[0].stat().st_size > 1000
    assert plots[0].name in board
    before = board
    write_leaderboard(store)
    assert (tmp_path / "leaderboard.md").read_text() == before
    csv = write_leaderboard(store, "csv").read_text()
    assert csv.splitlines()[0].startswith("setting,method,seeds") and len(csv.splitlines()) == 3
    assert "toprule" in write_leaderboard(store, "latex").read_text()


def test_position_bias_table(tmp_path: Path):
    run_benchmark(RunPlan(dataset="synthetic", methods="toy-first", seeds=[0], out=tmp_path, device="cpu", orders=3))
    [record] = RecordStore(tmp_path).load_all()
    assert len(record["position"]["orders"]) == 3
    assert len(list((tmp_path / "candidates").glob("*.order*.tsv"))) == 3
    board = (tmp_path / "leaderboard.md").read_text()
    assert "Position bias" in board
    line = next(l for l in board.splitlines() if l.startswith("| toy-first") and "(n=" in l)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "4"
    first_bucket, later = cells[4], cells[5:]
    assert float(first_bucket.split()[0]) > 0 and all(c.startswith("0.0000") for c in later)


def test_rerun_with_orders_is_not_skipped_and_counts_once(tmp_path: Path):
    run_benchmark(RunPlan(dataset="synthetic", methods="toy-first", seeds=[0], out=tmp_path, device="cpu", orders=0))
    summary = run_benchmark(RunPlan(dataset="synthetic", methods="toy-first", seeds=[0], out=tmp_path, device="cpu", orders=2))
    assert len(summary.written) == 1 and not summary.skipped  # --orders changes what is recorded
    store = RecordStore(tmp_path)
    assert len(store.load_all()) == 2
    [section] = collect(store.load_all(), store.samples)
    [row] = section.rows
    assert len(row.runs) == 1 and len(row.runs[0]["position"]["orders"]) == 2  # the record with the orders


def test_expert_usage_table_and_heatmap(tmp_path: Path):
    import numpy as np

    from harness.report.leaderboard import Row, Section, expert_usage
    from harness.report.plots import plot_experts

    gates = np.array([[0.7, 0.1, 0.1, 0.1]] * 3 + [[0.1, 0.1, 0.1, 0.7]] * 3)
    run = {"seed": 0, "extra": {"test_gates": gates.tolist(), "test_clusters": [0, 0, 0, 1, 1, 1]}}
    section = Section("x", "toy", [Row("ilora (generate)", "ilora", "generate", [run]),
                                   Row("ilora (likelihood)", "ilora", "likelihood", [run])], [], [], [0], [])
    headers, table, heat = expert_usage(section)
    assert headers[:4] == ["iLoRA", "users", "entropy (max 1.39)", "user-expert MI"]
    assert len(table) == 3  # all users, then the two clusters; once per method, not per mode
    assert table[1][4:] == ["0.700", "0.100", "0.100", "0.100"] and table[2][7] == "0.700"
    # two groups routed apart: MI = H(mean gate) - mean H(gate) = 1.19355 - 0.94045 nats; inside a group, 0
    assert table[0][3] == "0.2531" and table[1][3] == table[2][3] == "0.0000"
    path = plot_experts(section, heat, tmp_path)
    assert path.exists() and path.stat().st_size > 1000


def test_named_pairs_face_the_floors_within_one_llm_profile_and_backbone():
    from harness.report.leaderboard import Row, Section, _compare, _relative_rows

    outcomes = {("c", i): 1 + (i % 3) for i in range(30)}

    def row(method: str, mode: str, profile: str | None = None, llm: str = "smollm2") -> Row:
        params = {} if profile is None else {"profile": profile, "llm": llm}
        tag = "" if llm == "smollm2" else f" {llm}"
        run = {"params": params, "trainable_parameters": 1, "seed": 0, "candidates": {"sha256": "c"}}
        return Row(f"{method} {profile}{tag} ({mode})", method, mode, [run], dict(outcomes))

    rows = [row("pop", "rank"), row("tallrec", "likelihood", "cpu"), row("tallrec", "likelihood", "cpu-long"),
            row("llm-zeroshot", "likelihood", "cpu"), row("llm-zeroshot", "likelihood", "cpu-long"),
            row("tallrec", "likelihood", "cpu-long", "gemma3-270m"), row("llm-zeroshot", "likelihood", "cpu-long", "gemma3-270m")]
    section = Section("s", "d", rows, [], [], [0], [])
    _compare(section)
    assert {(c.a.label, c.b.label) for c in section.named} == {
        ("tallrec cpu (likelihood)", "llm-zeroshot cpu (likelihood)"),
        ("tallrec cpu-long (likelihood)", "llm-zeroshot cpu-long (likelihood)"),
        ("tallrec cpu-long gemma3-270m (likelihood)", "llm-zeroshot cpu-long gemma3-270m (likelihood)"),
        ("tallrec cpu (likelihood)", "pop None (rank)"),
        ("tallrec cpu-long (likelihood)", "pop None (rank)"),
        ("tallrec cpu-long gemma3-270m (likelihood)", "pop None (rank)"),
    }

    # iLoRA over plain LoRA pairs the same way (not every ilora row with every tallrec row).
    section = Section("s", "d", rows + [row("ilora", "likelihood", "cpu-long"), row("ilora", "likelihood", "cpu-long", "gemma3-270m")],
                      [], [], [0], [])
    _compare(section)
    table = [r for r in _relative_rows([section]) if r[0] == "d"]
    assert [r[1] for r in table] == ["ilora cpu-long (likelihood) vs tallrec cpu-long (likelihood)",
                                     "ilora cpu-long gemma3-270m (likelihood) vs tallrec cpu-long gemma3-270m (likelihood)"]
    assert [r[2] for r in table] == ["cpu-long · smollm2", "cpu-long · gemma3-270m"]


def test_ablation_rows_pair_only_with_the_same_ablation_and_say_so():
    from harness.report.leaderboard import Row, Section, _compare, _relative_rows, ablations

    outcomes = {("c", i): 1 + (i % 3) for i in range(30)}

    def row(method: str, **ablation) -> Row:
        params = {"profile": "cpu-long", "llm": "gemma3-270m", **ablation} if method != "pop" else {}
        run = {"params": params, "trainable_parameters": int(method != "llm-zeroshot"), "seed": 0, "candidates": {"sha256": "c"}}
        tag = " ablation" if ablation else ""
        return Row(f"{method}{tag}", method, "likelihood" if params else "rank", [run], dict(outcomes))

    histonly = {"prompt": "history-only", "history_loss": True}
    rows = [row("pop"), row("ilora"), row("tallrec"), row("llm-zeroshot"), row("ilora", **histonly),
            row("tallrec", **histonly), row("llm-zeroshot", prompt="history-only")]
    section = Section("s", "d", rows, [], [], [0], [])
    _compare(section)
    pairs = {(c.a.label, c.b.label) for c in section.named}
    assert ("ilora ablation", "tallrec ablation") in pairs and ("ilora", "tallrec") in pairs
    assert ("ilora ablation", "tallrec") not in pairs and ("ilora", "tallrec ablation") not in pairs
    assert ("tallrec ablation", "pop") in pairs  # the floors without a prompt pair with any
    # A history-loss row's zero-shot bar is the untrained backbone with the same prompt (it has no loss).
    assert ("ilora ablation", "llm-zeroshot ablation") in pairs and ("ilora ablation", "llm-zeroshot") not in pairs
    assert ("ilora", "llm-zeroshot") in pairs and ("ilora", "llm-zeroshot ablation") not in pairs
    assert [r[2] for r in _relative_rows([section]) if r[0] == "d"] == ["cpu-long · gemma3-270m",
                                                                        "cpu-long · gemma3-270m · history-only prompt · history loss"]
    assert ablations({"prompt": "paper"}) == [] and ablations({}) == []


def test_a_prompt_without_the_candidate_list_gets_no_generate_row():
    """Greedy generation has nothing to name without the list; the record keeps the mode, the board drops it."""
    def record(prompt: str | None) -> dict:
        params = {"llm": "gemma3-270m", "profile": "cpu-long", **({"prompt": prompt} if prompt else {})}
        modes = {"generate": {"HR@1": 0.0, "ValidRatio": 0.02}, "likelihood": {"HR@1": 0.3, "ValidRatio": 1.0}}
        return {"method": "ilora", "params": params, "seed": 0, "status": "ok", "command": "run", "trainable_parameters": 1,
                "dataset": {"name": "d", "fingerprint": "f" * 12},
                "split": {"scheme": "llara", "max_history": 10, "min_history": 3},
                "candidates": {"sha256": "c", "n_negatives": 19, "exclude": "seen"}, "metrics": {"test": modes}}

    samples = [{"i": i, "rank": {"generate": 20, "likelihood": 1 + i % 3}} for i in range(6)]
    [section] = collect([record(None), record("history-only")], lambda r: samples)
    modes = sorted(("· ablation" in r.label, r.mode) for r in section.rows)
    assert modes == [(False, "generate"), (False, "likelihood"), (True, "likelihood")]


def test_llm_rows_are_named_by_budget_where_the_section_mixes_them():
    """Readers should not need the parameter list: "ilora · cpu-long · gemma3-270m", a hash only where that is not enough."""
    from harness.report.leaderboard import _relative_rows

    def record(method: str, **params) -> dict:
        return {"method": method, "params": params, "seed": 0, "status": "ok", "command": "run", "trainable_parameters": 1,
                "dataset": {"name": "d", "fingerprint": "f" * 12},
                "split": {"scheme": "llara", "max_history": 10, "min_history": 3},
                "candidates": {"sha256": "c", "n_negatives": 19, "exclude": "seen"},
                "metrics": {"test": {"likelihood": {"HR@1": 0.3}}}}

    samples = [{"i": i, "rank": {"likelihood": 1 + i % 3, "rank": 1 + i % 2}} for i in range(6)]
    one_budget = [record("ilora", llm="smollm2", profile="cpu"), record("tallrec", llm="smollm2", profile="cpu")]
    [section] = collect(one_budget, lambda r: samples)
    assert sorted(r.label for r in section.rows) == ["ilora", "tallrec"]  # the default run reads as before

    mixed = [*one_budget, record("ilora", llm="gemma3-270m", profile="cpu-long"),
             record("tallrec", llm="gemma3-270m", profile="cpu-long"),
             record("tallrec", llm="gemma3-270m", profile="cpu-long", lr=1e-3),
             record("ilora", llm="gemma3-270m", profile="cpu-long", prompt="history-only", history_loss=True)]
    [section] = collect(mixed, lambda r: samples)
    labels = sorted(r.label for r in section.rows)
    assert labels[:3] == ["ilora · cpu · smollm2", "ilora · cpu-long · gemma3-270m",
                          "ilora · cpu-long · gemma3-270m · ablation: history-only prompt, history loss"]
    clashing = [label for label in labels if label.startswith("tallrec · cpu-long")]
    assert len(set(clashing)) == 2 and all(label.endswith("]") for label in clashing)  # lr=1e-3 is in no name
    assert {name for name, _ in section.tagged} == set(labels)
    rows = {r[2]: r[1] for r in _relative_rows([section])}
    assert rows["cpu · smollm2"] == "ilora vs tallrec"  # the budget is the next column


def test_ilora_over_lora_is_its_own_holm_family():
    """The headline pairs are corrected over that table only, not over the whole section."""
    from harness.report import stats
    from harness.report.leaderboard import Row, Section, _compare, _relative_rows

    def row(method: str, llm: str, hit_every: int) -> Row:
        outcomes = {("c", i): 1 if i % hit_every == 0 else 2 for i in range(60)}
        return Row(f"{method} {llm}", method, "likelihood", [{"params": {"profile": "cpu-long", "llm": llm},
                                                             "trainable_parameters": 1, "seed": 0,
                                                             "candidates": {"sha256": "c"}}], outcomes)

    rows = [row("pop", "-", 1), row("ilora", "a", 2), row("tallrec", "a", 6), row("ilora", "b", 3),
            row("tallrec", "b", 3), row("llm-zeroshot", "a", 5), row("llm-zeroshot", "b", 5)]
    rows[0].runs[0]["params"] = {}  # pop: no profile or backbone, pairs with every row
    section = Section("s", "d", rows, [], [], [0], [])
    _compare(section)
    named = [c for c in section.named if (c.a.method, c.b.method) == ("ilora", "tallrec")]
    table = [r for r in _relative_rows([section]) if r[0] == "d"]
    assert [r[9] for r in table] == [f"{c.p:.3g}" for c in named]
    assert [r[10] for r in table] == [f"{p:.3g}" for p in stats.holm([c.p for c in named])]
    assert float(table[0][10]) < named[0].p_holm  # the section-wide correction counts many more comparisons


def test_ilora_over_lora_gives_the_difference_on_each_seed():
    """Pooled over seeds, ilora is ahead; the table also shows it lost on seed 1."""
    from harness.report.leaderboard import Row, Section, _compare, _relative_rows

    def row(method: str, hits: dict[int, int]) -> Row:
        runs = [{"params": {"profile": "cpu-long", "llm": "x"}, "trainable_parameters": 1, "seed": seed,
                 "candidates": {"sha256": f"sha{seed}"}} for seed in (2, 0, 1)]
        outcomes = {(f"sha{seed}", i): 1 if i < hits[seed] else 2 for seed in hits for i in range(10)}
        return Row(method, method, "likelihood", runs, outcomes)

    section = Section("s", "d", [row("ilora", {0: 6, 1: 2, 2: 5}), row("tallrec", {0: 1, 1: 3, 2: 5})], [], [], [0, 1, 2], [])
    _compare(section)
    (line,) = [r for r in _relative_rows([section]) if r[0] == "d"]
    assert line[8] == "+0.500 (seed 0), -0.100 (seed 1), +0.000 (seed 2)"
