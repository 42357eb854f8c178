import math

import numpy as np
import pytest

from harness.evaluate import MISS, metrics, ranks_from_choices, ranks_from_scores


def test_ranks_with_pessimistic_ties():
    scores = np.array([
        [0.9, 0.1, 0.5],  # target 0 strictly best -> 1
        [0.5, 0.5, 0.5],  # all tied -> last (3)
        [0.2, 0.7, 0.7],  # target 1 tied with 2 -> 2
        [0.3, 0.2, 0.1],  # target 2 worst -> 3
    ])
    assert ranks_from_scores(scores, np.array([0, 0, 1, 2])).tolist() == [1, 3, 2, 3]


def test_nan_scores_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores(np.array([[np.nan, 1.0]]), np.array([0]))


def test_metric_values_by_hand():
    ranks = np.array([1, 2, 4, 6])
    m = metrics(ranks)
    assert m["HR@1"] == 0.25 and m["HR@3"] == 0.5 and m["HR@5"] == 0.75
    assert m["NDCG@3"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5)) / 4)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 6) / 4)
    assert m["ValidRatio"] == 1.0


def test_generator_outcomes():
    choices = np.array([2, -1, 0, 1])  # correct, invalid, wrong, correct
    ranks = ranks_from_choices(choices, np.array([2, 0, 1, 1]))
    assert ranks.tolist() == [1, MISS, MISS, 1]
    m = metrics(ranks, valid=choices >= 0)
    assert m["HR@1"] == m["HR@5"] == m["MRR"] == 0.5
    assert m["ValidRatio"] == 0.75
