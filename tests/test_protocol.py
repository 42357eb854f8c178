import subprocess
import sys

import numpy as np
import pytest

from harness.errors import UserError
from harness.protocol import CandidateSpec, SplitSpec, freeze_candidates, make_split, read_candidates
from tests.conftest import ROOT


def test_llara_split_invariants(ml100k):
    split = make_split(ml100k, SplitSpec("llara"), seed=0)
    train_users = {s.user for s in split.train}
    valid_users = {s.user for s in split.valid}
    test_users = {s.user for s in split.test}
    assert not (train_users & valid_users) and not (train_users & test_users) and not (valid_users & test_users)
    assert len(train_users) == round(0.8 * 943)
    assert len(valid_users) == len(split.valid) and len(test_users) == len(split.test)  # one sample per user
    for s in split.train + split.valid + split.test:
        assert 1 <= len(s.history) <= 10
        assert s.target not in s.history  # ml-100k has no repeated (user, item) pairs
    assert all(len(s.history) >= 3 for s in split.valid + split.test)
    # held-out target is the user's last interaction in time order
    inter = ml100k.interactions
    for s in split.test[:20]:
        seq = inter[inter.user == s.user].sort_values("timestamp", kind="stable")["item"].tolist()
        assert seq[-1] == s.target and tuple(seq[-11:-1]) == s.history and set(s.seen) == set(seq[:-1])


def test_llara_windows_cover_each_training_sequence(synthetic):
    split = make_split(synthetic, SplitSpec("llara"), seed=3)
    per_user = synthetic.interactions.groupby("user").size()
    train_users = {s.user for s in split.train}
    assert len(split.train) == sum(per_user[u] - 1 for u in train_users)


def test_loo_split(synthetic):
    split = make_split(synthetic, SplitSpec("loo", min_history=1), seed=0)
    n_users = synthetic.interactions.user.nunique()
    assert len(split.valid) == len(split.test) == n_users
    by_user = {s.user: s for s in split.test}
    for v in split.valid:
        t = by_user[v.user]
        assert t.history[-1] == v.target  # the valid target is the item right before the test target


def test_split_seed_changes_users(ml100k):
    a = make_split(ml100k, SplitSpec(), seed=0)
    b = make_split(ml100k, SplitSpec(), seed=1)
    assert {s.user for s in a.test} != {s.user for s in b.test}


def test_candidate_invariants(ml100k, tmp_path):
    split = make_split(ml100k, SplitSpec(), seed=0)
    frozen = freeze_candidates(ml100k, split, SplitSpec(), CandidateSpec(), 0, tmp_path)
    for part, samples in (("valid", split.valid), ("test", split.test)):
        ev = getattr(frozen, part)
        assert ev.candidates.shape == (len(samples), 20)
        assert np.all((ev.candidates == ev.targets[:, None]).sum(1) == 1)
        for s, row in zip(samples, ev.candidates):
            negatives = set(row.tolist()) - {s.target}
            assert len(negatives) == 19
            assert not negatives & set(s.seen)
    # the target's position is shuffled, not always first
    assert len(set(frozen.test.target_index.tolist())) > 5


def test_window_exclusion_is_weaker(ml100k, tmp_path):
    split = make_split(ml100k, SplitSpec(), seed=0)
    frozen = freeze_candidates(ml100k, split, SplitSpec(), CandidateSpec(exclude="window"), 0, tmp_path)
    leaked = sum(bool((set(row.tolist()) - {s.target}) & set(s.seen)) for s, row in zip(split.test, frozen.test.candidates))
    assert leaked > 0  # upstream's rule lets items the user already saw in as negatives


FREEZE = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from harness.data import load_dataset
from harness.protocol import CandidateSpec, SplitSpec, freeze_candidates, make_split
d = load_dataset("ml-100k")
f = freeze_candidates(d, make_split(d, SplitSpec(), {seed}), SplitSpec(), CandidateSpec(), {seed}, Path({out!r}))
print(f.sha256)
"""


def test_frozen_bytes_equal_across_processes(tmp_path):
    shas = []
    for i in range(2):
        code = FREEZE.format(root=str(ROOT), seed=7, out=str(tmp_path / f"p{i}"))
        shas.append(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip())
    assert shas[0] == shas[1]
    files = [next((tmp_path / f"p{i}").glob("*.tsv")).read_bytes() for i in range(2)]
    assert files[0] == files[1]
    other = subprocess.run(
        [sys.executable, "-c", FREEZE.format(root=str(ROOT), seed=8, out=str(tmp_path / "p2"))],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert other != shas[0]


def test_frozen_file_is_reused_not_redrawn(ml100k, tmp_path):
    split = make_split(ml100k, SplitSpec(), seed=0)
    first = freeze_candidates(ml100k, split, SplitSpec(), CandidateSpec(), 0, tmp_path)
    mtime = first.path.stat().st_mtime_ns
    second = freeze_candidates(ml100k, split, SplitSpec(), CandidateSpec(), 0, tmp_path)
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime and second.sha256 == first.sha256
    assert read_candidates(first.path).test.candidates.tolist() == first.test.candidates.tolist()


def test_too_few_items_for_negatives(synthetic, tmp_path):
    split = make_split(synthetic, SplitSpec(), seed=0)
    with pytest.raises(UserError, match="negatives"):
        freeze_candidates(synthetic, split, SplitSpec(), CandidateSpec(n_negatives=500), 0, tmp_path)


def test_bad_specs():
    with pytest.raises(UserError, match="did you mean 'llara'"):
        SplitSpec("lara")
    with pytest.raises(UserError):
        CandidateSpec(n_negatives=0)


def test_timestamp_ties_keep_file_order():
    import pandas as pd

    from harness.data import DataSet

    # user 0 has three items at the same time, listed 2, 0, 1 in the file: that order must survive.
    inter = pd.DataFrame({"user": [0, 0, 0, 0, 0], "item": [3, 2, 0, 1, 4], "timestamp": [1, 5, 5, 5, 9]})
    data = DataSet("ties", "test", [f"t{i}" for i in range(30)], [str(i) for i in range(30)], interactions=inter)
    split = make_split(data, SplitSpec("loo", min_history=1), seed=0)
    assert split.test[0].history == (3, 2, 0, 1) and split.test[0].target == 4
