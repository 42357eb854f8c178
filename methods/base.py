"""The interface every method implements, and the method registry.

A method module must import nothing heavy (torch, recbole, transformers) at module level:
`run_bench.py --list` imports every method module to read their registrations.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    # require("sasrec") -> that method trained on this very split and seed, reused from its run
    # record and saved state when they exist, trained (and recorded) first otherwise.
    require: Callable[[str], "Method"] | None = None
    # Seconds spent inside require(): training a required SASRec is recorded apart from fit time.
    required_seconds: float = 0.0


class Method:
    """A method answers in one or more scoring modes, each a method of this class.

    `modes` maps a mode's label to the function that answers it: "score" (one number per
    candidate: a ranker) or "choose" (one candidate index or -1: a generator). The first mode is
    the method's primary row in the leaderboard. LLM methods answer both ways:
    {"generate": "choose", "likelihood": "score"}. A method with `score_all` (scores for every
    item) also gets full-ranking metrics.
    """

    modes: ClassVar[dict[str, Literal["score", "choose"]]] = {"rank": "score"}
    # True when answers depend on the order the candidates are shown in (LLM prompts); such
    # methods are scored again on reshuffled candidate orders to measure position bias.
    order_sensitive: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    # Methods whose trained state other methods build on (LLaRA needs SASRec) save and load it.
    reusable: ClassVar[bool] = False

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
    def resolve(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The parameter values a run really uses (a method with presets fills them in here), so
        that run records show them and the config hash changes when a preset does."""
        return params

    @classmethod
    def plan(cls, params: dict[str, Any]) -> str | None:
        """One line on what a run with these parameters will do and roughly how long it takes
        (logged before any method starts, so a long run says so up front); None for quick methods."""
        return None

    @classmethod
    def estimate_minutes(cls, params: dict[str, Any]) -> float | None:
        """Rough minutes of one run on ml-100k on 2 idle CPU cores, for the total logged up front;
        0 for methods that take seconds, None when unknown (e.g. a GPU-sized budget)."""
        return 0.0

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

    def score_all(self, samples: EvalSet) -> np.ndarray | None:
        """[N, n_items] scores over the whole catalogue, for full-ranking metrics; None if unsupported."""
        return None

    def save(self, folder: Path) -> None:
        """Write the trained state (weights_only-loadable) for reuse; only for reusable methods."""
        raise NotImplementedError

    def load(self, folder: Path) -> None:
        """Restore what save() wrote, instead of fit()."""
        raise NotImplementedError

    def trainable_parameters(self) -> int:
        return 0

    def record_extra(self) -> dict[str, Any]:
        """Anything method-specific worth keeping in the run record (validation curve, ...)."""
        return {}
