"""Workarounds for third-party packages, each with the version that needs it.

Delete a workaround when its upstream is fixed. Everything here is imported lazily (by the
methods that need it), so `run_bench.py --list` stays free of torch and RecBole.

Checked with RecBole 1.2.1, numpy 2.4, torch 2.13, pandas 2.3 and transformers 5.24 (5.17 on the GPU image).

Not needed, by design:
- torch >= 2.6 loads checkpoints with weights_only=True by default, and RecBole's checkpoints
  pickle its Config, so `Trainer.evaluate(load_best_model=True)` fails. We never let RecBole
  write or read a checkpoint: the adapter keeps the best epoch's weights itself and saves a
  plain state_dict.
- recbole.quick_start imports ray.tune, which fails on numpy 2 / new setuptools: we use
  recbole.config / data / model / trainer directly.
- RecBole's `init_logger` writes ./log/: never called (its messages go to the root logger,
  see quiet_recbole). Its `saved/` folder is the Config's checkpoint_dir, set under the run's
  work folder by the adapter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.trainer import Trainer


def import_recbole() -> None:
    """Import the RecBole modules the adapter uses, undoing their import-time side effects.

    - numpy 2 removed np.float_, np.complex_ and np.unicode_, which RecBole 1.2.1's
      `Config.compatibility_settings` reads (to re-create np.float etc., which its evaluator and
      Interaction still use). Give numpy 2 the old names back before any Config is built.
    - RecBole 1.2.1's recbole/model/sequential_recommender/sine.py runs
      `torch.autograd.set_detect_anomaly(True)` at import, for the whole process: every model then
      trains about 2x slower with identical numbers. Restore the previous setting.
    """
    import numpy as np
    import torch

    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if not hasattr(np, old):
            setattr(np, old, new)
    anomaly = torch.is_anomaly_enabled()
    import recbole.config  # noqa: F401
    import recbole.data  # noqa: F401
    import recbole.model.sequential_recommender  # noqa: F401  (runs sine.py)
    import recbole.trainer  # noqa: F401

    torch.autograd.set_detect_anomaly(anomaly)


def make_config(model: type, dataset: str, config_dict: dict[str, Any]) -> "Config":
    """RecBole's Config, isolated from the process it runs in.

    - RecBole 1.2.1's Config parses sys.argv for `--key=value` options, which would take our own
      command line (e.g. `--out=...`) as RecBole settings: ignored here.
    - Its `_init_device` writes os.environ["CUDA_VISIBLE_DEVICES"] (to gpu_id, "" hides every GPU)
      for the whole process, which would change the devices later methods see: restored here.
    """
    import_recbole()
    from recbole.config import Config

    class IsolatedConfig(Config):
        def _load_cmd_line(self) -> dict[str, Any]:
            return {}

        def _init_device(self) -> None:
            before = os.environ.get("CUDA_VISIBLE_DEVICES")
            try:
                super()._init_device()
            finally:
                if before is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = before

    return IsolatedConfig(model=model, dataset=dataset, config_dict=config_dict)


def make_trainer(config: "Config", model: Any, tensorboard_dir: Path) -> "Trainer":
    """RecBole's Trainer, with its TensorBoard event file under `tensorboard_dir`.

    RecBole 1.2.1's Trainer.__init__ opens a SummaryWriter in ./log_tensorboard/ (relative to the
    current folder, not configurable); the user's working folder must stay clean. The caller
    closes `trainer.tensorboard` when done.
    """
    import_recbole()
    from torch.utils.tensorboard import SummaryWriter

    import recbole.trainer.trainer as trainer_module

    original = trainer_module.get_tensorboard
    trainer_module.get_tensorboard = lambda logger: SummaryWriter(str(tensorboard_dir))
    try:
        return trainer_module.Trainer(config, model)
    finally:
        trainer_module.get_tensorboard = original


@contextlib.contextmanager
def quiet_recbole() -> Iterator[None]:
    """RecBole's data preparation and training, without its chatter.

    - RecBole 1.2.1 logs its progress at INFO on the root logger (`getLogger()`), which would mix
      its colour-coded lines into our log: records below WARNING logged directly on the root
      logger are dropped meanwhile (a logger's filters do not see records propagated from child
      loggers, so ours still pass).
    - Deprecation warnings on every run, harmless with the versions pinned here:
      pandas 2.2+ on RecBole's `df[field].fillna(value="", inplace=True)` (a chained assignment,
      which pandas 3 skips, breaking `:token_seq` fields: hence pandas < 3) and on
      `Series.agg(len)`; torch 2.4+ on `torch.cuda.amp.GradScaler` in `Trainer._train_epoch`.
    """
    root = logging.getLogger()

    def at_least_warning(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING

    root.addFilter(at_least_warning)
    try:
        with warnings.catch_warnings():
            for message in (".*chained assignment.*", ".*Series.agg cannot aggregate.*", ".*GradScaler.*"):
                warnings.filterwarnings("ignore", category=FutureWarning, message=message)
            yield
    finally:
        root.removeFilter(at_least_warning)


_flush_depth = 0  # flush_denormal() blocks open now (they nest: scoring runs inside training)


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Caser slows down about 4x after roughly 9 epochs on CPU, because its activations become
    denormal floats (seen with torch 2.13); flushing them to zero keeps epochs steady with
    unchanged losses and metrics. torch has no getter for this flag, so when the outermost block
    ends it is switched back to PyTorch's default (off)."""
    import torch

    global _flush_depth
    _flush_depth += 1
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21.2's `get_peft_model` reads `model.is_gradient_checkpointing`, which transformers 5.24
    deprecated (renamed `is_activation_checkpointing`): a FutureWarning on every LLM run, harmless
    (peft only asks whether to enable input gradients). Delete when peft reads the new name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*is_gradient_checkpointing.*")
        yield


def kv_cache_argument() -> str:
    """The name of a transformers model's key/value-cache argument and output field.

    transformers 5.24 renamed `past_key_values` to `cache` (the old name still works there, with a
    warning); 5.17 (the GPU image's) knows only `past_key_values`. Delete this when every supported
    version has `cache`.
    """
    import inspect

    from transformers.models.llama.modeling_llama import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


@contextlib.contextmanager
def training_attention(device: str) -> Iterator[None]:
    """Attention kernels for an LLM training forward pass (its backward runs the same kernel).

    PyTorch's memory-efficient SDPA kernel, the one CUDA picks for a batch with an attention mask
    (every left-padded batch), can return NaN gradients with a finite forward and loss (open as
    pytorch/pytorch#178251). Seen here with torch 2.11.0+cu130 on an H100 in bf16: tallrec, llara
    and ilora all had a NaN gradient norm at the same optimiser step, 40 of 92, with losses ~0.79.
    On CUDA the training forward may therefore use flash attention (unpadded batches, no mask) or
    the math kernel only. Not yet run on a GPU with this in place. CPU kernels are left as they are.
    """
    if not device.startswith("cuda"):
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
        yield
