"""What a seed wrote and how long each part took, as `storefront seed` prints it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Progress = Callable[[str], None]


@dataclass
class TableLoad:
    rows: int = 0
    seconds: float = 0.0


@dataclass
class SeedReport:
    seed: int
    tables: dict[str, TableLoad] = field(default_factory=dict)
    # Work that is not one table's: reset, images, demo accounts, index rebuild, ANALYZE.
    phases: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    @contextmanager
    def table(self, label: str) -> Iterator[TableLoad]:
        """Time a table's generation or load; the caller adds the rows it wrote."""
        stats = self.tables.setdefault(label, TableLoad())
        started = time.perf_counter()
        try:
            yield stats
        finally:
            stats.seconds += time.perf_counter() - started

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started
