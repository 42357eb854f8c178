"""A test-only method that trains in epochs, so tuning and pruning can be tested in seconds.

It counts item-to-item transitions over a growing share of the training windows each epoch and
reports validation HR@1 like a real trainer. `invert` plants a bad configuration (it ranks the
likeliest item last); `explode` plants a crash.
"""

from __future__ import annotations

import numpy as np

from harness.evaluate import metrics, ranks_from_scores
from methods.base import METHODS, Method

if "toy-markov" not in METHODS.names():

    @METHODS.register("toy-markov", "test only: first-order transitions counted over epochs")
    class ToyMarkov(Method):
        defaults = {"epochs": 4, "smoothing": 30.0, "invert": False, "explode": False}

        @classmethod
        def search_space(cls, trial):
            return {
                "smoothing": trial.suggest_float("smoothing", 0.01, 100.0, log=True),
                "invert": trial.suggest_categorical("invert", [False, True]),
            }

        def fit(self, train, valid):
            if self.params["explode"]:
                raise RuntimeError("planted failure")
            n = self.ctx.n_items
            epochs = self.params["epochs"]
            for epoch in range(1, epochs + 1):
                part = train[: len(train) * epoch // epochs]
                self.trans = np.zeros((n, n))
                for s in part:
                    if s.history:
                        self.trans[s.history[-1], s.target] += 1
                self.pop = np.bincount([s.target for s in part], minlength=n).astype(float)
                if self.ctx.report is not None:
                    value = metrics(ranks_from_scores(self.score(valid), valid.target_index))["HR@1"]
                    self.ctx.report(epoch, value)

        reusable = True  # so that toy-needs can require it

        def save(self, folder):
            np.savez(folder / "toy.npz", trans=self.trans, pop=self.pop)

        def load(self, folder):
            saved = np.load(folder / "toy.npz")
            self.trans, self.pop = saved["trans"], saved["pop"]

        def score(self, samples):
            last = np.array([h[-1] for h in samples.histories])
            scores = self.trans[last[:, None], samples.candidates] + self.pop[samples.candidates] / self.params["smoothing"]
            return -scores if self.params["invert"] else scores

if "toy-first" not in METHODS.names():

    @METHODS.register("toy-first", "test only: a 'generator' that always answers the first candidate shown")
    class ToyFirst(Method):
        modes = {"generate": "choose"}
        order_sensitive = True

        def choose(self, samples):
            return np.zeros(len(samples), dtype=int), [f"item {c}" for c in samples.candidates[:, 0]]


if "toy-needs" not in METHODS.names():

    @METHODS.register("toy-needs", "test only: requires toy-markov trained on the same split, as llara requires sasrec")
    class ToyNeeds(Method):
        def fit(self, train, valid):
            self.base = self.ctx.require("toy-markov")

        def score(self, samples):
            return self.base.score(samples)
