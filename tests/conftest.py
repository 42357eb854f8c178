from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # test helpers such as llm_tiny

# The LLaRA splits live in the shared folder beside the checkout (never copied into the project).
LLARA = ROOT.parent / "shared" / "datasets" / "llara"


def kill_training_on_call(monkeypatch, call: int):
    """Make methods.llm.training.answer_loss raise KeyboardInterrupt (a kill, as Ctrl-C: not an
    Exception, so the checkpoint stays) on its `call`-th call; returns a function that undoes it."""
    import methods.llm.training as training

    real, calls = training.answer_loss, [0]

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "answer_loss", dying)
    return lambda: monkeypatch.setattr(training, "answer_loss", real)


def load_bench_script(name: str) -> ModuleType:
    """bench/ is scripts, not a package: load one by path so its functions can be tested."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def llara_dir() -> Path:
    if not (LLARA / "lastfm" / "test.csv").exists():
        pytest.skip(f"LLaRA splits not found at {LLARA}")
    return LLARA


@pytest.fixture(scope="session")
def ml100k():
    from harness.data import load_dataset

    return load_dataset("ml-100k")


@pytest.fixture(scope="session")
def synthetic():
    from harness.data.synthetic import make_synthetic

    return make_synthetic()


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A tiny random LLaMA folder with its own small tokenizer (tests/llm_tiny.py)."""
    from llm_tiny import make_tiny_llm

    return make_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))
