"""Small name -> object registries with "did you mean" errors.

Method and data set modules register themselves with a decorator next to the class or loader
they name. Those modules keep torch and other heavy imports inside functions, so importing
them all (which `--list` does) stays fast.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from harness.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str


class Registry(Generic[T]):
    def __init__(self, kind: str, packages: tuple[str, ...]) -> None:
        self.kind = kind
        self._packages = packages
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = False

    def register(self, name: str, description: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, description)
            return obj

        return decorator

    def _discover(self) -> None:
        """Import the top-level modules of the registering packages once, so their decorators run.

        Not recursive: a sub-package (a method family such as methods/llm/) registers from its
        `__init__`, so its heavy implementation modules are imported only when a method runs.
        """
        if self._discovered:
            return
        self._discovered = True
        for package_name in self._packages:
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__, package_name + "."):
                importlib.import_module(info.name)

    def entries(self) -> list[Entry[T]]:
        self._discover()
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def get(self, name: str) -> Entry[T]:
        self._discover()
        if name in self._entries:
            return self._entries[name]
        raise UserError(unknown_name_message(self.kind, name, self.names()))

    def resolve_list(self, spec: str) -> list[Entry[T]]:
        """'all' or a comma-separated list of names, in the order given, without duplicates."""
        if spec.strip() == "all":
            return self.entries()
        names = [n.strip() for n in spec.split(",") if n.strip()]
        if not names:
            raise UserError(f"no {self.kind} named in {spec!r}; available: {', '.join(self.names())}")
        return [self.get(n) for n in dict.fromkeys(names)]


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; available: {', '.join(available)}"


def describe(entries: list[Entry[Any]]) -> str:
    width = max((len(e.name) for e in entries), default=0)
    return "\n".join(f"  {e.name:<{width}}  {e.description}" for e in entries)
