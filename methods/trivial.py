"""Sanity floors: any method that does not beat these has learned nothing."""

from __future__ import annotations

import hashlib

import numpy as np

from harness.data import Sample
from harness.errors import UserError
from harness.protocol import EvalSet
from methods.base import METHODS, Method


@METHODS.register("random", "uniformly random scores (the floor: HR@1 = 1/candidates in expectation)")
class Random(Method):
    def score(self, samples: EvalSet) -> np.ndarray:
        stream = int.from_bytes(hashlib.sha256(b"random-method").digest()[:4], "little")
        rng = np.random.default_rng([self.ctx.seed, stream])
        return rng.random(samples.candidates.shape)


@METHODS.register("pop", "training-set popularity: how often each item is a training target")
class Popularity(Method):
    def fit(self, train: list[Sample], valid: EvalSet) -> None:
        if not train:
            raise UserError(f"data set {self.ctx.dataset!r} has no training samples for 'pop' to count")
        self.counts = np.bincount([s.target for s in train], minlength=self.ctx.n_items).astype(np.float64)

    def score(self, samples: EvalSet) -> np.ndarray:
        return self.counts[samples.candidates]

    def score_all(self, samples: EvalSet) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(samples), len(self.counts)))
