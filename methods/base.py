"""The interface every method implements, and the method registry.

A method module must import nothing heavy (torch, recbole, transformers) at module level:
`run_bench.py --list` imports every method module to read their registrations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import numpy as np

from harness.data import Sample
from harness.errors import UserError
from harness.protocol import EvalSet
from harness.registry import Registry

METHODS: Registry[type["Method"]] = Registry("method", ("methods",))


@dataclass
class RunContext:
    """What a method may know about the run beyond its own parameters."""

    seed: int
    device: str
    work_dir: Path  # the run's private folder for checkpoints and third-party output
    n_items: int
    titles: list[str]
    dataset: str
    # Called with (epoch, validation value) by methods that train in epochs; tuning uses it to prune.
    report: Callable[[int, float], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Method:
    """Either a ranker (score: one number per candidate) or a generator (choose: one candidate)."""

    kind: ClassVar[Literal["ranker", "generator"]] = "ranker"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, ctx: RunContext, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise UserError(
                f"method {type(self).__name__}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        self.ctx = ctx
        self.params: dict[str, Any] = {**self.defaults, **params}

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Parameters suggested from an Optuna trial; empty when there is nothing to tune."""
        return {}

    def fit(self, train: list[Sample], valid: EvalSet) -> None:
        """Train on `train`; `valid` (frozen candidates) is for model selection only."""

    def score(self, samples: EvalSet) -> np.ndarray:
        """[N, C] scores, higher is better, for the candidates of each sample (rankers)."""
        raise NotImplementedError

    def choose(self, samples: EvalSet) -> tuple[np.ndarray, list[str]]:
        """Chosen candidate index per sample (-1: invalid answer) and the raw answers (generators)."""
        raise NotImplementedError

    def trainable_parameters(self) -> int:
        return 0

    def record_extra(self) -> dict[str, Any]:
        """Anything method-specific worth keeping in the run record (validation curve, ...)."""
        return {}
