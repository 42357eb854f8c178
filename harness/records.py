"""Run records: one JSON file per (data set, split, candidates, method, parameters, seed).

Records are the only source of the leaderboard. Each is written atomically (temp file +
os.replace), so a killed run leaves either a whole record or none, and a run whose record
exists is skipped on the next invocation (resume).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD_FORMAT = 1
TRACKED_PACKAGES = (
    "torch", "transformers", "peft", "recbole", "optuna", "numpy", "pandas", "scipy", "tabulate",
)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and os.replace: readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def hardware(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "device": device,
    }
    torch = sys.modules.get("torch")  # only when a method already imported it
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda"):
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class RecordStore:
    """results/runs/<data set>/<method>/<hash>.json plus <hash>.samples.jsonl beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = root / "runs"

    def path(self, dataset: str, method: str, run_hash: str) -> Path:
        return self.runs / dataset / method / f"{run_hash}.json"

    def finished(self, dataset: str, method: str, run_hash: str) -> bool:
        path = self.path(dataset, method, run_hash)
        if not path.exists():
            return False
        try:
            return json.loads(path.read_text())["status"] == "ok"
        except (ValueError, KeyError):
            return False  # unreadable: rerun and replace it

    def write(self, record: dict[str, Any], samples: list[dict[str, Any]] | None) -> Path:
        path = self.path(record["dataset"]["name"], record["method"], record["hash"])
        if samples is not None:  # samples first: a record never points at missing samples
            atomic_write_text(path.with_suffix(".samples.jsonl"), "".join(json.dumps(s) + "\n" for s in samples))
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
        return path

    def load_all(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.runs.glob("*/*/*.json")):
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue  # cannot happen with atomic writes, but a hand-edited file must not stop a rebuild
            if record.get("format") == RECORD_FORMAT:
                record["_path"] = str(path)
                records.append(record)
        return records

    def samples(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        return self.samples_at(Path(record["_path"]))

    @staticmethod
    def samples_at(record_path: Path) -> list[dict[str, Any]]:
        """The per-sample lines beside a record file, for callers that have its path but not the record."""
        return [json.loads(line) for line in record_path.with_suffix(".samples.jsonl").read_text().splitlines()]
