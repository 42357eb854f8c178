"""The splits that LLaRA and iLoRA published, so our numbers can sit beside theirs.

Two forms: plain CSV (`train.csv`, `valid.csv`, `test.csv` with columns history,target, plus
`items.txt` of `id::name` lines), and the upstream pandas pickles (`train_data.df`,
`Val_data.df`, `Test_data.df`, plus `id2name.txt` or MovieLens' `u.item`). Unpickling runs
code, so a pickle is opened only when its SHA-256 is one of the published files below or the
user passes --trust-pickle.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from harness.data import DataSet, Sample, clean_title, disambiguate_titles
from harness.data.atomic import normalise_title
from harness.errors import UserError

CSV_FILES = {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"}
PICKLE_FILES = {"train": "train_data.df", "valid": "Val_data.df", "test": "Test_data.df"}

# The upstream files as published in iLoRA's data/ref/ (see shared/datasets/llara/SOURCE.md).
KNOWN_PICKLES = {
    "cac058a2842b2a3ed4d39ed1fa0a742f5034a23c9851a2ffc157b4845d703570",  # lastfm/Test_data.df
    "92a1ddb65ebdeff999f910b65660eb3d8c7cd85e6a19308d80c429481839f8b3",  # lastfm/Val_data.df
    "7db71a60d3da4c449091fbc254efc9602f81eec6eb9a60534811ccd61974dbc1",  # lastfm/train_data.df
    "d38308a0078d4518dc9eeb619c8d1afb53d830712cc7d36ac51cc47eaafc97d6",  # movielens/Test_data.df
    "9a950900d0055649e2983ef403d189d5fdc5bd4f84d229a377806d371b32e460",  # movielens/Val_data.df
    "2766b9faf90e3531a35207c01fbef2f655af97c21a6ba7d18581bbef2bc6ad59",  # steam/Test_data.df
}


def looks_like(path: Path) -> bool:
    return path.is_dir() and ((path / "test.csv").exists() or (path / PICKLE_FILES["test"]).exists())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_titles(folder: Path) -> list[str]:
    """Titles indexed by LLaRA's 0-based item id, from items.txt / id2name.txt or u.item."""
    for name in ("items.txt", "id2name.txt"):
        path = folder / name
        if path.exists():
            return _read_id2name(path)
    if (folder / "u.item").exists():
        return _read_u_item(folder / "u.item")
    raise UserError(f"{folder}: no item titles (expected items.txt, id2name.txt or u.item)")


def _read_id2name(path: Path) -> list[str]:
    names: dict[int, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 at byte {e.start}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        raw_id, sep, name = line.partition("::")
        if not sep or not raw_id.strip().isdigit():
            raise UserError(f"{path}: line {lineno}: expected 'id::name', got {line[:60]!r}")
        item = int(raw_id)
        if item in names:
            raise UserError(f"{path}: line {lineno}: item id {item} appears twice")
        names[item] = clean_title(name, f"{path}: line {lineno}")
    return _dense(names, path)


def _read_u_item(path: Path) -> list[str]:
    """MovieLens' u.item: 'id|Title (year)|...', latin-1; LLaRA's id = MovieLens id - 1."""
    names: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].isdigit():
            raise UserError(f"{path}: line {lineno}: expected 'id|title|...', got {line[:60]!r}")
        title = clean_title(fields[1], f"{path}: line {lineno}")
        if title.endswith(")") and title[-6:-5] == "(" and title[-5:-1].isdigit():
            title = title[:-7].rstrip()
        names[int(fields[0]) - 1] = normalise_title(title)
    return _dense(names, path)


def _dense(names: dict[int, str], path: Path) -> list[str]:
    if not names:
        raise UserError(f"{path}: no items")
    n = max(names) + 1
    missing = [i for i in range(n) if i not in names]
    if missing:
        raise UserError(f"{path}: item id {missing[0]} has no name ({len(missing)} ids missing)")
    return [names[i] for i in range(n)]


def _check_id(value: int, n_items: int, where: str) -> int:
    if not 0 <= value < n_items:
        raise UserError(f"{where}: item id {value} outside 0..{n_items - 1} (the item list's range)")
    return value


def _read_csv_samples(path: Path, n_items: int) -> list[Sample]:
    samples = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != ["history", "target"]:
                raise UserError(f"{path}: line 1: expected header 'history,target', got {','.join(header or [])!r}")
            for row in reader:
                where = f"{path}: line {reader.line_num}"
                if len(row) != 2:
                    raise UserError(f"{where}: expected 2 fields (history,target), got {len(row)}")
                try:
                    history = tuple(_check_id(int(x), n_items, where) for x in row[0].split())
                    target = _check_id(int(row[1]), n_items, where)
                except ValueError:
                    raise UserError(f"{where}: ids must be integers, got {','.join(row)[:80]!r}") from None
                samples.append(Sample(user=-1, history=history, target=target, seen=history))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 at byte {e.start}") from None
    return samples


def _item_of(value: object) -> int:
    """Upstream MovieLens stores (item, rating) pairs; the others store the item alone."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    return int(value)  # type: ignore[arg-type]


def _read_pickle_samples(path: Path, n_items: int, trust: bool) -> list[Sample]:
    import pandas as pd

    if not trust and sha256(path) not in KNOWN_PICKLES:
        raise UserError(
            f"{path}: refusing to unpickle a file that is not one of the published LLaRA files "
            f"(unpickling runs code); pass --trust-pickle if you trust it"
        )
    try:
        frame = pd.read_pickle(path)
    except Exception as e:  # a pickle can fail in any way; the user needs the file named
        raise UserError(f"{path}: cannot be read as a pandas pickle ({type(e).__name__}: {e})") from None
    if not hasattr(frame, "columns") or not {"seq", "len_seq", "next"} <= set(frame.columns):
        raise UserError(f"{path}: expected a DataFrame with columns seq, len_seq, next")
    samples = []
    for row, (seq, length, nxt) in enumerate(zip(frame["seq"], frame["len_seq"], frame["next"])):
        where = f"{path}: row {row}"
        items = [_item_of(v) for v in list(seq)[: int(length)]]
        history = tuple(_check_id(i, n_items, where) for i in items if i != n_items)  # n_items = padding
        target = _check_id(_item_of(nxt), n_items, where)
        samples.append(Sample(user=-1, history=history, target=target, seen=history))
    return samples


def load(folder: Path, trust_pickle: bool = False) -> DataSet:
    notes: list[str] = []
    titles = disambiguate_titles(read_titles(folder), notes)
    n_items = len(titles)
    given: dict[str, list[Sample]] = {}
    use_csv = (folder / CSV_FILES["test"]).exists()
    for part in ("train", "valid", "test"):
        path = folder / (CSV_FILES if use_csv else PICKLE_FILES)[part]
        if not path.exists():
            notes.append(f"no {path.name}: the {part} part is empty")
            given[part] = []
            continue
        given[part] = (
            _read_csv_samples(path, n_items) if use_csv else _read_pickle_samples(path, n_items, trust_pickle)
        )
    return DataSet(
        name=folder.name,
        source=str(folder),
        titles=titles,
        raw_item_ids=[str(i) for i in range(n_items)],
        given=given,
        default_split="given",
        notes=notes,
    )
