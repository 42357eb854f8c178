"""RecBole atomic files (`<name>.inter` + `<name>.item`), the format of RecBole's data set catalogue.

Reading them ourselves (not through RecBole's Dataset) keeps the canonical form independent of
RecBole's filtering and remapping, and lets every error name the file and line.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data import DataSet, clean_title, dense_ids, disambiguate_titles
from harness.errors import UserError

TITLE_FIELDS = ("movie_title", "title", "item_name", "name", "artist_name", "app_name", "product_name")
ARTICLE = re.compile(r"^(?P<body>.*), (?P<article>The|A|An)(?P<rest>\s*\(.*\))?$")


def looks_like(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.inter"))


def read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file as strings, columns named without their ':type' suffix."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: line 1 is not valid UTF-8 ({e.reason})") from None
    if not header:
        raise UserError(f"{path}: empty file (expected a header line like 'user_id:token<TAB>item_id:token')")
    fields = header.split("\t")
    names = []
    for i, f in enumerate(fields, 1):
        if ":" not in f:
            raise UserError(f"{path}: line 1, column {i} {f!r} has no ':type' (RecBole headers read 'name:type')")
        names.append(f.split(":", 1)[0])
    if len(set(names)) != len(names):
        raise UserError(f"{path}: line 1 repeats a column name: {header!r}")
    try:
        df = pd.read_csv(
            path, sep="\t", header=0, names=names, dtype=str, quoting=csv.QUOTE_NONE,
            keep_default_na=False, encoding="utf-8", engine="c",
        )
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 at byte {e.start} ({e.reason})") from None
    except pd.errors.ParserError as e:
        raise UserError(f"{path}: {e}") from None
    return df


def _line_of(df: pd.DataFrame, mask: np.ndarray) -> int:
    """1-based file line of the first row where mask holds (header is line 1)."""
    return int(np.flatnonzero(mask)[0]) + 2


def _integer_column(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        line = _line_of(df, bad)
        raise UserError(f"{path}: line {line}: {col} {df[col].iloc[line - 2]!r} is not a number")
    return values.to_numpy(np.float64)


def normalise_title(title: str) -> str:
    """'Usual Suspects, The' -> 'The Usual Suspects', as the papers' prompts do.

    Upstream's version mangled 'An' titles ('A American Werewolf in Londonn'); this one keeps the
    article whole and keeps an alternative title in parentheses at the end.
    """
    m = ARTICLE.match(title)
    if not m:
        return title
    return f"{m['article']} {m['body']}{m['rest'] or ''}"


def load(folder: Path, name: str | None = None, move_articles: bool = True) -> DataSet:
    inter_files = sorted(folder.glob("*.inter"))
    if name is None:
        if len(inter_files) != 1:
            raise UserError(f"{folder}: expected exactly one .inter file, found {len(inter_files)}")
        name = inter_files[0].stem
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    if not item_path.exists():
        raise UserError(f"{item_path}: missing (the item file gives the titles the LLM methods need)")

    inter = read_atomic(inter_path)
    for col in ("user_id", "item_id"):
        if col not in inter.columns:
            raise UserError(f"{inter_path}: no {col!r} column (columns: {', '.join(inter.columns)})")
    if len(inter) == 0:
        raise UserError(f"{inter_path}: no interactions")
    notes: list[str] = []
    if "timestamp" in inter.columns:
        timestamp = _integer_column(inter, "timestamp", inter_path)
    else:
        timestamp = np.arange(len(inter), dtype=np.float64)
        notes.append("no timestamp column: file order is taken as time order")

    items = read_atomic(item_path)
    if "item_id" not in items.columns:
        raise UserError(f"{item_path}: no 'item_id' column (columns: {', '.join(items.columns)})")
    title_col = next((c for c in TITLE_FIELDS if c in items.columns), None)
    if title_col is None:
        raise UserError(f"{item_path}: no title column (looked for {', '.join(TITLE_FIELDS)})")
    dup = items["item_id"].duplicated().to_numpy()
    if dup.any():
        line = _line_of(items, dup)
        raise UserError(f"{item_path}: line {line}: item_id {items['item_id'].iloc[line - 2]!r} appears twice")

    item_index, raw_items = dense_ids(items["item_id"])
    titles = [""] * len(raw_items)
    for row, (iid, raw_title) in enumerate(zip(item_index, items[title_col])):
        title = clean_title(raw_title, f"{item_path}: line {row + 2}")
        titles[iid] = normalise_title(title) if move_articles else title
    known_items = {tok: i for i, tok in enumerate(raw_items)}
    item_ids = inter["item_id"].map(known_items)
    missing = item_ids.isna().to_numpy()
    if missing.any():
        line = _line_of(inter, missing)
        raise UserError(
            f"{inter_path}: line {line}: item {inter['item_id'].iloc[line - 2]!r} has no row (no title) in {item_path.name}"
        )
    users, _ = dense_ids(inter["user_id"])
    frame = pd.DataFrame(
        {"user": users, "item": item_ids.to_numpy(np.int64), "timestamp": timestamp.astype(np.int64)}
    )
    if "rating" in inter.columns:
        frame["rating"] = _integer_column(inter, "rating", inter_path)
    years = None
    year_col = next((c for c in ("release_year", "year") if c in items.columns), None)
    if year_col is not None:
        years = [""] * len(raw_items)
        for iid, year in zip(item_index, items[year_col]):
            years[iid] = str(year).strip()
    return DataSet(
        name=name,
        source=str(folder),
        titles=disambiguate_titles(titles, notes, years),
        raw_item_ids=raw_items,
        interactions=frame,
        notes=notes,
    )
