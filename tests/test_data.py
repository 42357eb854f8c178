import shutil

import pytest

from harness.data import load_dataset
from harness.data.atomic import normalise_title
from harness.errors import UserError
from harness.protocol import SplitSpec, make_split


def test_ml100k_from_recbole_wheel(ml100k):
    s = ml100k.statistics()
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100000)
    assert "The Usual Suspects" in ml100k.titles
    assert "An American Werewolf in London" in ml100k.titles
    assert len(set(t.casefold() for t in ml100k.titles)) == 1682  # duplicates disambiguated


@pytest.mark.parametrize("raw, expected", [
    ("Usual Suspects, The", "The Usual Suspects"),
    ("American Werewolf in London, An", "An American Werewolf in London"),
    ("Man for All Seasons, A", "A Man for All Seasons"),
    ("City of Lost Children, The (Cité des enfants perdus, La)", "The City of Lost Children (Cité des enfants perdus, La)"),
    ("Theory of Everything", "Theory of Everything"),
])
def test_title_articles(raw, expected):
    assert normalise_title(raw) == expected


def test_llara_csv_and_pickle_agree(llara_dir):
    csv_form = load_dataset(str(llara_dir / "lastfm"))
    pickle_form = load_dataset(str(llara_dir / "original" / "lastfm"))
    assert csv_form.fingerprint() == pickle_form.fingerprint()
    assert [len(csv_form.given[p]) for p in ("train", "valid", "test")] == [50800, 122, 122]
    split = make_split(csv_form, SplitSpec("given"), seed=0)
    assert all(len(s.history) >= 3 for s in split.test)
    assert len(split.test) == sum(len(s.history) >= 3 for s in csv_form.given["test"])


def test_llara_movielens_pickles_with_u_item(llara_dir):
    data = load_dataset(str(llara_dir / "original" / "movielens"))
    assert data.n_items == 1682 and data.titles[0] == "Toy Story"
    assert len(data.given["test"]) == 95 and data.given["train"] == []


def test_untrusted_pickle_is_refused(llara_dir, tmp_path):
    folder = tmp_path / "lastfm"
    shutil.copytree(llara_dir / "original" / "lastfm", folder)
    with open(folder / "Test_data.df", "ab") as f:
        f.write(b"\0")  # same content for pandas, but no longer the published file
    with pytest.raises(UserError, match="refusing to unpickle.*--trust-pickle"):
        load_dataset(str(folder))
    assert len(load_dataset(str(folder), trust_pickle=True).given["test"]) == 122


def test_atomic_folder_by_path(tmp_path):
    (tmp_path / "toy.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\nu1\ta\t1\nu1\tb\t2\nu2\tb\t1\n"
    )
    (tmp_path / "toy.item").write_text("item_id:token\ttitle:token_seq\na\tAlpha, The\nb\tBeta\n")
    data = load_dataset(str(tmp_path))
    assert data.titles == ["The Alpha", "Beta"] and len(data.interactions) == 3


def test_unknown_dataset_name():
    with pytest.raises(UserError, match="did you mean 'ml-100k'"):
        load_dataset("ml-100")
