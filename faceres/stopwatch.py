"""Milliseconds per stage of a pipeline (decode, detect, align, ...), as every answer reports.

>>> watch = Stopwatch()
>>> watch.lap("decode"); watch.lap("detect")
>>> list(watch.timings())
['decode', 'detect', 'total']
"""

from __future__ import annotations

import time


class Stopwatch:
    """Laps in milliseconds, each from the end of the one before (the first from creation)."""

    def __init__(self) -> None:
        self._laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """End the stage `stage` now."""
        now = time.perf_counter()
        self._laps[stage] = (now - self._last) * 1000.0
        self._last = now

    def timings(self, decimals: int | None = None) -> dict[str, float]:
        """Every lap and their "total", rounded to `decimals` when given."""
        out = {**self._laps, "total": sum(self._laps.values())}
        return out if decimals is None else {k: round(v, decimals) for k, v in out.items()}
