"""A small synthetic data set whose next item follows the previous one, for fast tests.

Each item has one fixed successor; a user moves to it with probability `follow`, else to a
uniformly random item. Popularity is therefore nearly flat while the last item predicts the
next one well: a sequence model must beat popularity here, and popularity must not beat random
by much. Titles are unique and contain no other title as a substring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.data import DATASETS, DataSet


def make_synthetic(
    n_users: int = 300, n_items: int = 120, min_len: int = 15, max_len: int = 30, follow: float = 0.8, seed: int = 0
) -> DataSet:
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items)
    users, items, times = [], [], []
    for user in range(n_users):
        item = int(rng.integers(n_items))
        for t in range(int(rng.integers(min_len, max_len + 1))):
            users.append(user)
            items.append(item)
            times.append(t)
            item = int(successor[item]) if rng.random() < follow else int(rng.integers(n_items))
    return DataSet(
        name="synthetic",
        source=f"harness.data.synthetic.make_synthetic(seed={seed})",
        titles=[f"Item {i:04d}" for i in range(n_items)],
        raw_item_ids=[str(i) for i in range(n_items)],
        interactions=pd.DataFrame({"user": users, "item": items, "timestamp": times}),
    )


@DATASETS.register("synthetic", "300 users x 120 items with a planted next-item rule (tests and smoke runs)")
def synthetic() -> DataSet:
    return make_synthetic()
